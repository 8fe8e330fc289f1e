"""Sink role: enriched documents (and their classifications and entity mentions), user events,
item vectors, recommendations and dead letters into ClickHouse.

Reads ``aimass.enriched``, ``aimass.events``, ``aimass.item-vectors`` (a tombstone marks the
item deleted), ``aimass.recommendations`` and ``aimass.dlq``; commits after the insert. A
record on an internal topic that cannot become a row is stored as a dead letter instead.

Rows are buffered per table and flushed when a batch is full, when its oldest row has waited
``sink_max_wait_ms`` (``sink_backlog_wait_ms`` while a backlog waits behind it on the broker:
fewer, bigger inserts drain it faster), or as soon as the sink has caught up with what was
fetched, at most once per ``sink_min_interval_ms`` (each insert writes parts: a burst of
records shares one). A flush inserts with a deduplication token that names its rows (their
topic/partition/offset ranges and a digest of their source messages), then commits exactly
those offsets. Rows ClickHouse refuses for good become dead letters; a marker of an
unreadable batch too. While an insert fails the consumer is paused and retried with
backoff: memory stays bounded (at most one fetch beyond a batch per table, see
:meth:`SinkService.buffered_rows`) and the backlog waits in Kafka. The worker reports not
ready meanwhile.

Given a ``connect`` factory instead of a client, the service connects (and migrates) in
:meth:`SinkService.run`, retrying with backoff while ClickHouse is unreachable, and only then
joins the consumer group: a worker started before its ClickHouse stays up, not ready.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from stream_aimass.clickhouse.queries import QueryResult, run_named_query
from stream_aimass.decode import EventDecoder, unreadable_dead_letter
from stream_aimass.kafka.clients import make_sink_consumer, replace_consumer, report_lag
from stream_aimass.kafka.compat import unreadable_batch
from stream_aimass.kafka.retention import LossWatch, Lost
from stream_aimass.kafka.retention import report as report_losses
from stream_aimass.observability import Metrics
from stream_aimass.privacy.stage import PiiStage
from stream_aimass.records import DeadLetter, Source
from stream_aimass.retry import Backoff, sleep_unless
from stream_aimass.settings import Settings
from stream_aimass.sink.buffers import Round, TableBuffer, message_digest
from stream_aimass.sink.item_rows import item_row, recommendation_row
from stream_aimass.sink.rows import (
    DOCUMENT_COLUMNS,
    RowError,
    dead_letter_row,
    dead_letter_row_of,
    enriched_rows,
    event_row,
)
from stream_aimass.sink.writer import ClickHouseWriter, InsertBatch

log = logging.getLogger("stream_aimass.sink")

ROLE = "sink"
STAGE_SINK = "sink"
_SOURCE_TS = DOCUMENT_COLUMNS.index("source_ts")


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: SinkService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.service.losses.forget(revoked)
        await self.service.flush()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("sink assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))


class SinkService:
    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        client: Any = None,
        metrics: Metrics | None = None,
        *,
        connect: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``client``: a connected ClickHouse client; or ``connect``: makes one (in run).
        ``clock`` (monotonic seconds) times the flushes, as the batcher's does."""
        if client is None and connect is None:
            raise ValueError("SinkService needs a ClickHouse client or a connect factory")
        self.settings = settings
        self.bootstrap = bootstrap
        self.metrics = metrics or Metrics()
        # Dead letters made here (bad events, broken records) follow the PII policy too.
        self.privacy = PiiStage.from_settings(
            settings,
            on_reload=lambda outcome: self.metrics.pii_policy_reloads.labels(outcome).inc(),
        )
        self._connect = connect
        self.writer = ClickHouseWriter(
            client,
            retry_max_s=settings.sink_retry_max_s,
            sleep=self._sleep_unless_stopping,
            on_retry=lambda *_: self.metrics.insert_failures.inc(),
        )
        self._round = Round()
        self._event_decoder = EventDecoder(settings.max_event_bytes)
        self._clock = clock
        # The topic of a message decides which rows it becomes.
        self._row_builders: dict[str, Callable[[TopicPartition, Any, float, bytes], None]] = {
            settings.topic_enriched: self._buffer_enriched,
            settings.topic_events: self._buffer_event,
            settings.topic_dlq: self._buffer_dead_letter,
            settings.topic_item_vectors: self._buffer_item,
            settings.topic_recommendations: self._buffer_recommendation,
        }
        self._stopping = asyncio.Event()
        self._stored: dict[str, int] = {}
        self._flush_lock = asyncio.Lock()
        self._last_flush = float("-inf")
        # The last fetch left records on the broker: a backlog waits behind the held rows.
        self._behind = False
        # When the last fetch brought records (or the last flush ended).
        self._fetched_at = float("-inf")
        self.losses = LossWatch()  # records the broker deleted before they were fetched
        self.consumer: Any = None
        self.ready = False
        self._consumer_failing = False
        self.connect_failures = 0

    def stop(self) -> None:
        self._stopping.set()

    @property
    def _buffers(self) -> tuple[TableBuffer, ...]:
        """The buffers of the round being filled."""
        return self._round.buffers

    def buffered_rows(self) -> dict[str, int]:
        """Rows held for each table, not yet acknowledged by ClickHouse (cheap)."""
        return {buf.table: len(buf.rows) for buf in self._buffers}

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        await sleep_unless(self._stopping, seconds)

    async def _connect_with_retry(self) -> bool:
        """Connect to ClickHouse with capped exponential backoff; False if stopped first."""
        if self.writer.client is not None:
            return True
        assert self._connect is not None
        loop = asyncio.get_running_loop()
        backoff = Backoff(max_s=self.settings.sink_retry_max_s)
        while not self._stopping.is_set():
            try:
                self.writer.client = await loop.run_in_executor(None, self._connect)
                if self.connect_failures:
                    log.info("connected to ClickHouse after %d failures", self.connect_failures)
                return True
            except Exception as exc:  # server down, DNS, auth...: retry, stay not ready
                self.connect_failures += 1
                self.metrics.clickhouse_connect_failures.inc()
                delay = backoff.next_delay()
                log.warning(
                    "connecting to ClickHouse failed (attempt %d, retry in %.2fs): %s: %s",
                    self.connect_failures,
                    delay,
                    type(exc).__name__,
                    exc,
                )
                await self._sleep_unless_stopping(delay)
        return False

    def stored(self, table: str) -> int:
        """Rows of ``table`` ClickHouse acknowledged since this service started."""
        # A plain count: reading the metric collects the whole registry (progress loops
        # poll this every few milliseconds).
        return self._stored.get(table, 0)

    def _new_consumer(self) -> Any:
        return make_sink_consumer(self.settings, self.bootstrap, self.settings.sink_group)

    def _subscribe(self, consumer: Any) -> None:
        consumer.subscribe(list(self._row_builders), listener=_Rebalance(self))

    async def run(self) -> None:
        s = self.settings
        # Join the group only once rows can be stored: partitions held by a sink that cannot
        # insert would sit idle while another worker could take them.
        if not await self._connect_with_retry():
            return
        self.consumer = self._new_consumer()
        await self.consumer.start()
        self._subscribe(self.consumer)
        self.ready = True
        next_lag_report = self._clock()
        try:
            while not self._stopping.is_set():
                if self._clock() >= next_lag_report:
                    await report_lag(self.consumer, s.sink_group, self.metrics.consumer_lag)
                    next_lag_report = self._clock() + 1.0
                try:
                    records = await self.consumer.getmany(
                        timeout_ms=self._fetch_timeout_ms(), max_records=s.sink_batch_rows
                    )
                except KafkaError as exc:
                    # Not ready until the new consumer fetches (see the enrich role).
                    self.ready = False
                    self._consumer_failing = True
                    self.metrics.consumer_failures.labels(ROLE, type(exc).__name__).inc()
                    # Buffered rows are uncommitted: they come back to the next owner.
                    self._round = Round()
                    self.losses.forget()
                    self.consumer = await replace_consumer(
                        self.consumer, self._new_consumer, self._subscribe, exc
                    )
                    continue
                if self._consumer_failing:
                    self._consumer_failing = False
                    self.ready = not self._stopping.is_set()
                if records:
                    self._lost(await self.losses.check(self.consumer, records), records)
                    self._behind = self._backlog_behind(records)
                    self._fetched_at = self._clock()
                self._buffer(records)
                if self._due(caught_up=self._caught_up(records)):
                    await self.flush()
                    # The fetch wait counts from here: the loop fetched nothing meanwhile.
                    self._fetched_at = self._clock()
            await self.flush()
        finally:
            self.ready = False
            await self.consumer.stop()

    def _lost(self, lost: list[Lost], records: dict[TopicPartition, list[Any]]) -> None:
        """Records deleted before they were read: an error, a count, and a dead letter
        (stage ``retention``) stored with the first record after the gap."""
        report_losses(lost, ROLE, self.metrics.records_lost)
        now = self._clock()
        for gone in lost:
            tp = TopicPartition(gone.topic, gone.partition)
            msg = records[tp][0]
            dead = gone.dead_letter(ROLE, int(msg.timestamp))
            self._round.dead.add(self._dead_row(dead), tp, msg, now, message_digest(msg))

    def _caught_up(self, records: dict[TopicPartition, list[Any]]) -> bool:
        """Nothing more to read for now: this fetch brought nothing, and either the last one
        reached the end of its partitions or a whole broker fetch wait has passed since.
        (An empty fetch alone is no end while a backlog waits: the consumer's next fetch
        may simply not be back yet.)"""
        if records:
            return False
        waited = self._clock() - self._fetched_at
        return not self._behind or waited >= self.settings.fetch_max_wait_ms / 1000

    def _backlog_behind(self, records: dict[TopicPartition, list[Any]]) -> bool:
        """Whether the broker holds records of these partitions beyond what was fetched."""
        for tp, messages in records.items():
            if messages:
                highwater = self.consumer.highwater(tp)
                if highwater is not None and highwater > messages[-1].offset + 1:
                    return True
        return False

    def _buffer(self, records: dict[TopicPartition, list[Any]]) -> None:
        now = self._clock()
        for tp, messages in records.items():
            build = self._row_builders[tp.topic]
            for msg in messages:
                digest = message_digest(msg)
                bad = unreadable_batch(msg)
                if bad is not None:  # the marker of a batch no consumer could decode
                    self.metrics.unreadable_batches.labels(ROLE, tp.topic).inc()
                    dead = unreadable_dead_letter(bad, tp.topic, tp.partition, msg.timestamp)
                    self._round.dead.add(self._dead_row(dead), tp, msg, now, digest)
                    continue
                try:
                    build(tp, msg, now, digest)
                except RowError as exc:
                    # A broken record on an internal topic is kept as a dead letter.
                    dead = DeadLetter(
                        stage=STAGE_SINK,
                        reason=str(exc),
                        raw=msg.value or b"",
                        source=Source(tp.topic, tp.partition, msg.offset, int(msg.timestamp)),
                        failed_at_ms=time.time_ns() // 1_000_000,
                        error_type="RowError",
                    )
                    self._round.dead.add(self._dead_row(dead), tp, msg, now, digest)

    # One row builder per topic: each buffers what one message becomes, or raises RowError.

    def _buffer_enriched(self, tp: TopicPartition, msg: Any, now: float, digest: bytes) -> None:
        # Every row is built before any is buffered: a RowError leaves no half of the record.
        rows = enriched_rows(msg.value, tp.topic, tp.partition, msg.offset)
        r = self._round
        r.documents.add(rows.document, tp, msg, now, digest)
        for classification in rows.classifications:
            r.classifications.add(classification, tp, msg, now, digest)
        for mention in rows.mentions:
            r.entity_mentions.add(mention, tp, msg, now, digest)
        for finding in rows.findings:
            r.pii_findings.add(finding, tp, msg, now, digest)

    def _buffer_event(self, tp: TopicPartition, msg: Any, now: float, digest: bytes) -> None:
        # Events come from users: a bad one is a dead letter of stage decode/validate.
        source = Source(tp.topic, tp.partition, msg.offset, int(msg.timestamp))
        result = self._event_decoder.decode(msg.value, source, msg.key)
        if isinstance(result, DeadLetter):
            self._round.dead.add(self._dead_row(result), tp, msg, now, digest)
        else:
            self._round.events.add(event_row(result), tp, msg, now, digest)

    def _dead_row(self, dead: DeadLetter) -> list[Any]:
        kept = self.privacy.protect_dead_letter(dead)
        if kept is not dead:
            self.metrics.dead_letters_protected.labels(kept.raw_kind).inc()
        return dead_letter_row_of(kept)

    def _buffer_dead_letter(self, tp: TopicPartition, msg: Any, now: float, digest: bytes) -> None:
        self._round.dead.add(dead_letter_row(msg.value), tp, msg, now, digest)

    def _buffer_item(self, tp: TopicPartition, msg: Any, now: float, digest: bytes) -> None:
        row = item_row(msg.key, msg.value, tp.topic, tp.partition, msg.offset, msg.timestamp)
        self._round.items.add(row, tp, msg, now, digest)

    def _buffer_recommendation(
        self, tp: TopicPartition, msg: Any, now: float, digest: bytes
    ) -> None:
        row = recommendation_row(msg.value, tp.topic, tp.partition, msg.offset)
        self._round.recommendations.add(row, tp, msg, now, digest)

    def _wait_s(self) -> float:
        """How long the oldest held row may wait for its insert, now."""
        s = self.settings
        wait_ms = (
            max(s.sink_max_wait_ms, s.sink_backlog_wait_ms)
            if self._behind
            else (s.sink_max_wait_ms)
        )
        return wait_ms / 1000

    def _fetch_timeout_ms(self) -> int:
        """How long the next fetch may wait: until a flush of the held rows could be due."""
        s = self.settings
        held = [buf.first_at for buf in self._buffers if buf.rows]
        if not held:
            return min(100, max(1, s.sink_max_wait_ms))
        now = self._clock()
        oldest_due = min(held) + self._wait_s() - now
        interval_due = self._last_flush + s.sink_min_interval_ms / 1000 - now
        return int(max(0.0, min(oldest_due, interval_due)) * 1000)

    def _due(self, caught_up: bool = False) -> bool:
        """A batch is full, a row waited ``sink_max_wait_ms`` (``sink_backlog_wait_ms`` while
        the last fetch left records on the broker), or (``caught_up``: the last fetch brought
        nothing new) rows are held and ``sink_min_interval_ms`` has passed."""
        limit = self.settings.sink_batch_rows
        wait = self._wait_s()
        now = self._clock()
        held = False
        for buf in self._buffers:
            if buf.rows:
                held = True
                if len(buf.rows) >= limit or now - buf.first_at >= wait:
                    return True
        interval = self.settings.sink_min_interval_ms / 1000
        return held and caught_up and now - self._last_flush >= interval

    async def query(
        self, name: str, parameters: dict[str, Any], timeout_s: float = 10.0
    ) -> QueryResult:
        """Named query ``name`` on the sink's own client, between flushes (an embedded chdb
        data dir has this one client). Raises LookupError before the sink has connected and
        TimeoutError when a flush holds the client past ``timeout_s`` (ClickHouse down)."""
        client = self.writer.client
        if client is None:
            raise LookupError("the sink has not connected to ClickHouse yet")
        await asyncio.wait_for(self._flush_lock.acquire(), timeout_s)
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, run_named_query, client, name, parameters)
        finally:
            self._flush_lock.release()

    async def flush(self) -> None:
        """Insert everything buffered, then commit the offsets it came from."""
        async with self._flush_lock:
            self._last_flush = self._clock()
            await self._write(self._round)

    async def _write(self, r: Round) -> None:
        """Insert a round's rows, table by table, then commit the offsets they came from.
        If ClickHouse fails while the service is stopping, nothing is committed."""
        commit: dict[TopicPartition, int] = {}
        for buf in r.buffers:
            if not buf.rows:
                continue
            batch = InsertBatch(buf.table, buf.columns, buf.rows, buf.token())
            t0 = time.perf_counter()
            ok = await self.writer.insert(batch, stopping=lambda: True)
            if not ok:
                # ClickHouse refused: stop fetching (bounded memory) until it takes the
                # batch. On shutdown give up uncommitted: the records come back next start.
                assignment = self.consumer.assignment()
                self.consumer.pause(*assignment)
                self.ready = False
                try:
                    ok = await self.writer.insert(batch, stopping=self._stopping.is_set)
                finally:
                    self.consumer.resume(*assignment)
                    self.ready = not self._stopping.is_set()
                if not ok:
                    return
            elapsed = time.perf_counter() - t0
            self.metrics.observe_stage(ROLE, "insert", elapsed)
            if batch.rejected:
                self._dead_letter_rejected(r, buf, batch.rejected)
            stored = len(buf.rows) - len(batch.rejected)
            self.metrics.rows_inserted.labels(buf.table).inc(stored)
            self._stored[buf.table] = self._stored.get(buf.table, 0) + stored
            self.metrics.records.labels(ROLE, "stored").inc(stored)
            if buf.table == "documents":
                self._observe_end_to_end(buf.rows)
            for tp, (_, last) in buf.ranges.items():
                commit[tp] = max(commit.get(tp, 0), last + 1)
            buf.clear()
        if commit:
            await self._commit(commit)

    def _dead_letter_rejected(
        self, r: Round, buf: TableBuffer, rejected: list[tuple[int, str]]
    ) -> None:
        """Rows ClickHouse refused for good become dead letters (stage ``sink``) with the
        reason and their source message, written with the dead letters of round ``r``."""
        now = self._clock()
        for row, reason in rejected:
            self.metrics.rejected_rows.labels(buf.table).inc()
            tp, msg = buf.sources[row]
            if buf is r.dead:
                # A dead letter ClickHouse refuses cannot become one: the message is still in
                # Kafka at these coordinates.
                log.error(
                    "dead_letters refused the dead letter of %s:%d:%d: %s",
                    tp.topic, tp.partition, msg.offset, reason,
                )  # fmt: skip
                continue
            dead = DeadLetter(
                stage=STAGE_SINK,
                reason=f"ClickHouse refused this record's row in {buf.table}: {reason}",
                raw=msg.value or b"",
                source=Source(tp.topic, tp.partition, msg.offset, int(msg.timestamp)),
                failed_at_ms=time.time_ns() // 1_000_000,
                error_type="InsertRejected",
                key=msg.key,
            )
            r.dead.add(self._dead_row(dead), tp, msg, now, message_digest(msg))

    def _observe_end_to_end(self, rows: list[list[Any]]) -> None:
        now = time.time()
        histogram = self.metrics.end_to_end_seconds
        for row in rows:
            histogram.observe(max(0.0, now - row[_SOURCE_TS].timestamp()))

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        assigned = self.consumer.assignment()
        mine = {tp: o for tp, o in offsets.items() if tp in assigned}
        if not mine:
            return
        try:
            t0 = time.perf_counter()
            await self.consumer.commit(mine)
            self.metrics.observe_stage(ROLE, "commit", time.perf_counter() - t0)
        except Exception as exc:  # rebalanced meanwhile: rows are deduplicated on re-delivery
            log.warning("sink commit failed, records will be re-delivered: %s", exc)
