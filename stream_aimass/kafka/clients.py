"""Kafka clients built from settings (the one factory), lag, and the embedded-broker check."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from stream_aimass.kafka import compat
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
    from stream_aimass.kafka.topics import make_admin_client

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


def make_hot_producer(settings: Settings, bootstrap: str) -> Any:
    """The enrich role's producer: librdkafka (:class:`RdKafkaProducer`) or aiokafka, as
    ``producer_client`` says; the same acks, codec, size limit and security either way."""
    if settings.producer_client == "aiokafka":
        return make_producer(settings, bootstrap)
    from stream_aimass.kafka.producer import RdKafkaProducer, rdkafka_conf

    conf = rdkafka_conf(settings.compression_type, MAX_REQUEST_BYTES)
    return RdKafkaProducer(lambda: make_confluent_producer(settings, bootstrap, **conf))


def make_confluent_producer(settings: Settings, bootstrap: str, **conf: Any) -> Any:
    """A librdkafka (confluent-kafka) producer with the security settings; ``conf`` adds
    librdkafka properties (``compression.type``, ``linger.ms``, ...)."""
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap, **settings.confluent_client_options(), **conf})


def make_confluent_consumer(settings: Settings, bootstrap: str, group_id: str, **conf: Any) -> Any:
    """A librdkafka (confluent-kafka) consumer with the security settings, committing by
    hand from the earliest offset; ``conf`` adds librdkafka properties."""
    from confluent_kafka import Consumer

    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": settings.fetch_max_wait_ms,
            **settings.confluent_client_options(),
            **conf,
        }
    )


def make_sink_consumer(settings: Settings, bootstrap: str, group_id: str) -> Any:
    """The sink role's consumer: librdkafka (:class:`RdKafkaConsumer`) or aiokafka, as
    ``sink_consumer_client`` says; the same group, offsets, limits and security either way."""
    if settings.sink_consumer_client == "aiokafka":
        return make_consumer(settings, bootstrap, group_id)
    from stream_aimass.kafka.consumer import RdKafkaConsumer

    conf = {
        "max.partition.fetch.bytes": MAX_REQUEST_BYTES,
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 1_000,
        "max.poll.interval.ms": 600_000,
        # What librdkafka fetches ahead, per partition: bounded memory while inserts wait.
        "queued.max.messages.kbytes": 16 * 1024,
        # aiokafka's assignor: members on either client form one group.
        "partition.assignment.strategy": "roundrobin",
    }

    async def read_batch(tp: TopicPartition, offset: int) -> list[Any]:
        return await read_from(settings, bootstrap, tp, offset)

    return RdKafkaConsumer(
        lambda: make_confluent_consumer(settings, bootstrap, group_id, **conf), read_batch
    )


async def read_from(
    settings: Settings, bootstrap: str, tp: TopicPartition, offset: int, timeout_ms: int = 5_000
) -> list[Any]:
    """One fetch of ``tp`` from ``offset`` by aiokafka, outside any group (a batch that no
    client can decode comes back as one marker record, see :mod:`.compat`)."""
    consumer = make_consumer(settings, bootstrap, None)
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, offset)
        got = await consumer.getmany(tp, timeout_ms=timeout_ms)
        return list(got.get(tp, []))
    finally:
        await consumer.stop()


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
        if position is None:  # nothing fetched yet (librdkafka knows no position then)
            continue
        gauge.labels(group, tp.topic, str(tp.partition)).set(max(0, high - position))


async def topic_partitions(consumer: Any, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of ``topics``, from fresh metadata (a client that subscribed to
    nothing has none for them yet)."""
    await consumer._client.force_metadata_update()
    return [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(consumer.partitions_for_topic(topic) or ())
    ]


async def group_lag(
    settings: Settings, bootstrap: str, group_id: str, topics: Iterable[str]
) -> dict[TopicPartition, int]:
    """Records not yet committed by ``group_id``, per partition (end offset - committed)."""
    consumer = make_consumer(settings, bootstrap, group_id)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topics)
        ends = await consumer.end_offsets(tps)
        lag = {}
        for tp in tps:
            committed = await consumer.committed(tp)
            lag[tp] = ends[tp] - (committed or 0)
        return lag
    finally:
        await consumer.stop()
