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
from sink_doubles import FakeConsumer, RecordingClient

from stream_aimass.settings import Settings
from stream_aimass.sink.service import SinkService

ENRICHED = TopicPartition("aimass.enriched", 0)


@dataclass
class Message:
    value: bytes
    offset: int
    timestamp: int = 1_735_689_600_000
    key: bytes | None = None


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
    consumer = FakeConsumer(ENRICHED)
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
    assert tokens["classifications"].startswith("classifications|aimass.enriched:0:10-12|")
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


def mentioned(doc_id: str, entities: Any) -> bytes:
    rec = orjson.loads(record(doc_id, [intent()]))
    rec["entities"] = entities
    rec["entities_model"] = {
        "ner": {"name": "wikigold-ner", "version": "abc123def456"},
        "kb": {"name": "demo-kb", "version": "0123456789ab"},
    }
    return orjson.dumps(rec)


def apple(start: int = 0) -> dict[str, Any]:
    return {
        "text": "Apple",
        "start": start,
        "end": start + 5,
        "label": "ORG",
        "entity_id": "company/apple",
        "name": "Apple Inc.",
        "score": 0.83,
    }


NIL = {"text": "Zorblatt", "start": 20, "end": 28, "label": "ORG", "entity_id": None,
       "name": None, "score": 0.12}  # fmt: skip


def test_enriched_records_feed_entity_mentions(tmp_path: Path) -> None:
    sink, client, consumer = service(tmp_path)
    messages = [
        Message(mentioned("d1", [apple(), NIL]), 10),
        Message(record("d2"), 11),  # an older producer: no entities
        Message(mentioned("d3", [apple(7)]), 12),
    ]
    sink._buffer({ENRICHED: messages})
    asyncio.run(sink.flush())
    tables = {table: rows for table, rows, _, _ in client.inserts}
    assert [r[1] for r in tables["documents"]] == ["d1", "d2", "d3"]
    assert [(r[1], r[3], r[7]) for r in tables["entity_mentions"]] == [
        ("d1", 0, "company/apple"),
        ("d1", 20, ""),
        ("d3", 7, "company/apple"),
    ]
    tokens = {table: s["insert_deduplication_token"] for table, _, _, s in client.inserts}
    assert tokens["entity_mentions"].startswith("entity_mentions|aimass.enriched:0:10-12|")
    assert consumer.commits == [{ENRICHED: 13}]  # once, after every table was inserted


def test_malformed_entities_make_the_whole_record_a_dead_letter(tmp_path: Path) -> None:
    sink, client, consumer = service(tmp_path)
    broken = apple()
    broken["start"], broken["end"] = 9, 4
    messages = [
        Message(mentioned("d1", [apple()]), 10),
        Message(mentioned("bad", [apple(30), broken]), 11),  # the first mention is fine
    ]
    sink._buffer({ENRICHED: messages})
    asyncio.run(sink.flush())
    tables = {table: rows for table, rows, _, _ in client.inserts}
    assert [r[1] for r in tables["documents"]] == ["d1"]  # no part of the broken record
    assert [r[1] for r in tables["classifications"]] == ["d1"]
    assert [r[1] for r in tables["entity_mentions"]] == ["d1"]
    (dead,) = tables["dead_letters"]
    assert dead[4] == "sink" and "malformed entities" in dead[5]
    assert consumer.commits == [{ENRICHED: 12}]


def test_buffered_rows_counts_what_waits_for_clickhouse(tmp_path: Path) -> None:
    sink, client, _ = service(tmp_path)
    sink._buffer({ENRICHED: [Message(record(f"d{i}", [intent()]), i) for i in range(3)]})
    assert client.inserts == []
    buffered = sink.buffered_rows()
    assert buffered["documents"] == 3 and buffered["classifications"] == 3
    assert sum(buffered.values()) == 6
    asyncio.run(sink.flush())
    assert sum(sink.buffered_rows().values()) == 0
    assert [table for table, *_ in client.inserts] == ["documents", "classifications"]


def test_a_sink_needs_a_client_or_a_way_to_connect(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(ValueError):
        SinkService(Settings(data_dir=tmp_path), "unused:9092")


def test_a_sink_whose_clickhouse_is_down_stays_up_not_ready_and_retries(tmp_path: Path) -> None:
    """A ClickHouse server on a closed port: the real driver fails to connect; the sink
    keeps retrying with backoff, never joins the group, reports not ready, and stops
    cleanly when asked."""
    from stream_aimass.pipeline import open_clickhouse
    from stream_aimass.testing import free_port

    down = Settings(
        data_dir=tmp_path,
        clickhouse_dsn=f"http://127.0.0.1:{free_port()}",
        sink_retry_max_s=0.2,
    )
    sink = SinkService(down, "unused:9092", connect=lambda: open_clickhouse(down))

    async def run() -> tuple[bool, bool, int]:
        task = asyncio.create_task(sink.run())
        readiness = []
        for _ in range(15):
            await asyncio.sleep(0.1)
            readiness.append(sink.ready)
        alive = not task.done()
        sink.stop()
        await asyncio.wait_for(task, 10)  # returns, does not raise
        return alive, any(readiness), sink.connect_failures

    alive, ever_ready, failures = asyncio.run(run())
    assert alive and not ever_ready
    assert failures >= 3
    assert sink.metrics.value("aimass_clickhouse_connect_failures_total") == failures
    assert sink.consumer is None  # never joined the group


def test_caught_up_rows_go_at_once_but_at_most_once_per_interval(tmp_path: Path) -> None:
    """A burst is inserted as soon as the sink has caught up, not after a fixed wait; under a
    stream of bursts, inserts are spaced by sink_min_interval_ms; sink_max_wait_ms bounds
    every row's wait."""
    now = [100.0]
    settings = Settings(data_dir=tmp_path, sink_max_wait_ms=1000, sink_min_interval_ms=200)
    sink = SinkService(settings, "unused:9092", RecordingClient(), clock=lambda: now[0])
    assert sink._fetch_timeout_ms() == 100  # nothing held: an ordinary fetch wait
    sink._buffer({ENRICHED: [Message(record("d1"), 1)]})
    assert not sink._due(caught_up=False)  # more may come in this fetch round
    assert sink._fetch_timeout_ms() == 0  # no insert for a while: check at once
    assert sink._due(caught_up=True)  # caught up: insert now
    sink._last_flush = now[0]
    for buf in sink._buffers:
        buf.clear()
    now[0] += 0.05
    sink._buffer({ENRICHED: [Message(record("d2"), 2)]})
    assert not sink._due(caught_up=True)  # caught up, but an insert went 50 ms ago
    assert sink._fetch_timeout_ms() == 150  # the fetch may wait until the interval is over
    now[0] += 0.15
    assert sink._due(caught_up=True)
    assert not sink._due(caught_up=False)
    now[0] += 0.85  # d2 has waited sink_max_wait_ms: due whatever else happens
    assert sink._due(caught_up=False)


def test_a_backlog_behind_the_rows_makes_them_wait_for_a_bigger_insert(tmp_path: Path) -> None:
    """While the last fetch left records on the broker, the time limit is
    sink_backlog_wait_ms: under a backlog every fetch brings rows, and inserting every
    sink_max_wait_ms would write many small parts."""
    now = [100.0]
    settings = Settings(data_dir=tmp_path, sink_max_wait_ms=200, sink_backlog_wait_ms=1000)
    sink = SinkService(settings, "unused:9092", RecordingClient(), clock=lambda: now[0])
    consumer = FakeConsumer(ENRICHED)
    sink.consumer = consumer
    fetched = {ENRICHED: [Message(record(f"d{i}"), i) for i in range(3)]}
    consumer.highwaters[ENRICHED] = 50  # 47 more records wait on the broker
    sink._buffer(fetched)
    assert sink._backlog_behind(fetched)
    sink._behind = True
    now[0] += 0.3
    assert not sink._due()  # past sink_max_wait_ms, but a backlog waits behind
    now[0] += 0.7
    assert sink._due()
    consumer.highwaters[ENRICHED] = 3  # the fetch reached the end: caught up
    assert not sink._backlog_behind(fetched)
    sink._behind = False
    assert sink._due()
    assert not sink._backlog_behind({})


def test_an_empty_fetch_in_the_middle_of_a_backlog_is_not_caught_up(tmp_path: Path) -> None:
    """Draining a backlog, a fetch can come back empty only because the consumer's next
    fetch is not back yet: inserting then would write a small part. Caught up is an empty
    fetch after one that reached the end, or a whole broker fetch wait without records."""
    now = [100.0]
    settings = Settings(data_dir=tmp_path, fetch_max_wait_ms=50)
    sink = SinkService(settings, "unused:9092", RecordingClient(), clock=lambda: now[0])
    sink._behind, sink._fetched_at = True, now[0]
    assert not sink._caught_up({ENRICHED: [Message(record("d1"), 1)]})
    now[0] += 0.01
    assert not sink._caught_up({})  # the next fetch is still on its way
    now[0] += 0.04
    assert sink._caught_up({})  # a whole fetch wait brought nothing: the end
    sink._behind, sink._fetched_at = False, now[0]
    assert sink._caught_up({})  # the last fetch reached the end of its partitions


def test_the_backlog_wait_is_never_shorter_than_the_ordinary_one(tmp_path: Path) -> None:
    now = [100.0]
    settings = Settings(data_dir=tmp_path, sink_max_wait_ms=500, sink_backlog_wait_ms=100)
    sink = SinkService(settings, "unused:9092", RecordingClient(), clock=lambda: now[0])
    sink._buffer({ENRICHED: [Message(record("d1"), 1)]})
    sink._behind = True
    now[0] += 0.2
    assert not sink._due()
    now[0] += 0.3
    assert sink._due()


class DownClient(RecordingClient):
    """Refuses every insert like an unreachable server while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    def insert(self, table: str, rows: list[list[Any]], **kwargs: Any) -> None:
        if self.down:
            raise ConnectionError("Connection refused (test)")
        super().insert(table, rows, **kwargs)


def test_rows_a_failing_flush_holds_are_still_counted_as_held(tmp_path: Path) -> None:
    """While ClickHouse is down the rows being retried are held: buffered_rows says so, the
    consumer is paused, the sink is not ready, nothing is committed."""
    client = DownClient()
    sink = SinkService(Settings(data_dir=tmp_path, sink_retry_max_s=0.02), "unused:9092", client)
    consumer = FakeConsumer(ENRICHED)
    sink.consumer = consumer
    sink.ready = True

    async def scenario() -> None:
        sink._buffer({ENRICHED: [Message(record(f"d{i}", [intent()]), i) for i in range(4)]})
        flush = asyncio.create_task(sink.flush())
        while sink.writer.failures < 3:
            await asyncio.sleep(0.01)
        assert sink.buffered_rows()["documents"] == 4
        assert sink.buffered_rows()["classifications"] == 4
        assert consumer.paused == {ENRICHED} and not sink.ready
        assert consumer.commits == []
        client.down = False
        await flush

    asyncio.run(scenario())
    assert sum(sink.buffered_rows().values()) == 0
    assert consumer.commits == [{ENRICHED: 4}] and consumer.paused == set() and sink.ready


def _tokens(tmp_path: Path, messages: list[Message]) -> dict[str, str]:
    sink, client, _ = service(tmp_path)
    sink._buffer({ENRICHED: messages})
    asyncio.run(sink.flush())
    return {table: s["insert_deduplication_token"] for table, _, _, s in client.inserts}


def test_the_same_messages_give_the_same_insert_token(tmp_path: Path) -> None:
    """A retried (or re-delivered) insert of the same rows is dropped by ClickHouse."""
    messages = [Message(record("d1", [intent()]), 10), Message(record("d2"), 11)]
    assert _tokens(tmp_path, messages) == _tokens(tmp_path, list(messages))


def test_new_messages_at_reused_offsets_get_new_insert_tokens(tmp_path: Path) -> None:
    """After a broker restart (or a recreated topic) offsets start again at 0: the rows of
    new messages at the same offsets must never be taken for a retry of the old ones."""
    first = _tokens(tmp_path, [Message(record("d1", [intent()]), 0), Message(record("d2"), 1)])
    cases = {
        "other value": [Message(record("d9", [intent()]), 0), Message(record("d2"), 1)],
        "other timestamp": [
            Message(record("d1", [intent()]), 0, timestamp=1),
            Message(record("d2"), 1),
        ],
        "other key": [
            Message(record("d1", [intent()]), 0, key=b"acme:d1"),
            Message(record("d2"), 1),
        ],
    }
    for name, messages in cases.items():
        again = _tokens(tmp_path, messages)
        assert again["documents"] != first["documents"], name
        assert again["documents"].split("|")[1] == first["documents"].split("|")[1], name
