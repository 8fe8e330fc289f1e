"""librdkafka's consumer with aiokafka's face, for the sink role.

The embedded broker answers a fetch with one message set per partition (about ten records
of the enrich role's output), so a consumer that fetches in the event loop's thread waits on
a round trip every few records and parses each answer in Python. librdkafka fetches ahead,
decompresses and parses in its own C threads; the sink's loop only takes what is queued.
:class:`RdKafkaConsumer` offers what the sink uses of aiokafka's consumer (``getmany``,
``commit``, ``committed``, ``pause``/``resume``, ``highwater``, ``position``,
``beginning_offsets``, a rebalance listener), so the sink runs on either client.

- ``getmany`` runs on one thread of its own (librdkafka calls the rebalance callbacks there);
  the listener's coroutines run on the event loop while that thread waits for them, as
  aiokafka's do: a revocation flushes and commits before the partitions go. While a callback
  runs, every call into librdkafka is made on that thread (a commit from any other thread
  never returns then: measured), which serves them until the listener is done.
- A batch librdkafka cannot decompress stalls its partition (librdkafka refetches it
  forever). The adapter reads that batch once with ``read_batch`` (aiokafka, whose guard
  makes it one marker record, raw bytes and range included: see :mod:`.compat`), hands that
  on and seeks past it: the same dead letter as on aiokafka, nothing else stalls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger("stream_aimass.kafka")

# librdkafka's RD_KAFKA_RESP_ERR__BAD_COMPRESSION: a batch it cannot decompress.
BAD_COMPRESSION = -198
# Offsets librdkafka reports as "none" (OFFSET_INVALID and the logical ones) are negative.
_WARN_EVERY_S = 10.0


class ConsumerError(KafkaError):  # type: ignore[misc]
    """librdkafka reported a fatal consumer error (the consumer cannot go on)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed message, with the attributes of aiokafka's ``ConsumerRecord`` that the
    roles read."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


ReadBatch = Callable[[TopicPartition, int], Awaitable[list[Any]]]


class RdKafkaConsumer:
    """An asyncio consumer on librdkafka (confluent-kafka). ``build`` makes the
    ``confluent_kafka.Consumer`` (the factory in :mod:`.clients`, which adds the group and
    security settings) at ``start``; ``read_batch(tp, offset)`` reads the records of the
    batch at ``offset`` another way when librdkafka cannot decompress it."""

    def __init__(self, build: Callable[[], Any], read_batch: ReadBatch) -> None:
        self._build = build
        self._read_batch = read_batch
        self._consumer: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # getmany's thread: librdkafka serves the rebalance callbacks inside consume.
        self._poller = concurrent.futures.ThreadPoolExecutor(1, "aimass-rdkafka-consume")
        self._listener: ConsumerRebalanceListener | None = None
        self._assigned: set[TopicPartition] = set()
        self._warned_at: dict[int, float] = {}
        # Where each partition goes on after a batch read another way (stale reports of
        # that batch are dropped).
        self._past: dict[TopicPartition, int] = {}
        self._closed = False
        # Calls into librdkafka made while the poller is inside a rebalance callback: the
        # poller runs them (see _call_listener).
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._in_callback = False
        self._lock = threading.Lock()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._consumer = self._build()

    def subscribe(
        self, topics: Iterable[str], listener: ConsumerRebalanceListener | None = None
    ) -> None:
        self._listener = listener
        self._consumer.subscribe(
            list(topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )

    # Rebalance callbacks: on the poller thread, inside consume.

    def _on_assign(self, _consumer: Any, partitions: list[Any]) -> None:
        assigned = [TopicPartition(p.topic, p.partition) for p in partitions]
        self._assigned = set(assigned)
        if self._listener is not None:
            self._call_listener(self._listener.on_partitions_assigned(assigned))

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        revoked = [TopicPartition(p.topic, p.partition) for p in partitions]
        try:
            if self._listener is not None:
                self._call_listener(self._listener.on_partitions_revoked(revoked))
        finally:
            self._assigned -= set(revoked)

    def _call_listener(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a listener coroutine on the event loop; meanwhile serve its librdkafka calls."""
        assert self._loop is not None
        # In the callback before the coroutine can start: a librdkafka call it makes first
        # must be queued for this thread, never made on the loop while this thread holds
        # the consumer inside close() or consume() (that call would block forever).
        with self._lock:
            self._in_callback = True
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
            future.add_done_callback(lambda _: self._calls.put(None))
            while not future.done():
                call = self._calls.get()
                if call is not None:
                    _serve(*call)
        finally:
            with self._lock:
                self._in_callback = False
            while True:  # calls queued just before the callback ended
                try:
                    call = self._calls.get_nowait()
                except queue.Empty:
                    break
                if call is not None:
                    _serve(*call)
        try:
            future.result()
        except Exception:  # a listener's failure must not kill librdkafka's rebalance
            log.exception("the consumer's rebalance listener failed")

    def _on_poller(self, fn: Callable[[], Any]) -> Future[Any] | None:
        """Queue ``fn`` for the poller if it is inside a rebalance callback, else None."""
        with self._lock:
            if not self._in_callback:
                return None
            done: Future[Any] = Future()
            self._calls.put((fn, done))
            return done

    def _now(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` (a quick librdkafka call) on the thread allowed to make it now."""
        queued = self._on_poller(fn)
        return fn() if queued is None else queued.result()

    async def _blocking(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` (a librdkafka call that waits on the broker) off the event loop: on the
        poller inside a rebalance callback, else on the default executor."""
        queued = self._on_poller(fn)
        if queued is not None:
            return await asyncio.wrap_future(queued)
        return await asyncio.get_running_loop().run_in_executor(None, fn)

    # Consuming.

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]:
        """What librdkafka has queued (waiting up to ``timeout_ms`` for a first record), at
        most ``max_records``, grouped by partition in offset order."""
        if partitions:
            raise NotImplementedError("getmany of chosen partitions: use assignment()")
        assert self._loop is not None
        messages = await self._loop.run_in_executor(
            self._poller, self._consume, max(1, max_records or 10_000), timeout_ms / 1000
        )
        out: dict[TopicPartition, list[Any]] = {}
        for m in messages:
            err = m.error()
            if err is not None:
                await self._failed(m, err, out)
                continue
            tp = TopicPartition(m.topic(), m.partition())
            _, ts = m.timestamp()
            record = Record(tp.topic, tp.partition, m.offset(), ts, m.key(), m.value(),
                            tuple(m.headers() or ()))  # fmt: skip
            got = out.get(tp)
            if got is None:
                out[tp] = [record]
            else:
                got.append(record)
        return out

    def _consume(self, limit: int, timeout_s: float) -> list[Any]:
        # consume(n, timeout) waits until n messages or the timeout: take what is queued,
        # and wait only for a first one.
        consumer = self._consumer
        messages: list[Any] = consumer.consume(limit, 0)
        if messages or timeout_s <= 0:
            return messages
        first = consumer.poll(timeout_s)
        if first is None:
            return []
        return [first, *consumer.consume(limit - 1, 0)] if limit > 1 else [first]

    async def _failed(self, m: Any, err: Any, out: dict[TopicPartition, list[Any]]) -> None:
        if err.fatal():
            raise ConsumerError(f"{err.name()}: {err.str()}")
        if err.code() == BAD_COMPRESSION and m.topic() is not None:
            await self._read_unreadable(TopicPartition(m.topic(), m.partition()), m.offset(), out)
            return
        # Brokers down, a topic not there yet...: librdkafka retries by itself.
        now = time.monotonic()
        if now - self._warned_at.get(err.code(), float("-inf")) >= _WARN_EVERY_S:
            self._warned_at[err.code()] = now
            log.warning("consumer: %s: %s", err.name(), err.str())

    async def _read_unreadable(
        self, tp: TopicPartition, offset: int, out: dict[TopicPartition, list[Any]]
    ) -> None:
        """The batch at ``offset`` of ``tp`` as ``read_batch`` reads it (one marker record,
        for a batch nobody can decode), then librdkafka moves past it."""
        if tp in out or offset < self._past.get(tp, -1):
            return  # records after the batch wait for the next call; or a stale report
        try:
            records = [r for r in await self._read_batch(tp, offset) if r.offset >= offset]
        except Exception as exc:  # broker gone meanwhile: librdkafka reports it again
            log.warning("could not read the batch at %s[%d] offset %d: %s",
                        tp.topic, tp.partition, offset, exc)  # fmt: skip
            return
        if not records:
            return
        from confluent_kafka import TopicPartition as RdTopicPartition

        nxt = _after(records[-1])
        self._past[tp] = nxt
        self._consumer.seek(RdTopicPartition(tp.topic, tp.partition, nxt))
        out[tp] = records
        log.warning(
            "%s[%d]: librdkafka could not decompress the batch at offset %d; read it with "
            "aiokafka, going on from %d", tp.topic, tp.partition, offset, nxt,
        )  # fmt: skip

    # Offsets and positions.

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def pause(self, *partitions: TopicPartition) -> None:
        if partitions:
            self._now(lambda: self._consumer.pause(_rd(partitions)))

    def resume(self, *partitions: TopicPartition) -> None:
        if partitions:
            self._now(lambda: self._consumer.resume(_rd(partitions)))

    def highwater(self, tp: TopicPartition) -> int | None:
        """The partition's end offset as the last fetch answer told it (no round trip)."""
        from confluent_kafka import TopicPartition as RdTopicPartition

        rd = RdTopicPartition(tp.topic, tp.partition)
        _, high = self._now(lambda: self._consumer.get_watermark_offsets(rd, cached=True))
        return int(high) if high >= 0 else None

    async def position(self, tp: TopicPartition) -> int | None:
        (found,) = self._now(lambda: self._consumer.position(_rd([tp])))
        return int(found.offset) if found.offset >= 0 else None

    async def committed(self, tp: TopicPartition) -> int | None:
        (found,) = await self._blocking(lambda: self._consumer.committed(_rd([tp]), 10.0))
        return int(found.offset) if found.offset >= 0 else None

    async def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[Any, int]:
        from confluent_kafka import TopicPartition as RdTopicPartition

        out: dict[Any, int] = {}
        consumer = self._consumer
        for tp in partitions:
            rd = RdTopicPartition(tp.topic, tp.partition)
            low, _ = await self._blocking(
                functools.partial(consumer.get_watermark_offsets, rd, 5.0)
            )
            out[tp] = int(low)
        return out

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit ``offsets`` (the next offset to read, per partition) and wait for it."""
        from confluent_kafka import KafkaException
        from confluent_kafka import TopicPartition as RdTopicPartition

        rd = [RdTopicPartition(tp.topic, tp.partition, o) for tp, o in offsets.items()]
        try:
            await self._blocking(lambda: self._consumer.commit(offsets=rd, asynchronous=False))
        except KafkaException as exc:
            raise ConsumerError(str(exc.args[0])) from exc

    async def stop(self) -> None:
        """Leave the group (the listener sees the revocation) and close."""
        if self._consumer is None or self._closed:
            return
        self._closed = True
        assert self._loop is not None
        try:
            await self._loop.run_in_executor(self._poller, self._consumer.close)
        finally:
            self._poller.shutdown(wait=False)


def _serve(fn: Callable[[], Any], done: Future[Any]) -> None:
    if done.set_running_or_notify_cancel():
        try:
            done.set_result(fn())
        except BaseException as exc:
            done.set_exception(exc)


def _rd(partitions: Iterable[TopicPartition]) -> list[Any]:
    from confluent_kafka import TopicPartition as RdTopicPartition

    return [RdTopicPartition(tp.topic, tp.partition) for tp in partitions]


def _after(record: Any) -> int:
    """The offset after ``record``: past the whole batch for an unreadable batch's marker."""
    from stream_aimass.kafka.compat import unreadable_batch

    bad = unreadable_batch(record)
    return (bad.last_offset if bad is not None else record.offset) + 1
