"""The sink role's buffering of enriched records: documents and classifications together.

A fake consumer and ClickHouse client stand in for Kafka and the database.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import TopicPartition

from stream_aimass.settings import Settings
from stream_aimass.sink import SinkService

ENRICHED = TopicPartition("aimass.enriched", 0)


@dataclass
class Message:
    value: bytes
    offset: int
    timestamp: int = 1_735_689_600_000
    key: bytes | None = None


class RecordingClient:
    def __init__(self) -> None:
        self.inserts: list[tuple[str, list[list[Any]], list[str], dict[str, Any]]] = []

    def insert(
        self, table: str, rows: list[list[Any]], *, column_names: list[str], settings: Any
    ) -> None:
        self.inserts.append((table, list(rows), column_names, settings))


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return {ENRICHED}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)


def record(doc_id: str, classifications: Any = ...) -> bytes:
    rec: dict[str, Any] = {
        "id": doc_id,
        "tenant": "acme",
        "ts": 1_735_689_600_000,
        "title": "",
        "lang": "en",
        "meta": {},
        "text_chars": 10,
        "tokens": 4,
        "categories": [{"label": "sports", "score": 0.9}],
        "top_category": "sports",
        "model": {"name": "all-MiniLM-L6-v2", "version": "abc"},
        "source": {"topic": "aimass.documents", "partition": 0, "offset": 1, "timestamp_ms": 1},
        "enriched_at_ms": 1_735_689_600_500,
        "compute_ms": 2.5,
        "models": {"all-MiniLM-L6-v2": "abc"},
    }
    if classifications is not ...:
        rec["classifications"] = classifications
    return orjson.dumps(rec)


def intent(top: str = "card_arrival") -> dict[str, Any]:
    return {
        "classifier": "intent",
        "model": {"name": "banking77", "version": "0f9e"},
        "multi_label": False,
        "labels": ["card_arrival", "lost_card"],
        "scores": [0.9, 0.1],
        "predicted": [top],
        "top": top,
    }


def service(tmp_path: Path) -> tuple[SinkService, RecordingClient, FakeConsumer]:
    client = RecordingClient()
    sink = SinkService(Settings(data_dir=tmp_path), "unused:9092", client)
    consumer = FakeConsumer()
    sink.consumer = consumer
    return sink, client, consumer


def test_enriched_records_feed_documents_and_classifications(tmp_path: Path) -> None:
    sink, client, consumer = service(tmp_path)
    messages = [
        Message(record("d1", [intent()]), 10),
        Message(record("d2"), 11),  # an older producer: no classifications
        Message(record("d3", [intent("lost_card")]), 12),
    ]
    sink._buffer({ENRICHED: messages})
    asyncio.run(sink.flush())
    tables = {table: rows for table, rows, _, _ in client.inserts}
    assert [r[1] for r in tables["documents"]] == ["d1", "d2", "d3"]
    assert [(r[1], r[7]) for r in tables["classifications"]] == [
        ("d1", "card_arrival"),
        ("d3", "lost_card"),
    ]
    tokens = {table: s["insert_deduplication_token"] for table, _, _, s in client.inserts}
    assert tokens["classifications"] == "classifications|aimass.enriched:0:10-12"
    assert consumer.commits == [{ENRICHED: 13}]  # once, after both tables were inserted


def test_malformed_classifications_make_the_whole_record_a_dead_letter(tmp_path: Path) -> None:
    sink, client, consumer = service(tmp_path)
    broken = intent()
    broken["scores"] = [0.9]  # fewer scores than labels
    messages = [Message(record("d1", [intent()]), 10), Message(record("bad", [broken]), 11)]
    sink._buffer({ENRICHED: messages})
    asyncio.run(sink.flush())
    tables = {table: rows for table, rows, _, _ in client.inserts}
    assert [r[1] for r in tables["documents"]] == ["d1"]  # no half of the broken record
    assert [r[1] for r in tables["classifications"]] == ["d1"]
    (dead,) = tables["dead_letters"]
    assert dead[4] == "sink" and "malformed classifications" in dead[5]
    assert consumer.commits == [{ENRICHED: 12}]
