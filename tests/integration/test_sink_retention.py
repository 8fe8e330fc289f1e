"""A sink that falls behind the embedded broker's retention (~5 MiB per partition) loses the
records deleted meanwhile: it must say so (an error, aimass_records_lost_total, a dead letter
of stage ``retention`` naming the offsets) and store everything still there."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from stream_aimass.pipeline import Stack, open_clickhouse
from stream_aimass.records import Category, Document, EnrichedDocument, ModelRef, Source
from stream_aimass.settings import Settings
from stream_aimass.sink.service import SinkService
from stream_aimass.testing import produce_with_librdkafka


def enriched(doc_id: str, offset: int, meta_bytes: int = 0) -> bytes:
    doc = Document(doc_id, "acme", 1_700_000_000_000, "text",
                   Source("aimass.documents", 0, offset, 1_700_000_000_001))  # fmt: skip
    record = EnrichedDocument(
        doc,
        3,
        (Category("sports", 0.5),),
        b"\x00\x00",
        1,
        ModelRef("m", "v1"),
        {},
        1_700_000_000_002,
    )
    rec = orjson.loads(record.to_json())
    rec["meta"] = {"padding": "x" * meta_bytes}
    return orjson.dumps(rec)


def produce(settings: Settings, bootstrap: str, values: list[bytes]) -> None:
    # One message per request onto partition 0: the broker deletes whole message sets.
    produce_with_librdkafka(bootstrap, settings.topic_enriched, [(None, v) for v in values],
                            partition=0, **{"linger.ms": 0, "batch.num.messages": 1})  # fmt: skip


def low_watermark(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "low"})
    try:
        return int(c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[0])
    finally:
        c.close()


async def run_until(sink: SinkService, done: Any, timeout: float = 90) -> None:
    task = asyncio.create_task(sink.run())
    deadline = time.monotonic() + timeout
    try:
        while not done():
            assert not task.done(), f"the sink stopped: {task.exception()!r}"
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.05)
    finally:
        sink.stop()
        await task


def test_records_deleted_before_the_sink_read_them_are_reported(settings: Settings) -> None:
    settings = settings.model_copy(update={"recs_enabled": False})
    stack = Stack.start(settings)
    try:
        client = open_clickhouse(settings)
        produce(settings, stack.bootstrap, [enriched(f"early-{i}", i) for i in range(3)])
        first = SinkService(settings, stack.bootstrap, client)
        asyncio.run(run_until(first, lambda: first.stored("documents") == 3))
        # The sink is away while ~8 MiB arrive on the partition: the broker keeps ~5.
        big = [enriched(f"big-{i}", 3 + i, meta_bytes=200_000) for i in range(40)]
        produce(settings, stack.bootstrap, [*big, enriched("last", 43)])
        low = low_watermark(stack.bootstrap, settings.topic_enriched)
        assert low > 3, "the broker kept everything: the test needs more data"
        second = SinkService(settings, stack.bootstrap, client)
        asyncio.run(run_until(second, lambda: second.stored("documents") == 44 - low))
        lost = second.metrics.value(
            "aimass_records_lost_total", role="sink", topic=settings.topic_enriched
        )
        assert lost == low - 3
        assert second.stored("dead_letters") == 1
        dead = client.query(
            "SELECT stage, error_type, source_offset, reason FROM dead_letters FINAL"
        ).result_rows
        assert len(dead) == 1
        stage, error_type, offset, reason = dead[0]
        assert (stage, error_type, offset) == ("retention", "RecordsLost", 3)
        assert f"{low - 3} records of {settings.topic_enriched}[0]" in reason
        assert f"offsets 3 to {low - 1}" in reason
        ids = {r[0] for r in client.query("SELECT doc_id FROM documents FINAL").result_rows}
        survivors = {f"big-{i}" for i in range(low - 3, 40)} | {"last"}
        assert ids == {f"early-{i}" for i in range(3)} | survivors
        assert (
            first.metrics.value(
                "aimass_records_lost_total", role="sink", topic=settings.topic_enriched
            )
            == 0
        )
    finally:
        stack.close()
