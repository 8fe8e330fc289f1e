"""The sink's librdkafka consumer on the embedded broker: what it hands out, commits and
positions, the rebalance listener on the event loop, an unreadable batch, and a group
shared with aiokafka members."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import ConsumerRebalanceListener, TopicPartition

from stream_aimass.kafka.clients import make_consumer, make_sink_consumer
from stream_aimass.kafka.compat import unreadable_batch
from stream_aimass.kafka.consumer import RdKafkaConsumer
from stream_aimass.kafka.embedded import EmbeddedBroker
from stream_aimass.settings import Settings
from stream_aimass.testing import (
    KAFKA_CODECS,
    produce_raw_batch,
    produce_with_librdkafka,
    record_batch,
)

TOPIC = "t.sink"


@pytest.fixture()
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        b.create_topics([(TOPIC, 3)])
        yield b


def _consumer(broker: EmbeddedBroker, group: str | None = None) -> RdKafkaConsumer:
    consumer = make_sink_consumer(Settings(), broker.bootstrap, group or uuid.uuid4().hex)
    assert isinstance(consumer, RdKafkaConsumer)  # the sink's default client
    return consumer


async def _drain(consumer: Any, expected: int, rounds: int = 200) -> dict[TopicPartition, list]:
    got: dict[TopicPartition, list[Any]] = {}
    for _ in range(rounds):
        for tp, records in (await consumer.getmany(timeout_ms=100, max_records=50)).items():
            got.setdefault(tp, []).extend(records)
        if sum(len(r) for r in got.values()) >= expected:
            break
    return got


class Recorder(ConsumerRebalanceListener):  # type: ignore[misc]
    """Records each callback and the thread it ran on; ``on_revoke`` runs while revoking."""

    def __init__(self, on_revoke: Any = None) -> None:
        self.calls: list[tuple[str, set[TopicPartition], int]] = []
        self.on_revoke = on_revoke

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.calls.append(("assigned", set(assigned), threading.get_ident()))

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.calls.append(("revoked", set(revoked), threading.get_ident()))
        if self.on_revoke is not None and revoked:
            await self.on_revoke(revoked)


@pytest.mark.parametrize("codec", KAFKA_CODECS)
def test_every_record_comes_once_per_partition_in_order_with_its_fields(
    broker: EmbeddedBroker, codec: str
) -> None:
    sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(120)]
    produce_with_librdkafka(broker.bootstrap, TOPIC, sent, codec=codec, timestamps=[
        1_700_000_000_000 + i for i in range(120)])  # fmt: skip

    async def run() -> dict[TopicPartition, list[Any]]:
        consumer = _consumer(broker)
        await consumer.start()
        consumer.subscribe([TOPIC])
        try:
            return await _drain(consumer, len(sent))
        finally:
            await consumer.stop()

    got = asyncio.run(run())
    assert len(got) == 3  # every partition got records
    for tp, records in got.items():
        assert [r.offset for r in records] == list(range(len(records)))
        assert all(r.topic == tp.topic and r.partition == tp.partition for r in records)
    by_key = {r.key: r for records in got.values() for r in records}
    assert sorted(by_key) == sorted(k for k, _ in sent)
    assert all(by_key[k].value == v for k, v in sent)
    assert by_key[b"k7"].timestamp == 1_700_000_000_007


def test_max_records_bounds_each_answer(broker: EmbeddedBroker) -> None:
    produce_with_librdkafka(broker.bootstrap, TOPIC, [(None, b"x")] * 300)

    async def run() -> list[int]:
        consumer = _consumer(broker)
        await consumer.start()
        consumer.subscribe([TOPIC])
        sizes: list[int] = []
        try:
            while sum(sizes) < 300:
                got = await consumer.getmany(timeout_ms=200, max_records=40)
                sizes.append(sum(len(r) for r in got.values()))
        finally:
            await consumer.stop()
        return sizes

    sizes = asyncio.run(run())
    assert sum(sizes) == 300 and max(sizes) <= 40


def test_commits_positions_and_watermarks(broker: EmbeddedBroker) -> None:
    produce_with_librdkafka(broker.bootstrap, TOPIC, [(None, b"x")] * 30, partition=1)
    tp = TopicPartition(TOPIC, 1)
    group = uuid.uuid4().hex

    async def first() -> tuple[int | None, int | None, int | None, dict[Any, int], int | None]:
        consumer = _consumer(broker, group)
        await consumer.start()
        consumer.subscribe([TOPIC])
        try:
            got = await _drain(consumer, 30)
            assert len(got[tp]) == 30 and tp in consumer.assignment()
            before = await consumer.committed(tp)
            await consumer.commit({tp: 12})
            after = await consumer.committed(tp)
            begins = await consumer.beginning_offsets([tp])
            return before, after, consumer.highwater(tp), begins, await consumer.position(tp)
        finally:
            await consumer.stop()

    before, after, high, begins, position = asyncio.run(first())
    assert (before, after, high, begins, position) == (None, 12, 30, {tp: 0}, 30)

    async def again() -> list[int]:
        consumer = _consumer(broker, group)  # the same group starts where it committed
        await consumer.start()
        consumer.subscribe([TOPIC])
        try:
            return [r.offset for r in (await _drain(consumer, 18)).get(tp, [])]
        finally:
            await consumer.stop()

    assert asyncio.run(again()) == list(range(12, 30))


def test_the_listener_runs_on_the_event_loop_and_commits_before_the_partitions_go(
    broker: EmbeddedBroker,
) -> None:
    produce_with_librdkafka(broker.bootstrap, TOPIC, [(None, b"x")] * 30)
    group = uuid.uuid4().hex

    async def run() -> tuple[Recorder, int]:
        consumer = _consumer(broker, group)

        async def commit_all(revoked: list[TopicPartition]) -> None:
            ends = {tp: consumer.highwater(tp) or 0 for tp in revoked}
            await consumer.commit(ends)

        listener = Recorder(on_revoke=commit_all)
        await consumer.start()
        consumer.subscribe([TOPIC], listener=listener)
        await _drain(consumer, 30)
        await consumer.stop()  # leaving the group revokes everything
        return listener, threading.get_ident()

    listener, loop_thread = asyncio.run(run())
    kinds = [kind for kind, _, _ in listener.calls]
    assert kinds[0] == "assigned" and kinds[-1] == "revoked"
    assert listener.calls[0][1] == {TopicPartition(TOPIC, p) for p in range(3)}
    assert {thread for _, _, thread in listener.calls} == {loop_thread}

    async def committed() -> list[Any]:
        probe = make_consumer(Settings(), broker.bootstrap, group)
        await probe.start()
        try:
            return [await probe.committed(TopicPartition(TOPIC, p)) for p in range(3)]
        finally:
            await probe.stop()

    assert sum(asyncio.run(committed())) == 30  # committed in the revocation, before leaving


def test_an_unreadable_batch_becomes_one_marker_and_its_partition_goes_on(
    broker: EmbeddedBroker,
) -> None:
    produce_with_librdkafka(broker.bootstrap, TOPIC, [(None, b"before")] * 3, partition=0)
    corrupt = record_batch([b"lost"] * 5, "lz4", corrupt=True)
    first = produce_raw_batch(broker.bootstrap, TOPIC, 0, corrupt)
    produce_with_librdkafka(broker.bootstrap, TOPIC, [(None, b"after")] * 4, partition=0)
    produce_with_librdkafka(broker.bootstrap, TOPIC, [(None, b"other")] * 6, partition=2)

    async def run() -> dict[TopicPartition, list[Any]]:
        consumer = _consumer(broker)
        await consumer.start()
        consumer.subscribe([TOPIC])
        try:
            return await _drain(consumer, 3 + 1 + 4 + 6)
        finally:
            await consumer.stop()

    got = asyncio.run(run())
    p0 = got[TopicPartition(TOPIC, 0)]
    assert [r.value for r in p0] == [b"before"] * 3 + [None] + [b"after"] * 4
    bad = unreadable_batch(p0[3])
    assert bad is not None and (bad.first_offset, bad.last_offset) == (first, first + 4)
    # The raw batch as the broker keeps it: what was sent, from the attributes on (what its
    # CRC covers), at the offset the broker gave it.
    assert bad.codec == "lz4" and len(bad.raw) == len(corrupt) and bad.raw[21:] == corrupt[21:]
    assert int.from_bytes(bad.raw[:8], "big") == first
    assert [r.offset for r in p0[4:]] == [first + 5 + i for i in range(4)]
    assert [r.value for r in got[TopicPartition(TOPIC, 2)]] == [b"other"] * 6


def test_librdkafka_and_aiokafka_members_share_one_group(broker: EmbeddedBroker) -> None:
    """A sink group mid-upgrade (one member on each client) splits the partitions between
    them, and each reads what its partitions hold once."""
    group = uuid.uuid4().hex
    sent = [(None, f"{i}".encode()) for i in range(90)]

    async def run() -> tuple[list[bytes], set[TopicPartition], set[TopicPartition]]:
        theirs = make_consumer(Settings(), broker.bootstrap, group)
        ours = _consumer(broker, group)
        await theirs.start()
        await ours.start()
        theirs.subscribe([TOPIC])
        ours.subscribe([TOPIC])
        values: list[bytes] = []
        produced = False
        try:
            for _ in range(1200):
                a, b = await asyncio.gather(
                    theirs.getmany(timeout_ms=100), ours.getmany(timeout_ms=100)
                )
                for got in (a, b):
                    values.extend(r.value for records in got.values() for r in records)
                split = theirs.assignment(), ours.assignment()
                settled = all(split) and len(split[0] | split[1]) == 3
                if settled and not produced:  # both members hold partitions: now produce
                    await asyncio.to_thread(produce_with_librdkafka, broker.bootstrap, TOPIC, sent)
                    produced = True
                if produced and len(values) >= len(sent):
                    break
            return values, set(theirs.assignment()), ours.assignment()
        finally:
            await ours.stop()
            await theirs.stop()

    values, theirs, ours = asyncio.run(run())
    assert theirs and ours and not theirs & ours
    assert len(theirs | ours) == 3
    assert sorted(values) == sorted(v for _, v in sent)
