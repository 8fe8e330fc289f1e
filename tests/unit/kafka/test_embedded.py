"""The embedded broker's fault injection really reaches aiokafka clients."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError

from stream_aimass.kafka.embedded import (
    API_PRODUCE,
    ERR_NOT_ENOUGH_REPLICAS,
    ERR_TOPIC_AUTHORIZATION_FAILED,
    EmbeddedBroker,
    EmbeddedBrokerError,
)

TOPIC = "faults"


@pytest.fixture()
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        b.create_topic(TOPIC, 1)
        yield b


def _producer(broker: EmbeddedBroker, **options: object) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", **options)


async def _read_all(broker: EmbeddedBroker, expected: int, timeout: float = 10) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=broker.bootstrap,
        group_id=f"g-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout
        while len(values) < expected and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                values.extend(m.value for m in messages)
        for messages in (await consumer.getmany(timeout_ms=300)).values():
            values.extend(m.value for m in messages)  # anything more is a duplicate
    finally:
        await consumer.stop()
    return values


def test_a_non_retriable_produce_error_reaches_the_producer_once(broker: EmbeddedBroker) -> None:
    async def run() -> list[bytes]:
        producer = _producer(broker)
        await producer.start()
        try:
            await producer.send_and_wait(TOPIC, b"before")
            broker.fail_requests(API_PRODUCE, [ERR_TOPIC_AUTHORIZATION_FAILED])
            with pytest.raises(TopicAuthorizationFailedError):
                await producer.send_and_wait(TOPIC, b"refused")
            # The queue held one error: the next request goes through.
            await producer.send_and_wait(TOPIC, b"after")
        finally:
            await producer.stop()
        return await _read_all(broker, 2)

    assert asyncio.run(run()) == [b"before", b"after"]


def test_retriable_produce_errors_are_retried_by_the_client(broker: EmbeddedBroker) -> None:
    async def run() -> list[bytes]:
        producer = _producer(broker, retry_backoff_ms=20)
        await producer.start()
        try:
            broker.fail_requests(API_PRODUCE, [ERR_NOT_ENOUGH_REPLICAS] * 3)
            await producer.send_and_wait(TOPIC, b"eventually")
        finally:
            await producer.stop()
        return await _read_all(broker, 1)

    assert asyncio.run(run()) == [b"eventually"]


def test_cleared_errors_are_not_injected(broker: EmbeddedBroker) -> None:
    async def run() -> None:
        producer = _producer(broker)
        await producer.start()
        try:
            broker.fail_requests(API_PRODUCE, [ERR_TOPIC_AUTHORIZATION_FAILED] * 5)
            broker.clear_request_errors(API_PRODUCE)
            await producer.send_and_wait(TOPIC, b"through")
        finally:
            await producer.stop()

    asyncio.run(run())


def test_a_broker_set_down_refuses_clients_until_set_up(broker: EmbeddedBroker) -> None:
    async def run() -> list[bytes]:
        producer = _producer(broker, request_timeout_ms=1500, retry_backoff_ms=50)
        await producer.start()
        try:
            await producer.send_and_wait(TOPIC, b"before")
            broker.set_down()
            with pytest.raises(KafkaError):
                await producer.send_and_wait(TOPIC, b"while down")
            broker.set_up()
            # The client reconnects by itself; topic data survived.
            deadline = time.monotonic() + 20
            while True:
                try:
                    await producer.send_and_wait(TOPIC, b"after")
                    break
                except KafkaError:
                    assert time.monotonic() < deadline, "producer never reconnected"
                    await asyncio.sleep(0.2)
        finally:
            await producer.stop()
        return await _read_all(broker, 2)

    values = asyncio.run(run())
    # "while down" timed out in the client; whether it reached the log is the client's
    # business (at-least-once): only the two acknowledged records are certain.
    assert values[0] == b"before" and values[-1] == b"after"
    assert set(values) <= {b"before", b"while down", b"after"}


def test_fault_injection_on_a_closed_broker_raises() -> None:
    broker = EmbeddedBroker()
    broker.close()
    with pytest.raises(EmbeddedBrokerError):
        broker.set_down()
    with pytest.raises(EmbeddedBrokerError):
        broker.fail_requests(API_PRODUCE, [ERR_TOPIC_AUTHORIZATION_FAILED])
