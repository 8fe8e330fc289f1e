"""Unit tests for the recommendation rows: ``item_row``, ``recommendation_row`` and the sink
role buffering them (a fake consumer and ClickHouse client stand in for Kafka and chdb).
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from sink_doubles import FakeConsumer, RecordingClient

from stream_aimass.settings import Settings
from stream_aimass.sink.item_rows import (
    ITEM_COLUMNS,
    RECOMMENDATION_COLUMNS,
    item_row,
    recommendation_row,
)
from stream_aimass.sink.rows import RowError
from stream_aimass.sink.service import SinkService

TS_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
UPDATED_MS = 1_735_689_601_234
KAFKA_TS_MS = 1_735_689_700_500
REC_TS_MS = 1_735_689_700_000
EVENT_TS_MS = 1_735_689_699_000
VECTORS = "aimass.item-vectors"
RECS = "aimass.recommendations"


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def item(**changes: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "tenant": "acme",
        "item_id": "doc-7-0000001",
        "kind": "document",
        "title": "Cup final",
        "category": "sports",
        "ts": TS_MS,
        "embedding": {
            "dtype": "float16",
            "dim": 4,
            "b64": base64.b64encode(bytes(8)).decode("ascii"),
        },
        "model": {"name": "all-MiniLM-L6-v2", "version": "abc123"},
        "source": {"topic": "aimass.documents", "partition": 0, "offset": 12, "timestamp_ms": 1},
        "updated_at_ms": UPDATED_MS,
    }
    rec.update(changes)
    return rec


def recommendation(**changes: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "tenant": "acme",
        "user_id": "u-0001",
        "trigger_event_id": "evt-1",
        "trigger_event_ids": ["evt-0", "evt-1"],
        "items": [
            {"item_id": "doc-1", "score": 0.83, "rank": 1, "category": "sports"},
            {"item_id": "doc-2", "score": 0.5, "rank": 2, "category": "health"},
        ],
        "cold_start": False,
        "k": 10,
        "model": {"name": "aimass-recs", "version": "1a2b3c"},
        "latency_ms": 12.5,
        "ts": REC_TS_MS,
        "event_ts": EVENT_TS_MS,
        "source": {"topic": "aimass.events", "partition": 3, "offset": 77, "timestamp_ms": 1},
        "worker": "host:123",
    }
    rec.update(changes)
    return rec


def without(rec: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k not in keys}


def item_of(rec: Any, key: bytes | None = b"acme:doc-7-0000001") -> list[Any]:
    return item_row(key, orjson.dumps(rec), VECTORS, 2, 40, KAFKA_TS_MS)


def rec_of(rec: Any) -> list[Any]:
    return recommendation_row(orjson.dumps(rec), RECS, 3, 77)


# ----------------------------------------------------------------------------------- item_row


def test_item_row_has_a_value_for_every_column() -> None:
    row = item_of(item())
    assert len(row) == len(ITEM_COLUMNS)
    assert dict(zip(ITEM_COLUMNS, row, strict=True)) == {
        "tenant": "acme",
        "item_id": "doc-7-0000001",
        "kind": "document",
        "title": "Cup final",
        "category": "sports",
        "ts": utc(TS_MS),
        "model_name": "all-MiniLM-L6-v2",
        "model_version": "abc123",
        "deleted": 0,
        # Where the item-vectors message was, not the document it came from.
        "source_topic": VECTORS,
        "source_partition": 2,
        "source_offset": 40,
        "updated_at": utc(UPDATED_MS),
        # The version of the document the vector came from (its Kafka timestamp, offset).
        "version": (1 << 64) | 12,
    }


def test_item_row_of_a_catalogue_item_without_optional_keys() -> None:
    rec = without(item(kind="catalogue", title=None), "category", "source")
    row = dict(zip(ITEM_COLUMNS, item_of(rec), strict=True))
    assert (row["kind"], row["title"], row["category"]) == ("catalogue", "", "")


def test_item_row_accepts_a_message_without_a_key() -> None:
    assert item_of(item(), key=None)[1] == "doc-7-0000001"


def test_item_id_may_contain_colons() -> None:
    row = item_of(item(item_id="sku:42:red"), key=b"acme:sku:42:red")
    assert row[:2] == ["acme", "sku:42:red"]


@pytest.mark.parametrize("value", [None, b""])
def test_a_tombstone_marks_the_item_deleted(value: bytes | None) -> None:
    row = item_row(b"acme:sku:42:red", value, VECTORS, 5, 99, KAFKA_TS_MS)
    assert dict(zip(ITEM_COLUMNS, row, strict=True)) == {
        "tenant": "acme",
        "item_id": "sku:42:red",  # split on the first ':'
        "kind": "",
        "title": "",
        "category": "",
        "ts": utc(KAFKA_TS_MS),
        "model_name": "",
        "model_version": "",
        "deleted": 1,
        "source_topic": VECTORS,
        "source_partition": 5,
        "source_offset": 99,
        "updated_at": utc(KAFKA_TS_MS),  # the tombstone's Kafka timestamp
        "version": (KAFKA_TS_MS << 64) | 99,  # ordered by the tombstone's own message
    }


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (None, "tombstone key None is not tenant:item_id"),
        (b"", "is not tenant:item_id"),
        (b"acme", "tombstone key b'acme' is not tenant:item_id"),
        (b":doc-1", "is not tenant:item_id"),
        (b"acme:", "is not tenant:item_id"),
        (b"\xffacme:doc-1", "is not tenant:item_id"),
    ],
)
def test_a_tombstone_without_a_tenant_item_key_is_an_error(key: bytes | None, reason: str) -> None:
    with pytest.raises(RowError, match=reason):
        item_row(key, None, VECTORS, 0, 1, KAFKA_TS_MS)


def test_a_tombstone_without_a_kafka_timestamp_is_an_error() -> None:
    with pytest.raises(RowError, match="no usable Kafka timestamp"):
        item_row(b"acme:doc-1", None, VECTORS, 0, 1, -1)


EMBEDDING = item()["embedding"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "JSONDecodeError"),
        (b"null", "item vector must be an object, not NoneType"),
        (b"[1, 2]", "item vector must be an object, not list"),
        (orjson.dumps(without(item(), "tenant")), "KeyError: 'tenant'"),
        (orjson.dumps(without(item(), "item_id")), "KeyError: 'item_id'"),
        (orjson.dumps(without(item(), "kind")), "KeyError: 'kind'"),
        (orjson.dumps(without(item(), "ts")), "KeyError: 'ts'"),
        (orjson.dumps(without(item(), "embedding")), "KeyError: 'embedding'"),
        (orjson.dumps(without(item(), "model")), "KeyError: 'model'"),
        (orjson.dumps(without(item(), "updated_at_ms")), "KeyError: 'updated_at_ms'"),
        (orjson.dumps(item(tenant=7)), "tenant must be a string, not 7"),
        (orjson.dumps(item(tenant="")), "tenant is empty"),
        (orjson.dumps(item(item_id=None)), "item_id must be a string, not None"),
        (orjson.dumps(item(item_id="")), "item_id is empty"),
        (orjson.dumps(item(kind="video")), "kind 'video' is not one of document, catalogue"),
        (orjson.dumps(item(kind=None)), "kind must be a string"),
        (orjson.dumps(item(title=["a"])), "title must be a string"),
        (orjson.dumps(item(category=3)), "category must be a string"),
        (orjson.dumps(item(ts="2025-01-01")), "ts must be an integer"),
        (orjson.dumps(item(ts=1.5)), "ts must be an integer"),
        (orjson.dumps(item(ts=True)), "ts must be an integer"),
        (orjson.dumps(item(ts=-1)), "ts -1 is out of range"),
        (orjson.dumps(item(ts=10**16)), "out of range"),  # past DateTime64's year 2299
        (orjson.dumps(item(updated_at_ms=None)), "updated_at_ms must be an integer"),
        (orjson.dumps(item(model="m")), "model must be an object, not str"),
        (orjson.dumps(item(model={"name": "m"})), "model.version must be a string"),
        (orjson.dumps(item(model={"version": "v"})), "model.name must be a string"),
        (orjson.dumps(item(embedding=[0.1, 0.2])), "embedding must be an object"),
        (orjson.dumps(item(embedding={**EMBEDDING, "dtype": "float32"})), "dtype 'float32'"),
        (orjson.dumps(item(embedding={**EMBEDDING, "dim": 0})), "dim must be a positive"),
        (orjson.dumps(item(embedding={**EMBEDDING, "dim": "4"})), "dim must be a positive"),
        (orjson.dumps(item(embedding={**EMBEDDING, "dim": 5})), "holds 8 bytes, not 10"),
        (orjson.dumps(item(embedding={**EMBEDDING, "b64": None})), "b64 must be a string"),
        (orjson.dumps(item(embedding={**EMBEDDING, "b64": "AAA"})), "Error"),  # bad padding
    ],
)
def test_broken_item_vectors_are_row_errors(value: bytes, reason: str) -> None:
    with pytest.raises(RowError, match="item vector is malformed") as err:
        item_row(None, value, VECTORS, 0, 1, KAFKA_TS_MS)
    assert reason in str(err.value)


def test_an_item_vector_under_another_key_is_an_error() -> None:
    # A later tombstone for this item would go by the key and never reach the row.
    with pytest.raises(RowError, match=r"key b'acme:doc-8' is not acme:doc-7-0000001"):
        item_of(item(), key=b"acme:doc-8")


# ------------------------------------------------------------------------- recommendation_row


def test_recommendation_row_has_a_value_for_every_column() -> None:
    row = rec_of(recommendation())
    assert len(row) == len(RECOMMENDATION_COLUMNS)
    assert dict(zip(RECOMMENDATION_COLUMNS, row, strict=True)) == {
        "tenant": "acme",
        "user_id": "u-0001",
        "trigger_event_id": "evt-1",
        "ts": utc(REC_TS_MS),
        "event_ts": utc(EVENT_TS_MS),
        "item_ids": ["doc-1", "doc-2"],
        "scores": [0.83, 0.5],
        "cold_start": 0,
        "k": 10,
        "model_name": "aimass-recs",
        "model_version": "1a2b3c",
        "latency_ms": 12.5,
        # Where the recommendations message was, not the trigger event.
        "source_topic": RECS,
        "source_partition": 3,
        "source_offset": 77,
    }


def test_recommendation_defaults_for_optional_keys() -> None:
    rec = without(
        recommendation(latency_ms=3), "event_ts", "cold_start", "k", "trigger_event_ids", "source"
    )
    row = dict(zip(RECOMMENDATION_COLUMNS, rec_of(rec), strict=True))
    assert row["event_ts"] == utc(REC_TS_MS)  # defaults to ts
    assert (row["cold_start"], row["k"], row["latency_ms"]) == (0, 2, 3.0)  # k: the items


def test_a_cold_start_recommendation_may_have_no_items() -> None:
    rec = recommendation(items=[], cold_start=True)
    row = dict(zip(RECOMMENDATION_COLUMNS, rec_of(rec), strict=True))
    assert (row["item_ids"], row["scores"], row["cold_start"]) == ([], [], 1)


def test_recommended_items_keep_their_order() -> None:
    items = [{"item_id": f"i{n}", "score": 1 - n / 10} for n in (3, 1, 2)]
    assert rec_of(recommendation(items=items))[5] == ["i3", "i1", "i2"]


@pytest.mark.parametrize(
    ("rec", "reason"),
    [
        (b"{not json", "JSONDecodeError"),
        (b"null", "recommendation must be an object, not NoneType"),
        (without(recommendation(), "tenant"), "KeyError: 'tenant'"),
        (without(recommendation(), "user_id"), "KeyError: 'user_id'"),
        (without(recommendation(), "trigger_event_id"), "KeyError: 'trigger_event_id'"),
        (without(recommendation(), "items"), "KeyError: 'items'"),
        (without(recommendation(), "ts"), "KeyError: 'ts'"),
        (without(recommendation(), "model"), "KeyError: 'model'"),
        (without(recommendation(), "latency_ms"), "KeyError: 'latency_ms'"),
        (recommendation(tenant=""), "tenant is empty"),
        (recommendation(user_id=1), "user_id must be a string, not 1"),
        (recommendation(trigger_event_id=""), "trigger_event_id is empty"),
        (recommendation(items={"item_id": "x"}), "items must be a list, not dict"),
        (recommendation(items=["doc-1"]), "items[0] must be an object, not str"),
        (recommendation(items=[{"score": 1.0}]), "items[0].item_id must be a string, not None"),
        (recommendation(items=[{"item_id": "", "score": 1.0}]), "items[0].item_id is empty"),
        (recommendation(items=[{"item_id": "a"}]), "items[0].score must be a number, not None"),
        (
            recommendation(items=[{"item_id": "a", "score": 1}, {"item_id": "b", "score": "x"}]),
            "items[1].score must be a number, not 'x'",
        ),
        (recommendation(items=[{"item_id": "a", "score": True}]), "score must be a number"),
        (
            recommendation(items=[{"item_id": "a", "score": 1}, {"item_id": "a", "score": 0.5}]),
            "item 'a' appears twice",
        ),
        (recommendation(ts="now"), "ts must be an integer"),
        (recommendation(ts=-5), "ts -5 is out of range"),
        (recommendation(event_ts=1.5), "event_ts must be an integer"),
        (recommendation(cold_start="no"), "cold_start must be true or false, not 'no'"),
        (recommendation(cold_start=0), "cold_start must be true or false, not 0"),
        (recommendation(k="10"), "k must be an integer"),
        (recommendation(k=70_000), "k 70000 is out of range"),  # UInt16
        (recommendation(latency_ms="fast"), "latency_ms must be a number"),
        (recommendation(latency_ms=-1.0), "latency_ms -1.0 is negative"),
        # Fuzz finds: a Float32 column cannot hold these; the insert batch failed for good.
        (recommendation(latency_ms=1e39), "latency_ms 1e+39 does not fit a Float32"),
        (
            recommendation(items=[{"item_id": "a", "score": -1e39}]),
            "items[0].score -1e+39 does not fit a Float32",
        ),
        (recommendation(model=None), "model must be an object, not NoneType"),
        (recommendation(model={"name": "m", "version": 3}), "model.version must be a string"),
    ],
)
def test_broken_recommendations_are_row_errors(rec: Any, reason: str) -> None:
    value = rec if isinstance(rec, bytes) else orjson.dumps(rec)
    with pytest.raises(RowError, match="recommendation is malformed") as err:
        recommendation_row(value, RECS, 0, 1)
    assert reason in str(err.value)


# --------------------------------------------------------------------------- the sink role

ITEMS_TP = TopicPartition(VECTORS, 1)
RECS_TP = TopicPartition(RECS, 4)


@dataclass
class Message:
    value: bytes | None
    offset: int
    key: bytes | None = None
    timestamp: int = KAFKA_TS_MS


def test_the_sink_stores_items_and_recommendations_and_dead_letters_broken_ones(
    tmp_path: Path,
) -> None:
    client = RecordingClient()
    sink = SinkService(Settings(data_dir=tmp_path), "unused:9092", client)
    consumer = FakeConsumer(ITEMS_TP, RECS_TP)
    sink.consumer = consumer
    items = [
        Message(orjson.dumps(item()), 10, b"acme:doc-7-0000001"),
        Message(None, 11, b"acme:doc-3"),  # a tombstone
        Message(None, 12, b"no-colon"),  # a tombstone nobody can place
        Message(orjson.dumps(item(item_id="doc-9")), 13, b"acme:doc-9"),
    ]
    recs = [
        Message(orjson.dumps(recommendation()), 20),
        Message(orjson.dumps(recommendation(items="doc-1")), 21),
    ]
    sink._buffer({ITEMS_TP: items, RECS_TP: recs})
    asyncio.run(sink.flush())
    tables = {table: (rows, columns, s) for table, rows, columns, s in client.inserts}
    rows, columns, settings = tables["items"]
    assert columns == ITEM_COLUMNS
    assert [(r[1], r[8]) for r in rows] == [("doc-7-0000001", 0), ("doc-3", 1), ("doc-9", 0)]
    assert settings["insert_deduplication_token"].startswith("items|aimass.item-vectors:1:10-13|")
    rows, columns, settings = tables["recommendations"]
    assert columns == RECOMMENDATION_COLUMNS
    assert [(r[2], r[14]) for r in rows] == [("evt-1", 20)]
    token = settings["insert_deduplication_token"]
    assert token.startswith("recommendations|aimass.recommendations:4:20-20|")
    dead = {(r[0], r[2]): r for r in tables["dead_letters"][0]}
    assert set(dead) == {(VECTORS, 12), (RECS, 21)}
    tombstone = dead[(VECTORS, 12)]
    assert tombstone[4:7] == ["sink", "item-vector tombstone key b'no-colon' is not tenant:item_id",
                              "RowError"]  # fmt: skip
    assert tombstone[8] == 0  # raw_bytes: a tombstone has none
    broken = dead[(RECS, 21)]
    assert broken[5] == "recommendation is malformed: TypeError: items must be a list, not str"
    assert base64.b64decode(broken[7]) == recs[1].value
    # Once, after every table was inserted, past the dead letters too.
    assert consumer.commits == [{ITEMS_TP: 14, RECS_TP: 22}]


def test_the_sink_subscribes_to_item_vectors_and_recommendations(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    sink = SinkService(settings, "unused:9092", RecordingClient())

    class Subscriber:
        def __init__(self) -> None:
            self.topics: list[str] = []

        def subscribe(self, topics: list[str], listener: Any) -> None:
            self.topics = topics

    subscriber = Subscriber()
    sink._subscribe(subscriber)
    assert set(subscriber.topics) == {
        settings.topic_enriched,
        settings.topic_dlq,
        settings.topic_events,
        settings.topic_item_vectors,
        settings.topic_recommendations,
    }
