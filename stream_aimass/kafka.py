"""Kafka clients built from settings, and offset bookkeeping for at-least-once commits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from stream_aimass import compat
from stream_aimass.retry import Backoff
from stream_aimass.settings import Settings

log = logging.getLogger("stream_aimass.kafka")

MAX_REQUEST_BYTES = 4 * 1024 * 1024
MOCK_CLUSTER_PREFIX = "mockCluster"
# Bootstraps known to be the embedded broker (started in this process, or asked), and
# bootstraps asked and found to be something else.
_EMBEDDED_BOOTSTRAPS: set[str] = set()
_OTHER_BOOTSTRAPS: set[str] = set()


def cluster_id(settings: Settings, bootstrap: str, timeout_s: float = 5.0) -> str | None:
    """The cluster id ``bootstrap`` reports (a new one for every embedded broker), or None
    when the broker cannot be asked now."""
    from stream_aimass.topics import make_admin_client

    try:
        admin = make_admin_client(settings.model_copy(update={"kafka_bootstrap": bootstrap}))
        found: str | None = admin.list_topics(timeout=timeout_s).cluster_id
    except Exception as exc:  # unreachable now
        log.debug("could not read the cluster id of %s: %s", bootstrap, exc)
        return None
    return found or None


def is_embedded_broker(settings: Settings, bootstrap: str) -> bool:
    """Whether ``bootstrap`` is the embedded broker (librdkafka's mock cluster, whose cluster
    id starts with ``mockCluster``); False when it cannot be asked."""
    if bootstrap in _EMBEDDED_BOOTSTRAPS:
        return True
    if bootstrap in _OTHER_BOOTSTRAPS:
        return False
    found = cluster_id(settings, bootstrap)
    if (found or "").startswith(MOCK_CLUSTER_PREFIX):
        _EMBEDDED_BOOTSTRAPS.add(bootstrap)
        return True
    if found is not None:
        _OTHER_BOOTSTRAPS.add(bootstrap)
    return False


def register_embedded_broker(bootstrap: str) -> None:
    """An embedded broker started in this process: its clients get the mock's workarounds."""
    _EMBEDDED_BOOTSTRAPS.add(bootstrap)
    compat.install_mock_broker_workarounds()


def adapt_to_broker(settings: Settings, bootstrap: str) -> None:
    """Install the embedded broker's workarounds when ``bootstrap`` is one (see compat)."""
    if is_embedded_broker(settings, bootstrap):
        compat.install_mock_broker_workarounds()


def make_consumer(
    settings: Settings, bootstrap: str, group_id: str | None, *topics: str, **overrides: Any
) -> AIOKafkaConsumer:
    # An undecodable batch becomes a marker record, never an endless refetch (see compat).
    compat.install_unreadable_batch_guard()
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
        "compression_type": settings.aiokafka_compression,
        **settings.kafka_client_options(),
        **overrides,
    }
    return AIOKafkaProducer(**options)


def make_confluent_producer(settings: Settings, bootstrap: str, **conf: Any) -> Any:
    """A librdkafka (confluent-kafka) producer with the security settings; ``conf`` adds
    librdkafka properties (``compression.type``, ``linger.ms``, ...)."""
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap, **settings.confluent_client_options(), **conf})


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to produce."""

    topic: str
    value: bytes | None
    key: bytes | None


async def deliver(
    producer: Any,
    records: list[Outgoing],
    *,
    stopping: Callable[[], bool],
    sleep: Callable[[float], Awaitable[None]],
    retry_max_s: float,
    on_retry: Callable[[Outgoing], None] = lambda _: None,
) -> set[int]:
    """Produce ``records`` until each is acknowledged; the indices of those given up.

    Failed sends are sent again with capped exponential backoff (from 0.1 s up to
    ``retry_max_s``; ``on_retry`` hears of each record sent again), for as long as it takes:
    callers hold what the records derive from meanwhile (source offsets, a publish slot),
    which is the backpressure. Only ``stopping()`` gives up. A retried record may reach the
    topic twice (the first attempt may have been written before its ack was lost): every
    consumer downstream collapses such duplicates.
    """
    todo = list(range(len(records)))
    backoff: Backoff | None = None
    while True:
        sent: list[tuple[int, Any]] = []
        failed: list[int] = []
        error: KafkaError | None = None
        for i in todo:
            out = records[i]
            try:
                sent.append((i, await producer.send(out.topic, out.value, key=out.key)))
            except KafkaError as exc:  # no metadata, buffer full past its timeout...
                failed.append(i)
                error = exc
        for i, future in sent:
            try:
                await future
            except KafkaError as exc:  # refused by the broker, or expired in the client
                failed.append(i)
                error = exc
        if not failed:
            return set()
        if stopping():
            log.warning(
                "stopping: %d records not acknowledged (%s); what they derive from stays "
                "uncommitted and is delivered again",
                len(failed),
                type(error).__name__,
            )
            return set(failed)
        if backoff is None:
            backoff = Backoff(max_s=retry_max_s)
        delay = backoff.next_delay()
        for i in failed:
            on_retry(records[i])
        log.warning(
            "producing %d records to %s failed (attempt %d, retry in %.2fs): %s: %s",
            len(failed),
            ",".join(sorted({records[i].topic for i in failed})),
            backoff.attempts,
            delay,
            type(error).__name__,
            error,
        )
        await sleep(delay)
        todo = sorted(failed)


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
