"""librdkafka's producer with aiokafka's face, for the document hot path.

The enrich role produces two records per document (the enriched record and the item
vector). librdkafka does that for a fifth to a seventh of aiokafka's CPU per message
(docs/benchmarks.md, ``tools/bench/clients.py``), so the hot path's producer is
:class:`RdKafkaProducer`: ``start``/``send``/``flush``/``stop`` as aiokafka's producer has
them, so :func:`stream_aimass.kafka.deliver.deliver` drives either.

``send`` queues the record in librdkafka and returns a future that resolves once the
broker acknowledged it (``acks=all``) or fails with :class:`DeliveryError` (a
``KafkaError``, as aiokafka's failures are). A thread serves librdkafka's delivery reports
and hands them to the event loop in bunches: one loop wake-up per poll, not per record.
A full local queue makes ``send`` wait (backpressure), never drop.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from aiokafka.errors import KafkaError

log = logging.getLogger("stream_aimass.kafka")

POLL_S = 0.05
QUEUE_FULL_WAIT_S = 0.005
METADATA_TIMEOUT_S = 5.0


@functools.cache
def _topic_state_errors() -> frozenset[int]:
    """librdkafka's local refusals that a fresh look at the topic's metadata may clear."""
    from confluent_kafka import KafkaError as RdKafkaError

    return frozenset(
        {
            RdKafkaError.TOPIC_AUTHORIZATION_FAILED,
            RdKafkaError.UNKNOWN_TOPIC_OR_PART,
            RdKafkaError._UNKNOWN_TOPIC,
        }
    )


class DeliveryError(KafkaError):  # type: ignore[misc]
    """librdkafka did not deliver a record (refused by the broker, timed out, invalid)."""

    retriable = True


class RdKafkaProducer:
    """An asyncio producer on librdkafka (confluent-kafka). ``build`` makes the
    ``confluent_kafka.Producer`` (the factory in :mod:`.clients`, which adds the security
    settings), at ``start``."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._producer: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reports: collections.deque[tuple[asyncio.Future[None], Any]] = collections.deque()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._producer = self._build()
        self._stopped.clear()
        self._thread = threading.Thread(target=self._serve, name="aimass-rdkafka-poll", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        """Delivery reports: librdkafka calls back inside ``poll``, here."""
        producer = self._producer
        while not self._stopped.is_set():
            producer.poll(POLL_S)
            self._hand_over()

    def _hand_over(self) -> None:
        if self._reports and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        reports = self._reports
        while reports:
            future, err = reports.popleft()
            if future.done():
                continue
            if err is None:
                future.set_result(None)
            else:
                future.set_exception(DeliveryError(f"{err.name()}: {err.str()}"))

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> asyncio.Future[None]:
        """Queue one record; the future resolves when the broker acknowledged it."""
        from confluent_kafka import KafkaException

        if self._producer is None or self._loop is None:
            raise DeliveryError("producer not started")
        future: asyncio.Future[None] = self._loop.create_future()
        reports = self._reports

        def report(err: Any, _msg: Any) -> None:
            reports.append((future, err))

        refreshed = False
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=report)
                return future
            except BufferError:  # librdkafka's queue is full: wait for deliveries
                await asyncio.sleep(QUEUE_FULL_WAIT_S)
            except KafkaException as exc:  # refused before queueing (size, unknown topic)
                if refreshed or exc.args[0].code() not in _topic_state_errors():
                    raise DeliveryError(str(exc.args[0])) from exc
                # librdkafka keeps a topic error the broker once answered (a refused
                # produce) until its next metadata refresh, and refuses every record to
                # that topic locally meanwhile: ask the broker now, once.
                await self._refresh_metadata(topic)
                refreshed = True

    async def _refresh_metadata(self, topic: str) -> None:
        from confluent_kafka import KafkaException

        producer = self._producer
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: producer.list_topics(topic, timeout=METADATA_TIMEOUT_S)
            )
        except KafkaException as exc:  # no broker answered: the produce refuses again
            log.debug("metadata refresh for %s failed: %s", topic, exc)

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> None:
        await (await self.send(topic, value, key))

    async def flush(self, timeout_s: float = 30.0) -> None:
        """Until every queued record is delivered or failed (at most ``timeout_s``)."""
        if self._producer is None:
            return
        loop = asyncio.get_running_loop()
        left = await loop.run_in_executor(None, self._producer.flush, timeout_s)
        self._hand_over()
        await asyncio.sleep(0)  # let the hand-over run
        if left:
            log.warning("%d records still queued after %.0f s", left, timeout_s)

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Deliver what is queued (bounded), then stop serving reports."""
        if self._producer is None:
            return
        try:
            await self.flush(timeout_s)
        finally:
            self._stopped.set()
            if self._thread is not None:
                await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
            self._resolve()
            self._producer = None


def rdkafka_conf(compression: str, max_bytes: int) -> dict[str, Any]:
    """The hot path's librdkafka settings, equivalent to the aiokafka producer's (the
    factory adds the bootstrap servers and the security settings)."""
    return {
        "acks": "all",
        "linger.ms": 5,
        "compression.type": compression,
        "message.max.bytes": max_bytes,
        "batch.size": 1024 * 1024,
        # Java's (and aiokafka's) murmur2 for keyed records: a key lands on the same
        # partition whichever of our clients produced it.
        "partitioner": "murmur2_random",
        # A broker that is down surfaces as failed deliveries within this, which deliver()
        # retries with backoff and counts, instead of librdkafka's silent 5 minutes.
        "delivery.timeout.ms": 30_000,
    }
