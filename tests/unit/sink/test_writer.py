"""ClickHouseWriter's column types: described once per table and client, not per insert."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from stream_aimass.sink.writer import ClickHouseWriter, InsertBatch


class DescribingClient:
    """Records how often each table is described and what each insert was given; fails
    ``failures`` inserts first."""

    def __init__(self, failures: int = 0) -> None:
        self.described: list[str] = []
        self.inserted_types: list[Any] = []
        self.failures = failures

    def create_insert_context(self, table: str, column_names: list[str]) -> Any:
        self.described.append(table)
        return SimpleNamespace(
            column_types=[f"{table}.{c}:type{len(self.described)}" for c in column_names]
        )

    def insert(
        self,
        table: str,
        rows: list[list[Any]],
        *,
        column_names: list[str],
        settings: Any,
        column_types: Any = None,
    ) -> None:
        self.inserted_types.append(column_types)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("server gone")


async def _no_sleep(_: float) -> None:
    return None


def batch(table: str, n: int) -> InsertBatch:
    return InsertBatch(table, ("tenant", "doc_id"), [["acme", f"d{i}"] for i in range(n)], f"t{n}")


def test_each_table_is_described_once_per_client() -> None:
    client = DescribingClient()
    writer = ClickHouseWriter(client)
    for table in ("documents", "entity_mentions", "documents", "documents"):
        writer.insert_sync(batch(table, 2))
    assert client.described == ["documents", "entity_mentions"]
    assert client.inserted_types[0] == ["documents.tenant:type1", "documents.doc_id:type1"]
    assert client.inserted_types[3] == client.inserted_types[0]
    writer.client = other = DescribingClient()  # reconnected: the new one is asked again
    writer.insert_sync(batch("documents", 1))
    assert other.described == ["documents"]


def test_a_failed_insert_describes_its_table_again() -> None:
    """The table may have changed under the sink (a migration, a recreated table)."""
    client = DescribingClient(failures=1)
    writer = ClickHouseWriter(client, sleep=_no_sleep)
    assert asyncio.run(writer.insert(batch("documents", 3))) is True
    assert client.described == ["documents", "documents"]
    assert client.inserted_types[0] != client.inserted_types[1]


def test_a_client_that_cannot_describe_inserts_by_column_name() -> None:
    class Plain:
        def __init__(self) -> None:
            self.kwargs: dict[str, Any] = {}

        def insert(self, table: str, rows: list[list[Any]], **kwargs: Any) -> None:
            self.kwargs = kwargs

    client = Plain()
    ClickHouseWriter(client).insert_sync(batch("documents", 1))
    assert client.kwargs["column_types"] is None
    assert client.kwargs["column_names"] == ["tenant", "doc_id"]
