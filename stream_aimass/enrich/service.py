"""The enrich role: the document hot path, as a service.

fetch (aiokafka getmany) -> decode/validate -> tokenize -> token-budget batcher -> the model
step (:mod:`.enricher`, in the model thread) -> [the generative stage (:mod:`.generation`, its
own thread), with ``summary_model``] -> produce to ``aimass.enriched`` and
``aimass.item-vectors`` -> commit the source offsets once every record derived from them is
acknowledged.

Bad input becomes a dead letter on ``aimass.dlq``; a model failure on a batch splits the
batch until the failing document is found, which becomes a dead letter (stage ``enrich``).

A failed produce (broker down, request refused) is retried with capped exponential backoff
until acknowledged; meanwhile the source offsets stay uncommitted and fetching stops at
``max_pending_documents`` (backpressure). Only stopping gives up, uncommitted: the records
are delivered again to whoever owns their partitions next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from stream_aimass.batching import AdaptiveBatching, Batch, TokenBudgetBatcher
from stream_aimass.decode import DocumentDecoder, ItemDecoder, unreadable_dead_letter
from stream_aimass.enrich.direct import API_PARTITION, DirectRequests, Refused
from stream_aimass.enrich.enricher import (
    DocumentEnricher,
    Enriched,
    Pending,
    run_isolating_failures,
)
from stream_aimass.enrich.generation import GenerationStage
from stream_aimass.enrich.rebalance import Rebalance
from stream_aimass.enrich.reload import ClassifierWatcher
from stream_aimass.enrich.tokenizing import PooledTokenizer
from stream_aimass.kafka.clients import (
    make_consumer,
    make_hot_producer,
    replace_consumer,
    report_lag,
)
from stream_aimass.kafka.compat import unreadable_batch
from stream_aimass.kafka.deliver import Outgoing, deliver
from stream_aimass.kafka.offsets import OffsetTracker
from stream_aimass.kafka.retention import LossWatch
from stream_aimass.kafka.retention import report as report_losses
from stream_aimass.observability import Metrics
from stream_aimass.records import DeadLetter, Document, Source, record_key
from stream_aimass.retry import sleep_unless
from stream_aimass.settings import Settings

log = logging.getLogger("stream_aimass.enrich")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


ROLE = "enrich"


class EnrichService:
    """Runs the document hot path until stopped."""

    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        enricher: DocumentEnricher,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        """``sleep`` waits between produce retries (default: until the delay or ``stop()``)."""
        self.settings = settings
        self.bootstrap = bootstrap
        self.enricher = enricher
        # The topic of a message decides its decoder, and whether it is a catalogue item
        # (published as an item vector only).
        self._decoders: dict[str, tuple[DocumentDecoder | ItemDecoder, bool]] = {
            settings.topic_documents: (DocumentDecoder(settings.max_document_bytes), False),
            settings.topic_items: (ItemDecoder(settings.max_document_bytes), True),
        }
        # Item vectors feed the recommendation path's item index (every worker reads them).
        self.item_vectors = settings.recs_enabled
        self.batcher: TokenBudgetBatcher[Pending] = TokenBudgetBatcher(
            settings.batch_max_tokens,
            settings.batch_max_documents,
            settings.batch_max_wait_ms / 1000,
            clock=clock,
        )
        self.adaptive = (
            AdaptiveBatching(
                min(settings.batch_min_tokens, settings.batch_max_tokens),
                settings.batch_max_tokens,
                settings.batch_max_wait_ms / 1000,
                settings.batch_full_backlog,
            )
            if settings.batch_adaptive
            else None
        )
        self.tracker = OffsetTracker()
        self.losses = LossWatch()  # records the broker deleted before they were fetched
        self.metrics = metrics or Metrics()
        enricher.metrics = self.metrics
        enricher.swap(enricher.classifiers)  # publish the serving models as metrics
        self.metrics.batch_token_budget.set(settings.batch_max_tokens)
        self.watcher = ClassifierWatcher(settings, enricher, self.metrics)
        self.generation = GenerationStage.from_settings(settings, self.metrics)
        self._clock = clock
        self._stopping = asyncio.Event()
        self._model_pool = ThreadPoolExecutor(1, thread_name_prefix="aimass-model")
        self._cpu_pool = ThreadPoolExecutor(
            settings.tokenize_threads, thread_name_prefix="aimass-tokenize"
        )
        self._tokenize = PooledTokenizer(
            self._cpu_pool, enricher.tokenize, settings.tokenize_threads
        )
        # Set when documents join the batcher (or fetching ends): the model loop forms its
        # next batch when the model is free, from everything pending then.
        self._added = asyncio.Event()
        self._fetch_done = False
        self._draining = False
        self._publishing: set[asyncio.Task[None]] = set()
        self._publish_slots = asyncio.Semaphore(4)
        self._progress = asyncio.Event()
        self._failure: BaseException | None = None
        self._sleep = sleep or self._sleep_unless_stopping
        self._paused = False
        self.consumer: Any = None
        self.producer: Any = None
        self.ready = False
        self.direct = DirectRequests(settings.api_max_pending_documents)

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        s = self.settings
        self.consumer = self._new_consumer()
        self.producer = make_hot_producer(s, self.bootstrap)
        await self.producer.start()
        await self.consumer.start()
        self._subscribe(self.consumer)
        self.ready = True
        model_task = asyncio.create_task(self._model_loop(), name="aimass-enrich-model")
        commit_task = asyncio.create_task(self._commit_loop(), name="aimass-enrich-commit")
        watch_task = asyncio.create_task(self.watcher.run(), name="aimass-model-watch")
        try:
            await self._fetch_loop()
            self._fetch_done = True  # the model loop runs what is pending, then returns
            self._added.set()
            await model_task
            if self._publishing:
                await asyncio.gather(*self._publishing, return_exceptions=True)
            if self._failure is not None:
                raise self._failure
            try:
                await self._commit()
            except KafkaError as exc:  # the group rebalanced meanwhile: nothing is lost
                log.warning("final enrich commit failed, the new owner re-delivers: %s", exc)
        finally:
            self.ready = False
            self.direct.close("the worker is stopping; retry on another")
            commit_task.cancel()
            model_task.cancel()
            watch_task.cancel()
            await asyncio.gather(commit_task, model_task, watch_task, return_exceptions=True)
            await self.consumer.stop()
            await self.producer.stop()
            self._model_pool.shutdown(wait=True)
            self._cpu_pool.shutdown(wait=True)
            if self.generation is not None:
                self.generation.close()

    def stop(self) -> None:
        """Stop fetching; in-flight batches are finished, produced and committed."""
        self._stopping.set()

    def pause(self) -> None:
        """Stop fetching new records (in-flight ones are finished); :meth:`resume` undoes it.

        Records keep accumulating in Kafka meanwhile: ``bench`` uses this to build a real
        backlog in front of a warm worker.
        """
        self._paused = True
        if self.consumer is not None:
            self.consumer.pause(*self.consumer.assignment())

    def resume(self) -> None:
        self._paused = False
        if self.consumer is not None:
            self.consumer.resume(*self.consumer.assignment())

    def _new_consumer(self) -> Any:
        return make_consumer(self.settings, self.bootstrap, self.settings.enrich_group)

    def _subscribe(self, consumer: Any) -> None:
        s = self.settings
        topics = [s.topic_documents, s.topic_items] if s.recs_enabled else [s.topic_documents]
        consumer.subscribe(topics, listener=Rebalance(self))

    # -- fetch, decode, batch ----------------------------------------------------------

    async def _fetch_loop(self) -> None:
        next_lag_report = self._clock()
        while not self._stopping.is_set():
            if self._failure is not None:
                # Publishing failed with something that is not a Kafka error (a bug): stop
                # uncommitted and let the supervisor restart us; the records come back then.
                raise self._failure
            # Fetch ahead of the model by at most fetch_max_records documents: enough to cut
            # well-sorted batches, and what a SIGTERM has to drain stays bounded.
            room = self.settings.fetch_max_records - len(self.batcher)
            if self.tracker.pending() >= self.settings.max_pending_documents or room <= 0:
                # Backpressure: the model or the producer is behind; let them catch up.
                self._progress.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._progress.wait(), 0.05)
                continue
            try:
                records = await self.consumer.getmany(timeout_ms=100, max_records=room)
            except KafkaError as exc:
                # Not ready until the new consumer fetches: readiness must not hide a
                # consumer that keeps failing.
                self.ready = False
                self.metrics.consumer_failures.labels(ROLE, type(exc).__name__).inc()
                self.tracker.forget_all()
                self.losses.forget()
                self.consumer = await replace_consumer(
                    self.consumer, self._new_consumer, self._subscribe, exc
                )
                continue
            self.ready = True
            if records:
                lost = await self.losses.check(self.consumer, records)
                report_losses(lost, ROLE, self.metrics.records_lost)
                for gone in lost:
                    # On record in the DLQ before anything after the gap is committed.
                    tp = TopicPartition(gone.topic, gone.partition)
                    self.tracker.add(tp, gone.start)
                    dead = gone.dead_letter(ROLE, int(records[tp][0].timestamp))
                    self._publish_dead(dead, tp, gone.start)
                t0 = time.perf_counter()
                docs = self._decode(records)
                self._timed("decode", time.perf_counter() - t0)
                if docs:
                    await self._queue(docs)
            if self._clock() >= next_lag_report:
                await report_lag(
                    self.consumer, self.settings.enrich_group, self.metrics.consumer_lag
                )
                next_lag_report = self._clock() + 1.0

    async def _queue(self, docs: list[Pending]) -> None:
        """Tokenize ``docs`` and hand them to the batcher."""
        t0 = time.perf_counter()
        tokenized = await self._tokenize([p.document.text for p in docs])
        self._timed("tokenize", time.perf_counter() - t0)
        for row, pending in enumerate(docs):
            pending.ids = tokenized.ids[row]
            if tokenized.offsets:
                pending.offsets = tokenized.offsets[row]
                pending.word_ids = tokenized.word_ids[row]
            self.batcher.add(pending, len(pending.ids))
        self._added.set()

    # -- documents over HTTP (enrich/direct.py) ----------------------------------------

    async def enrich_now(self, documents: list[Document]) -> list[Enriched | DeadLetter]:
        """Enrich documents that came over HTTP with the stream's batcher and model thread,
        in input order (a dead letter: the model failed on that one). Raises
        :class:`~stream_aimass.enrich.direct.Refused` when not ready or full."""
        self.direct.admit(len(documents), self.ready)
        try:
            items = [
                Pending(d, [], API_PARTITION, b"", record_key(d.tenant, d.id)) for d in documents
            ]
            for item in items:
                item.reply = self.direct.reply()
            await self._queue(items)
            replies = await asyncio.gather(*(item.reply for item in items if item.reply))
            return [r for r in replies if isinstance(r, Enriched | DeadLetter)]
        finally:
            self.direct.release(len(documents))

    async def embed_now(self, texts: list[str]) -> Any:
        """Embeddings only, (n, dim) float32, on the model thread between batches."""
        self.direct.admit(len(texts), self.ready)
        try:
            loop = asyncio.get_running_loop()
            ids = (await self._tokenize(texts)).ids
            batch = self.settings.batch_max_documents
            return await loop.run_in_executor(self._model_pool, self.enricher.embed, ids, batch)
        finally:
            self.direct.release(len(texts))

    def _timed(self, stage: str, seconds: float) -> None:
        self.metrics.observe_stage(ROLE, stage, seconds)

    def _decode(self, records: dict[TopicPartition, list[Any]]) -> list[Pending]:
        docs: list[Pending] = []
        self.metrics.records.labels(ROLE, "consumed").inc(sum(map(len, records.values())))
        for tp, messages in records.items():
            decoder, catalogue = self._decoders[tp.topic]
            for msg in messages:
                self.tracker.add(tp, msg.offset)
                bad = unreadable_batch(msg)
                if bad is not None:  # the marker of a batch that could not be decoded
                    self.metrics.unreadable_batches.labels(ROLE, tp.topic).inc()
                    dead = unreadable_dead_letter(bad, tp.topic, tp.partition, msg.timestamp)
                    self._publish_dead(dead, tp, msg.offset)
                    continue
                source = Source(tp.topic, tp.partition, msg.offset, int(msg.timestamp))
                result = decoder.decode(msg.value, source, msg.key)
                if isinstance(result, DeadLetter):
                    self._publish_dead(result, tp, msg.offset)
                else:
                    pending = Pending(result, [], tp, msg.value or b"", msg.key)
                    pending.catalogue = catalogue
                    docs.append(pending)
        return docs

    # -- model -------------------------------------------------------------------------

    async def _next_batch(self) -> Batch[Pending] | None:
        """The model's next batch, formed now that the model is free; None when done.

        Waits while it pays: until the pending documents fill a batch or the oldest has
        waited ``batch_max_wait_ms`` (at once with ``batch_when_idle``, while draining
        revoked partitions, and once fetching has ended).
        """
        while True:
            if self.adaptive is not None:
                tokens, wait_s = self.adaptive.limits(self.tracker.pending())
                self.batcher.set_limits(tokens, wait_s)
                self.metrics.batch_token_budget.set(tokens)
            now = self._fetch_done or self._draining or self.settings.batch_when_idle
            batch = self.batcher.next_batch(now=now)
            if batch is not None:
                return batch
            if self._fetch_done:
                return None
            self._added.clear()
            deadline = self.batcher.deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._added.wait(), timeout)

    async def _model_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            if batch is None:
                return
            self._progress.set()  # room in the batcher: fetching may go on
            queued_ms = (self._clock() - batch.oldest_enqueued) * 1000
            self._timed("queue", queued_ms / 1000)
            t0 = time.perf_counter()
            results = await loop.run_in_executor(
                self._model_pool, self._enrich_splitting, batch.items, queued_ms
            )
            self._timed("model", time.perf_counter() - t0)
            self.metrics.batch_documents.observe(len(batch))
            self.metrics.batch_tokens.observe(sum(batch.costs))
            await self._publish_slots.acquire()
            self._track(asyncio.create_task(self._publish(batch.items, results)))

    def _enrich_splitting(
        self, items: list[Pending], queued_ms: float
    ) -> list[Enriched | DeadLetter]:
        """Enrich; on a model error split the batch so only the failing documents fail."""

        def failed(exc: BaseException) -> None:
            self.metrics.model_errors.labels(type(exc).__name__).inc()

        return run_isolating_failures(
            self.enricher, items, queued_ms, self.item_vectors, on_error=failed
        )

    # -- produce, commit ---------------------------------------------------------------

    async def _publish(self, items: list[Pending], results: list[Enriched | DeadLetter]) -> None:
        t0 = time.perf_counter()
        try:
            if self.generation is not None:  # the records wait for their generated summaries
                results = await self.generation.complete(items, results)
            topic = self.settings.topic_enriched
            vectors = self.settings.topic_item_vectors
            records: list[Outgoing] = []
            owners: list[int] = []  # the item each record derives from
            for row, (item, result) in enumerate(zip(items, results, strict=True)):
                if item.reply is not None and (
                    isinstance(result, DeadLetter) or not self.settings.api_publish_enriched
                ):
                    continue  # the HTTP caller gets it; nothing to publish
                if isinstance(result, DeadLetter):
                    records.append(self._dead_record(result))
                    owners.append(row)
                    continue
                key = record_key(item.document.tenant, item.document.id)
                if not item.catalogue:
                    records.append(Outgoing(topic, result.record, key))
                    owners.append(row)
                if result.item_vector is not None:
                    records.append(Outgoing(vectors, result.item_vector, key))
                    owners.append(row)
            given_up = {owners[i] for i in await self._deliver(records)}
            enriched = 0
            for row, (item, result) in enumerate(zip(items, results, strict=True)):
                if item.reply is not None:
                    self._answer(item.reply, result, given_up=row in given_up)
                    continue
                if row in given_up:
                    continue  # stopping: left uncommitted, delivered again next time
                if isinstance(result, DeadLetter):
                    self._count_dead(result)
                else:
                    enriched += 1
                # Every record derived from this offset is acknowledged.
                self.tracker.done(item.tp, item.document.source.offset)
            self.metrics.records.labels(ROLE, "enriched").inc(enriched)
            self._timed("produce", time.perf_counter() - t0)
            self._progress.set()
        finally:
            self._publish_slots.release()

    def _answer(self, reply: asyncio.Future[object], result: object, given_up: bool) -> None:
        if reply.done():  # the caller went away
            return
        if given_up:
            reply.set_exception(Refused(503, "the worker stopped before the record was stored"))
        else:
            reply.set_result(result)

    def _dead_record(self, dead: DeadLetter) -> Outgoing:
        kept = self.enricher.protect_dead_letter(dead)  # under the PII policy
        return Outgoing(self.settings.topic_dlq, kept.to_json(), kept.dlq_key)

    def _count_dead(self, dead: DeadLetter) -> None:
        self.metrics.records.labels(ROLE, "dead_letter").inc()
        self.metrics.dead_letters.labels(dead.stage).inc()

    def _publish_dead(self, dead: DeadLetter, tp: TopicPartition, offset: int) -> None:
        """Produce ``dead``, then mark the record at ``offset`` done."""

        async def send() -> None:
            if await self._deliver([self._dead_record(dead)]):
                return  # stopping: left uncommitted
            self._count_dead(dead)
            self.tracker.done(tp, offset)
            self._progress.set()

        self._track(asyncio.create_task(send()))

    async def _deliver(self, records: list[Outgoing]) -> set[int]:
        """Produce until acknowledged (see :func:`~stream_aimass.kafka.deliver`); the
        indices given up on stopping. Meanwhile the source offsets stay uncommitted and the
        fetch loop stops at ``max_pending_documents``."""
        return await deliver(
            self.producer,
            records,
            stopping=self._stopping.is_set,
            sleep=self._sleep,
            retry_max_s=self.settings.produce_retry_max_s,
            on_retry=lambda out: self.metrics.produce_retries.labels(out.topic).inc(),
        )

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        await sleep_unless(self._stopping, seconds)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._publishing.add(task)
        task.add_done_callback(self._published)

    def _published(self, task: asyncio.Task[None]) -> None:
        self._publishing.discard(task)
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()
            log.error("producing failed: %r", self._failure)

    async def _commit(self) -> None:
        offsets = self.tracker.take_committable()
        if offsets:
            assigned = self.consumer.assignment()
            offsets = {tp: o for tp, o in offsets.items() if tp in assigned}
            if offsets:
                t0 = time.perf_counter()
                await self.consumer.commit(offsets)
                self._timed("commit", time.perf_counter() - t0)

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            try:
                await self._commit()
            except Exception as exc:  # a rebalance in progress: the next round commits
                log.info("enrich commit deferred: %s", exc)

    async def drain(self, revoked: list[TopicPartition], timeout_s: float = 30.0) -> None:
        """Before giving partitions away: finish their in-flight records and commit them."""
        deadline = time.monotonic() + timeout_s
        self._draining = True  # the model takes what is pending at once, full or not
        self._added.set()
        try:
            while self.tracker.pending(revoked) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        finally:
            self._draining = False
        mine = self.tracker.take_committable(revoked)
        if mine:
            try:
                await self.consumer.commit(mine)
            except Exception as exc:
                log.warning("commit on revoke failed (records will be re-delivered): %s", exc)
        self.tracker.forget(revoked)
