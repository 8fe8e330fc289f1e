"""LossWatch against the embedded broker, whose ~5 MiB per partition retention deletes records
whatever was consumed: a group that falls that far behind is moved on without a word by its
consumer; the watch says what was lost, and nothing else counts as a loss."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from stream_aimass.kafka.clients import make_consumer
from stream_aimass.kafka.embedded import EmbeddedBroker
from stream_aimass.kafka.retention import LossWatch, Lost
from stream_aimass.settings import Settings
from stream_aimass.testing import produce_with_librdkafka

TOPIC = "t.retention"
TP = TopicPartition(TOPIC, 0)
BIG = b"x" * 200_000  # 30 of these are more than the broker keeps of one partition


@pytest.fixture()
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        b.create_topics([(TOPIC, 1)])
        yield b


def _produce(broker: EmbeddedBroker, values: list[bytes]) -> None:
    # One message per request: the broker deletes whole message sets.
    produce_with_librdkafka(broker.bootstrap, TOPIC, [(None, v) for v in values], **{
        "linger.ms": 0, "batch.num.messages": 1
    })  # fmt: skip


async def _read_to(consumer: Any, watch: LossWatch, end: int, start: int = 0) -> list[Lost]:
    """Fetch from ``start`` until offset ``end`` through ``watch``, then commit ``end``."""
    lost: list[Lost] = []
    position = start
    while position < end:
        records = await consumer.getmany(timeout_ms=1000)
        if records:
            lost += await watch.check(consumer, records)
            position = records[TP][-1].offset + 1
    await consumer.commit({TP: end})
    return lost


async def _fetch_all(broker: EmbeddedBroker, group: str, watch: LossWatch) -> list[Lost]:
    """Join ``group``, fetch to the end of the topic through ``watch``, commit."""
    consumer = make_consumer(Settings(), broker.bootstrap, group, TOPIC)
    await consumer.start()
    try:
        return await _read_to(consumer, watch, (await consumer.end_offsets([TP]))[TP], -1)
    finally:
        await consumer.stop()


def test_records_deleted_before_a_group_read_them_are_found(broker: EmbeddedBroker) -> None:
    _produce(broker, [b"a", b"b", b"c"])
    assert asyncio.run(_fetch_all(broker, "g", LossWatch())) == []  # commits 3
    _produce(broker, [BIG] * 40 + [b"last"])
    low = _low_watermark(broker)
    assert low > 3, "the broker kept everything: the test needs more data"
    # A new process of the group: its committed 3 was deleted.
    lost = asyncio.run(_fetch_all(broker, "g", LossWatch()))
    assert lost == [Lost(TOPIC, 0, 3, low)]
    assert lost[0].count == low - 3
    assert "offsets 3 to" in lost[0].describe("sink") and "retention" in lost[0].describe("sink")


def test_a_group_that_kept_up_loses_nothing(broker: EmbeddedBroker) -> None:
    """Deleted records that were read are no loss; nor are records of a group that never
    committed (it starts at the oldest record there is)."""

    async def keep_up() -> list[Lost]:
        consumer = make_consumer(Settings(), broker.bootstrap, "g", TOPIC)
        await consumer.start()
        watch, lost = LossWatch(), []
        try:
            for produced in range(10, 50, 10):  # read as it comes, before it is deleted
                await asyncio.to_thread(_produce, broker, [BIG] * 10)
                lost += await _read_to(consumer, watch, produced, produced - 10)
        finally:
            await consumer.stop()
        return lost

    assert asyncio.run(keep_up()) == []
    assert _low_watermark(broker) > 0
    assert asyncio.run(_fetch_all(broker, "new-group", LossWatch())) == []


class _Consumer:
    def __init__(self, committed: int | None, begin: int) -> None:
        self._committed, self._begin = committed, begin
        self.asked_begin = 0

    async def committed(self, tp: Any) -> int | None:
        return self._committed

    async def beginning_offsets(self, tps: list[Any]) -> dict[Any, int]:
        self.asked_begin += 1
        return {tp: self._begin for tp in tps}


def _records(*offsets: int) -> dict[Any, list[Any]]:
    return {TP: [SimpleNamespace(offset=o) for o in offsets]}


def test_gaps_that_are_no_loss_are_not_reported() -> None:
    """A compacted topic or a transaction's marker leaves a gap in the offsets, but the
    broker still starts the partition before it."""
    watch = LossWatch()
    consumer = _Consumer(committed=10, begin=0)
    assert asyncio.run(watch.check(consumer, _records(10, 11))) == []
    assert consumer.asked_begin == 0  # no gap: the broker is not asked
    assert asyncio.run(watch.check(consumer, _records(13, 14))) == []  # gap, begin 0
    assert consumer.asked_begin == 1


def test_a_forgotten_partition_is_checked_against_the_commit_again() -> None:
    watch = LossWatch()
    consumer = _Consumer(committed=5, begin=0)
    asyncio.run(watch.check(consumer, _records(5, 6)))
    watch.forget([TP])
    consumer._committed, consumer._begin = 7, 20
    assert asyncio.run(watch.check(consumer, _records(20))) == [Lost(TOPIC, 0, 7, 20)]


def _low_watermark(broker: EmbeddedBroker) -> int:
    from confluent_kafka import Consumer
    from confluent_kafka import TopicPartition as CTP

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "low"})
    try:
        return int(c.get_watermark_offsets(CTP(TOPIC, 0), timeout=10)[0])
    finally:
        c.close()
