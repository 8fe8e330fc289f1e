"""Named queries: SQL files with typed parameters."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stream_aimass.clickhouse.client import ClickHouseConfigError
from stream_aimass.clickhouse.migrations import sql_dir

_QUERY_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def query_names() -> list[str]:
    return sorted(
        e.name.removesuffix(".sql") for e in sql_dir("queries").iterdir() if e.name.endswith(".sql")
    )


def load_query(name: str) -> str:
    if not _QUERY_NAME.match(name) or name not in query_names():
        raise ClickHouseConfigError(
            f"unknown query {name!r}; available: {', '.join(query_names())}"
        )
    return str((sql_dir("queries") / f"{name}.sql").read_text())


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


# The widest --from/--to: inside ClickHouse's DateTime64 range (1900-2299).
ALL_TIME = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))


_QUERY_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):")


def query_parameters(name: str) -> set[str]:
    """The parameters query ``name`` binds (``{name:Type}`` placeholders)."""
    return set(_QUERY_PARAMETER.findall(load_query(name)))


def run_named_query(
    client: Any, name: str, parameters: dict[str, Any] | None = None
) -> QueryResult:
    """Run a named query with the values it binds; values it does not use are left out
    (a query without placeholders would otherwise be formatted client-side with them)."""
    wanted = query_parameters(name)
    used = {k: v for k, v in (parameters or {}).items() if k in wanted}
    result = client.query(load_query(name), parameters=used)
    return QueryResult(list(result.column_names), [list(r) for r in result.result_rows])
