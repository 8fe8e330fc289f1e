"""Enrich role: the document hot path.

consume (aiokafka getmany) -> decode/validate -> tokenize -> token-budget batcher ->
ONE encoder pass per document (worker thread) -> heads -> produce to ``aimass.enriched``
-> commit the source offsets once every record derived from them is acknowledged.

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
import os
import socket
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from stream_aimass.batching import AdaptiveBatching, Batch, TokenBudgetBatcher
from stream_aimass.compat import unreadable_batch
from stream_aimass.decode import DocumentDecoder, ItemDecoder, unreadable_dead_letter
from stream_aimass.entities.extract import EntityExtractor
from stream_aimass.entities.linking import LinkedEntity, LinkWeights
from stream_aimass.kafka import (
    OffsetTracker,
    Outgoing,
    deliver,
    make_consumer,
    make_producer,
    replace_consumer,
    report_lag,
)
from stream_aimass.models.classify import (
    ClassifierSet,
    HeadInput,
    ZeroShotClassifier,
    load_classifier_set,
)
from stream_aimass.models.encoder import Encoder, Tokenized
from stream_aimass.models.reload import ClassifierWatcher, current_specs
from stream_aimass.observability import Metrics
from stream_aimass.records import (
    Category,
    DeadLetter,
    Document,
    EnrichedDocument,
    ModelRef,
    Source,
)
from stream_aimass.recs.index import ItemVector
from stream_aimass.retry import sleep_unless
from stream_aimass.settings import Settings

log = logging.getLogger("stream_aimass.enrich")

ROLE = "enrich"
STAGE_ENRICH = "enrich"
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class Pending:
    """A decoded document waiting for the model, with its token ids."""

    document: Document
    ids: list[int]
    tp: TopicPartition
    raw: bytes
    key: bytes | None
    offsets: list[tuple[int, int]] | None = None  # per piece, when entities are on
    word_ids: list[int | None] | None = None
    catalogue: bool = False  # a catalogue item (aimass.items): published as an item vector only


def _free_accelerator_memory(exc: BaseException) -> None:
    """After an out-of-memory error on CUDA, hand cached blocks back before smaller retries."""
    import torch

    oom = (torch.cuda.OutOfMemoryError, getattr(torch, "OutOfMemoryError", MemoryError))
    if isinstance(exc, oom) and torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass(frozen=True, slots=True)
class Enriched:
    """What one document became: its enriched record and its item vector (or None)."""

    record: bytes  # empty for a catalogue item (no enriched record)
    item_vector: bytes | None = None


class DocumentEnricher:
    """The model side of the enrich role: encoder + heads, as one callable per batch.

    ``topic`` is the zero-shot head behind ``categories``/``top_category``; ``classifiers``
    are the configured extra classifiers, swapped whole by :meth:`swap` between batches.
    """

    def __init__(
        self,
        encoder: Encoder,
        topic: ZeroShotClassifier | None,
        model_name: str,
        classifiers: ClassifierSet | None = None,
        models_dir: Path | None = None,
        metrics: Metrics | None = None,
        entities: EntityExtractor | None = None,
    ) -> None:
        self.encoder = encoder
        self.entities = entities
        self.topic = topic
        self.model = ModelRef(model_name or encoder.name, encoder.version)
        self.models_dir = models_dir or Path("models")
        self.metrics = metrics
        self.classifiers = classifiers or ClassifierSet(())

    @classmethod
    def from_settings(cls, settings: Settings) -> DocumentEnricher:
        encoder = Encoder(
            settings.resolved_model_dir,
            device=settings.device,
            dtype=settings.dtype,
            max_tokens=settings.max_tokens_per_document,
            name=settings.model_name,
            threads=settings.torch_threads,
        )
        encoder.warmup()
        topic = (
            ZeroShotClassifier(encoder, settings.labels, name="topic") if settings.labels else None
        )
        entities = None
        if settings.entities_enabled:
            entities = EntityExtractor.build(
                encoder,
                kb_path=settings.kb_path,
                ner_model=settings.ner_model,
                models_dir=settings.resolved_models_dir,
                cache_dir=settings.data_dir / "cache",
                weights=LinkWeights(nil_threshold=settings.link_nil_threshold),
            )
        enricher = cls(
            encoder, topic, settings.model_name, models_dir=settings.resolved_models_dir,
            entities=entities,
        )  # fmt: skip
        enricher.swap(enricher.load_classifiers(current_specs(settings)))
        return enricher

    def load_classifiers(self, specs: dict[str, Any]) -> ClassifierSet:
        """Load and warm up a classifier set (does not serve it: see :meth:`swap`)."""
        return load_classifier_set(specs, self.encoder, self.models_dir)

    def swap(self, new: ClassifierSet) -> ClassifierSet:
        """Serve ``new`` from the next batch on; returns the set it replaces."""
        old, self.classifiers = self.classifiers, new
        if self.metrics is not None:
            self.metrics.model_info.clear()
            for c in new.classifiers:
                self.metrics.model_info.labels(c.name, c.model.name, c.model.version).set(1)
        return old

    def tokenize(self, texts: list[str]) -> Tokenized:
        """Token ids for the batcher; offsets and word ids too when entities are on."""
        if self.entities is not None:
            return self.encoder.tokenize_with_offsets(texts)
        return Tokenized(self.encoder.tokenize(texts), [], [])

    def describe(self) -> dict[str, Any]:
        return {
            "entities": self.entities.describe() if self.entities is not None else None,
            "encoder": self.encoder.describe(),
            "topic": self.topic.describe() if self.topic is not None else None,
            "classifiers": self.classifiers.describe(),
        }

    def enrich(self, items: list[Pending], queued_ms: float) -> list[bytes]:
        """Encode a batch and return the serialised enriched records, in input order."""
        return [out.record for out in self.run(items, queued_ms, item_vectors=False)]

    def run(
        self, items: list[Pending], queued_ms: float, item_vectors: bool = True
    ) -> list[Enriched]:
        """Encode a batch: enriched records and (``item_vectors``) item vectors, in input order."""
        # Read once: a swap during this batch takes effect from the next one.
        classifiers = self.classifiers
        t0 = time.perf_counter()
        ids = [p.ids for p in items]
        entities = self.entities
        encoded = self.encoder.encode_ids(ids, token_states=entities is not None)
        t1 = time.perf_counter()
        texts = [p.document.text for p in items]
        head_input = HeadInput(encoded.embeddings, ids, texts)
        topic = self.topic
        categories: list[tuple[Category, ...]] = [() for _ in items]
        if topic is not None:
            rounded = np.round(topic.scores(head_input), 4).tolist()
            categories = [
                tuple(
                    Category(label, score) for label, score in zip(topic.labels, row, strict=True)
                )
                for row in rounded
            ]
        classified = classifiers.classify(head_input)
        halves = encoded.embeddings.astype("<f2")
        t2 = time.perf_counter()
        linked: list[list[LinkedEntity]] = [[] for _ in items]
        entities_model: dict[str, dict[str, str]] | None = None
        if entities is not None:
            tokenized = Tokenized(
                ids, [p.offsets or [] for p in items], [p.word_ids or [] for p in items]
            )
            linked = entities.extract(texts, tokenized, encoded)
            entities_model = entities.models()
        t3 = time.perf_counter()
        timings = {
            "queue": round(queued_ms, 3),
            "forward": round((t1 - t0) * 1000, 3),
            "heads": round((t2 - t1) * 1000, 3),
            "entities": round((t3 - t2) * 1000, 3),
            "batch_size": float(len(items)),
        }
        models = {self.model.name: self.model.version}
        if topic is not None:
            models[topic.model.name] = topic.model.version
        models.update(classifiers.models())
        if entities_model is not None:
            for part in entities_model.values():
                models[part["name"]] = part["version"]
        # Usage metering bills each document its share of the batch's model time by tokens.
        total_tokens = max(1, sum(encoded.tokens))
        model_ms = (t3 - t0) * 1000
        now = _now_ms()
        out = []
        for row, item in enumerate(items):
            vector = None
            if item_vectors:
                vector = self._item_vector(item, encoded.embeddings[row], categories[row], now)
            if item.catalogue:  # published as an item vector only: no record to build
                out.append(Enriched(b"", vector))
                continue
            enriched = EnrichedDocument(
                document=item.document,
                tokens=encoded.tokens[row],
                categories=categories[row],
                embedding=halves[row].tobytes(),
                embedding_dim=self.encoder.dim,
                model=self.model,
                timings_ms=timings,
                enriched_at_ms=now,
                worker=WORKER_ID,
                classifications=tuple(classified[row]),
                compute_ms=round(model_ms * encoded.tokens[row] / total_tokens, 3),
                models=models,
                entities=tuple(linked[row]),
                entities_model=entities_model,
            )
            out.append(Enriched(enriched.to_json(), vector))
        return out

    def _item_vector(
        self, item: Pending, embedding: np.ndarray, categories: tuple[Category, ...], now: int
    ) -> bytes:
        doc = item.document
        category = doc.meta.get("category")
        if not isinstance(category, str):
            category = max(categories, key=lambda c: c.score).label if categories else ""
        return ItemVector(
            tenant=doc.tenant,
            item_id=doc.id,
            kind="catalogue" if item.catalogue else "document",
            ts_ms=doc.ts_ms,
            vector=embedding,
            model=self.model,
            updated_at_ms=now,
            title=doc.title,
            category=category,
            source=doc.source.to_dict(),
            version=doc.version,
        ).to_json()


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: EnrichService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.service.drain(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("enrich assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))
        if self.service._paused and assigned:
            self.service.consumer.pause(*assigned)


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
        self.decoder = DocumentDecoder(settings.max_document_bytes)
        self.item_decoder = ItemDecoder(settings.max_document_bytes)
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
        self.metrics = metrics or Metrics()
        enricher.metrics = self.metrics
        enricher.swap(enricher.classifiers)  # publish the serving models as metrics
        self.metrics.batch_token_budget.set(settings.batch_max_tokens)
        self.watcher = ClassifierWatcher(settings, enricher, self.metrics)
        self._clock = clock
        self._stopping = asyncio.Event()
        self._model_pool = ThreadPoolExecutor(1, thread_name_prefix="aimass-model")
        self._cpu_pool = ThreadPoolExecutor(1, thread_name_prefix="aimass-tokenize")
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

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        s = self.settings
        self.consumer = self._new_consumer()
        self.producer = make_producer(s, self.bootstrap)
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
            await self._commit()
        finally:
            self.ready = False
            commit_task.cancel()
            model_task.cancel()
            watch_task.cancel()
            await asyncio.gather(commit_task, model_task, watch_task, return_exceptions=True)
            await self.consumer.stop()
            await self.producer.stop()
            self._model_pool.shutdown(wait=True)
            self._cpu_pool.shutdown(wait=True)

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
        consumer.subscribe(topics, listener=_Rebalance(self))

    # -- fetch, decode, batch ----------------------------------------------------------

    async def _fetch_loop(self) -> None:
        loop = asyncio.get_running_loop()
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
                self.consumer = await replace_consumer(
                    self.consumer, self._new_consumer, self._subscribe, exc
                )
                continue
            self.ready = True
            if records:
                t0 = time.perf_counter()
                docs = self._decode(records)
                self._timed("decode", time.perf_counter() - t0)
                if docs:
                    t0 = time.perf_counter()
                    tokenized = await loop.run_in_executor(
                        self._cpu_pool,
                        self.enricher.tokenize,
                        [p.document.text for p in docs],
                    )
                    self._timed("tokenize", time.perf_counter() - t0)
                    for row, pending in enumerate(docs):
                        pending.ids = tokenized.ids[row]
                        if tokenized.offsets:
                            pending.offsets = tokenized.offsets[row]
                            pending.word_ids = tokenized.word_ids[row]
                        self.batcher.add(pending, len(pending.ids))
                    self._added.set()
            if self._clock() >= next_lag_report:
                await report_lag(
                    self.consumer, self.settings.enrich_group, self.metrics.consumer_lag
                )
                next_lag_report = self._clock() + 1.0

    def _timed(self, stage: str, seconds: float) -> None:
        self.metrics.observe_stage(ROLE, stage, seconds)

    def _decode(self, records: dict[TopicPartition, list[Any]]) -> list[Pending]:
        docs: list[Pending] = []
        self.metrics.records.labels(ROLE, "consumed").inc(sum(map(len, records.values())))
        for tp, messages in records.items():
            catalogue = tp.topic == self.settings.topic_items
            decoder = self.item_decoder if catalogue else self.decoder
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
        try:
            return list(self.enricher.run(items, queued_ms, self.item_vectors))
        except Exception as exc:
            self.metrics.model_errors.labels(type(exc).__name__).inc()
            _free_accelerator_memory(exc)
            if len(items) == 1:
                item = items[0]
                log.warning("document %s failed in the model: %s", item.document.id, exc)
                return [
                    DeadLetter(
                        stage=STAGE_ENRICH,
                        reason=f"model failed on this document: {type(exc).__name__}: {exc}",
                        raw=item.raw,
                        source=item.document.source,
                        failed_at_ms=_now_ms(),
                        error_type=type(exc).__name__,
                        key=item.key,
                    )
                ]
            log.info("model failed on a batch of %d (%s); splitting it", len(items), exc)
            mid = len(items) // 2
            return self._enrich_splitting(items[:mid], queued_ms) + self._enrich_splitting(
                items[mid:], queued_ms
            )

    # -- produce, commit ---------------------------------------------------------------

    async def _publish(self, items: list[Pending], results: list[Enriched | DeadLetter]) -> None:
        t0 = time.perf_counter()
        try:
            topic = self.settings.topic_enriched
            vectors = self.settings.topic_item_vectors
            records: list[Outgoing] = []
            owners: list[int] = []  # the item each record derives from
            for row, (item, result) in enumerate(zip(items, results, strict=True)):
                if isinstance(result, DeadLetter):
                    records.append(self._dead_record(result))
                    owners.append(row)
                    continue
                key = f"{item.document.tenant}:{item.document.id}".encode()
                if not item.catalogue:
                    records.append(Outgoing(topic, result.record, key))
                    owners.append(row)
                if result.item_vector is not None:
                    records.append(Outgoing(vectors, result.item_vector, key))
                    owners.append(row)
            given_up = {owners[i] for i in await self._deliver(records)}
            enriched = 0
            for row, (item, result) in enumerate(zip(items, results, strict=True)):
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

    def _dead_record(self, dead: DeadLetter) -> Outgoing:
        return Outgoing(self.settings.topic_dlq, dead.to_json(), dead.dlq_key)

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
