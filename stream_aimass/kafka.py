"""Kafka clients built from settings, and offset bookkeeping for at-least-once commits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from stream_aimass.settings import Settings

log = logging.getLogger("stream_aimass.kafka")

MAX_REQUEST_BYTES = 4 * 1024 * 1024


def _retry_invalid_sync_group() -> None:
    """Make SyncGroup's INVALID_REQUEST a retried rejoin instead of a dead coordinator.

    The embedded broker (librdkafka's mock cluster) answers SyncGroup with INVALID_REQUEST
    when two members join a group at once. aiokafka treats that as fatal: its coordinator
    stops for good. Our own batch consumers are replaced when that happens
    (:func:`replace_consumer`), but Faust's consumer (the recommendation path's events
    agent) has no such hook and would hang the worker. The rejoin is already requested
    when the error is raised, so returning "no assignment" makes aiokafka back off and
    join again, which is what a transient group error calls for.
    """
    from aiokafka.consumer import group_coordinator

    rebalance = group_coordinator.CoordinatorGroupRebalance
    if getattr(rebalance, "_aimass_patched", False):
        return
    original = rebalance.perform_group_join

    async def perform_group_join(self: Any) -> Any:
        try:
            return await original(self)
        except KafkaError as exc:
            if "InvalidRequestError" not in str(exc):
                raise
            log.warning("group %s: SyncGroup got INVALID_REQUEST; joining again", self.group_id)
            return None

    rebalance.perform_group_join = perform_group_join
    rebalance._aimass_patched = True


_retry_invalid_sync_group()


def make_consumer(
    settings: Settings, bootstrap: str, group_id: str | None, *topics: str, **overrides: Any
) -> AIOKafkaConsumer:
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": settings.fetch_max_wait_ms,
        "max_poll_records": settings.fetch_max_records,
        "max_partition_fetch_bytes": MAX_REQUEST_BYTES,
        "session_timeout_ms": 10_000,
        "heartbeat_interval_ms": 1_000,
        "max_poll_interval_ms": 600_000,
        **settings.kafka_client_options(),
        **overrides,
    }
    return AIOKafkaConsumer(*topics, **options)


def make_producer(settings: Settings, bootstrap: str, **overrides: Any) -> AIOKafkaProducer:
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "linger_ms": 5,
        "max_request_size": MAX_REQUEST_BYTES,
        "max_batch_size": 1024 * 1024,
        **settings.kafka_client_options(),
        **overrides,
    }
    return AIOKafkaProducer(**options)


async def replace_consumer(
    old: AIOKafkaConsumer,
    factory: Callable[[], AIOKafkaConsumer],
    subscribe: Callable[[AIOKafkaConsumer], None],
    error: KafkaError,
) -> AIOKafkaConsumer:
    """A fresh consumer after a fatal group-coordination error.

    aiokafka's coordinator stops for good on an unexpected group error (seen with the
    embedded broker: SyncGroup answering INVALID_REQUEST while two members join at once).
    Uncommitted records are simply fetched again by whoever owns their partitions next.
    """
    log.warning("consumer failed (%s); starting a new one", error)
    with contextlib.suppress(Exception):
        await old.stop()
    await asyncio.sleep(1.0)
    consumer = factory()
    await consumer.start()
    subscribe(consumer)
    return consumer


async def report_lag(consumer: AIOKafkaConsumer, group: str, gauge: Any) -> None:
    """Set ``gauge`` to high watermark - position for every assigned partition."""
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is None:
            continue
        try:
            position = await consumer.position(tp)
        except Exception:  # partition moved away meanwhile
            continue
        gauge.labels(group, tp.topic, str(tp.partition)).set(max(0, high - position))


class OffsetTracker:
    """Which offsets of each partition are done, and so which offset may be committed.

    Offsets are added in fetch order; they finish in any order. The committable offset of a
    partition is one past the longest finished prefix: nothing after an unfinished record
    is ever committed.
    """

    def __init__(self) -> None:
        self._inflight: dict[TopicPartition, deque[list[int]]] = {}
        self._index: dict[tuple[TopicPartition, int], list[int]] = {}
        self._committable: dict[TopicPartition, int] = {}

    def add(self, tp: TopicPartition, offset: int) -> None:
        if (tp, offset) in self._index:
            return  # fetched again (seek after an error): still the same record in flight
        entry = [offset, 0]
        self._inflight.setdefault(tp, deque()).append(entry)
        self._index[(tp, offset)] = entry

    def done(self, tp: TopicPartition, offset: int) -> None:
        entry = self._index.pop((tp, offset), None)
        if entry is None:
            return  # partition was revoked and forgotten meanwhile
        entry[1] = 1
        queue = self._inflight[tp]
        while queue and queue[0][1]:
            self._committable[tp] = queue.popleft()[0] + 1

    def pending(self, tps: Iterable[TopicPartition] | None = None) -> int:
        keys = self._inflight.keys() if tps is None else tps
        return sum(len(self._inflight.get(tp, ())) for tp in keys)

    def take_committable(
        self, tps: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Offsets newly committable since the last call (only of ``tps`` when given)."""
        if tps is None:
            out = self._committable
            self._committable = {}
            return out
        return {tp: self._committable.pop(tp) for tp in set(tps) if tp in self._committable}

    def forget_all(self) -> None:
        """Drop everything in flight (the consumer that fetched it is gone)."""
        self.forget(list(self._inflight))

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            for entry in self._inflight.pop(tp, ()):
                self._index.pop((tp, entry[0]), None)
            self._committable.pop(tp, None)


async def group_lag(
    settings: Settings, bootstrap: str, group_id: str, topics: Iterable[str]
) -> dict[TopicPartition, int]:
    """Records not yet committed by ``group_id``, per partition (end offset - committed)."""
    consumer = make_consumer(settings, bootstrap, group_id)
    await consumer.start()
    try:
        # A client that subscribed to nothing has no metadata for these topics yet.
        await consumer._client.force_metadata_update()
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = await consumer.end_offsets(tps)
        lag = {}
        for tp in tps:
            committed = await consumer.committed(tp)
            lag[tp] = ends[tp] - (committed or 0)
        return lag
    finally:
        await consumer.stop()
