"""Stand-ins for the sink's ClickHouse client and Kafka consumer in unit tests: they record
what the sink inserts and commits (the real ones are exercised in tests/integration)."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition


class RecordingClient:
    def __init__(self) -> None:
        self.inserts: list[tuple[str, list[list[Any]], list[str], dict[str, Any]]] = []

    def insert(
        self,
        table: str,
        rows: list[list[Any]],
        *,
        column_names: list[str],
        settings: Any,
        column_types: Any = None,
    ) -> None:
        self.inserts.append((table, list(rows), column_names, settings))


class FakeConsumer:
    def __init__(self, *assigned: TopicPartition) -> None:
        self.assigned = set(assigned)
        self.commits: list[dict[TopicPartition, int]] = []
        # What the last fetch said each partition's end is (aiokafka's highwater()).
        self.highwaters: dict[TopicPartition, int] = {}

        self.paused: set[TopicPartition] = set()

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.highwaters.get(tp)

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)
