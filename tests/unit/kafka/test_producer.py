"""The hot path's librdkafka producer on the embedded broker: acknowledged futures, the
partition a key gets, refusals, a full queue, every codec, and a draining stop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from stream_aimass.kafka.clients import make_confluent_producer, make_producer
from stream_aimass.kafka.embedded import API_PRODUCE, ERR_TOPIC_AUTHORIZATION_FAILED, EmbeddedBroker
from stream_aimass.kafka.producer import DeliveryError, RdKafkaProducer, rdkafka_conf
from stream_aimass.settings import Settings
from stream_aimass.testing import KAFKA_CODECS, read_topic

TOPIC = "t.hot"


@pytest.fixture()
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        b.create_topics([(TOPIC, 6), ("t.aiokafka", 6)])
        yield b


def _producer(broker: EmbeddedBroker, codec: str = "none", **extra: object) -> RdKafkaProducer:
    conf = {**rdkafka_conf(codec, 4 * 1024 * 1024), **extra}
    return RdKafkaProducer(lambda: make_confluent_producer(Settings(), broker.bootstrap, **conf))


def test_each_send_resolves_when_acknowledged_and_the_record_is_there(
    broker: EmbeddedBroker,
) -> None:
    async def run() -> None:
        producer = _producer(broker)
        await producer.start()
        try:
            futures = [
                await producer.send(TOPIC, f"v{i}".encode(), f"k{i}".encode()) for i in range(200)
            ]
            await asyncio.gather(*futures)
            assert all(f.done() and f.exception() is None for f in futures)
        finally:
            await producer.stop()

    asyncio.run(run())
    records = read_topic(broker.bootstrap, TOPIC, 200)
    assert sorted(r.value for r in records) == sorted(f"v{i}".encode() for i in range(200))
    assert {r.key for r in records} == {f"k{i}".encode() for i in range(200)}


def test_a_key_lands_on_the_partition_aiokafka_gives_it(broker: EmbeddedBroker) -> None:
    keys = [f"acme:doc-{i}".encode() for i in range(60)]

    async def run() -> None:
        ours = _producer(broker)
        theirs = make_producer(Settings(), broker.bootstrap)
        await ours.start()
        await theirs.start()
        try:
            await asyncio.gather(*[await ours.send(TOPIC, k, k) for k in keys])
            await asyncio.gather(*[await theirs.send("t.aiokafka", k, key=k) for k in keys])
        finally:
            await ours.stop()
            await theirs.stop()

    asyncio.run(run())
    ours = {r.key: r.partition for r in read_topic(broker.bootstrap, TOPIC, len(keys))}
    theirs = {r.key: r.partition for r in read_topic(broker.bootstrap, "t.aiokafka", len(keys))}
    assert ours == theirs and len(set(ours.values())) > 1


def test_a_refused_record_fails_its_future_with_a_kafka_error(broker: EmbeddedBroker) -> None:
    from aiokafka.errors import KafkaError

    async def run() -> None:
        producer = _producer(broker)
        await producer.start()
        try:
            broker.fail_requests(API_PRODUCE, [ERR_TOPIC_AUTHORIZATION_FAILED])
            refused = await producer.send(TOPIC, b"no", b"k")
            with pytest.raises(DeliveryError, match="TOPIC_AUTHORIZATION_FAILED"):
                await refused
            assert isinstance(refused.exception(), KafkaError)  # what deliver() retries
            # librdkafka keeps the topic's error until it has refreshed the topic's
            # metadata (about 0.1 s here); then records go through again.
            for _ in range(100):
                try:
                    await producer.send_and_wait(TOPIC, b"yes", b"k")
                    break
                except DeliveryError:
                    await asyncio.sleep(0.05)
        finally:
            await producer.stop()

    asyncio.run(run())
    assert [r.value for r in read_topic(broker.bootstrap, TOPIC, 1)] == [b"yes"]


def test_a_full_queue_makes_send_wait_and_nothing_is_dropped(broker: EmbeddedBroker) -> None:
    async def run() -> None:
        producer = _producer(broker, **{"queue.buffering.max.messages": 5, "linger.ms": 50})
        await producer.start()
        try:
            futures = [await producer.send(TOPIC, f"{i}".encode(), None) for i in range(300)]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(run())
    assert len({r.value for r in read_topic(broker.bootstrap, TOPIC, 300)}) == 300


@pytest.mark.parametrize("codec", KAFKA_CODECS)
def test_every_codec_is_written_and_read_back(broker: EmbeddedBroker, codec: str) -> None:
    async def run() -> None:
        producer = _producer(broker, codec)
        await producer.start()
        try:
            await asyncio.gather(*[await producer.send(TOPIC, b"x" * 500, b"k") for _ in range(50)])
        finally:
            await producer.stop()

    asyncio.run(run())
    assert [r.value for r in read_topic(broker.bootstrap, TOPIC, 50)] == [b"x" * 500] * 50


def test_stop_delivers_what_is_queued_first(broker: EmbeddedBroker) -> None:
    async def run() -> list[asyncio.Future[None]]:
        producer = _producer(broker, **{"linger.ms": 200})
        await producer.start()
        futures = [await producer.send(TOPIC, f"{i}".encode(), None) for i in range(40)]
        await producer.stop()
        return futures

    futures = asyncio.run(run())
    assert all(f.done() and f.exception() is None for f in futures)
    assert len(read_topic(broker.bootstrap, TOPIC, 40)) == 40


def test_sending_before_start_is_an_error() -> None:
    async def run() -> None:
        with pytest.raises(DeliveryError, match="not started"):
            await RdKafkaProducer(lambda: None).send(TOPIC, b"x")

    asyncio.run(run())
