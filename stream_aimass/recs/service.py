"""The recommendation path of a worker: item index reader, profile agent, batched scorer.

    aimass.item-vectors ──(read whole, then live; no consumer group)──► ItemIndex
    aimass.events ──Faust agent──► decode ──► profile table (Faust, changelog) ──► queue
    queue ──(micro-batch: recs_batch_max_events / recs_batch_max_wait_ms)──► Scorer
          (one matrix multiply per tenant, in the model thread) ──► aimass.recommendations

Profiles live in a Faust table keyed ``tenant:user_id``, the events topic's key, so each
profile sits in the partition of its user's events and Faust restores it from the
changelog after a restart or a rebalance. The agent waits until the item index has read
``aimass.item-vectors`` up to the end offsets it saw at start.

Bad events are stored as dead letters by the sink role (it reads the same topic). An event
replayed by Kafka (at-least-once) is recognised by the profile's last applied offset. A
user's events in one scoring batch share one recommendation (``trigger_event_ids``; the
last is ``trigger_event_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from stream_aimass.decode import EventDecoder
from stream_aimass.kafka.clients import make_consumer, make_producer
from stream_aimass.kafka.compat import unreadable_batch
from stream_aimass.kafka.deliver import Outgoing, deliver
from stream_aimass.kafka.topics import events_partitions
from stream_aimass.observability import Metrics
from stream_aimass.records import (
    TENANT_RE,
    TENANT_RULE,
    DeadLetter,
    Event,
    ItemVectorError,
    Recommendation,
    Source,
)
from stream_aimass.recs import item_index, profile_config, scoring_config
from stream_aimass.recs.profiles import Profile, apply_event, profile_key, resolve_pending
from stream_aimass.recs.scoring import MODEL_NAME, Scored, Scorer, ScoreRequest
from stream_aimass.recs.table_store import rebuild_stale_store
from stream_aimass.retry import sleep_unless
from stream_aimass.settings import Settings

log = logging.getLogger("stream_aimass.recs")

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
TABLE_NAME = "profiles"
MAX_USER_ID = 256
MAX_K = 100
ITEM_FETCH_WAIT_MS = 500


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class _Queued:
    event: Event
    request: ScoreRequest
    triggers: list[str] = field(default_factory=list)


class RecsService:
    """Registers the profile table and the events agent on a Faust app; scores and publishes.

    Build it before the Faust app starts (agents and tables must exist by then), then
    :meth:`start` it inside the running event loop."""

    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        app: Any,
        metrics: Metrics | None = None,
        device: str = "cpu",
    ) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.app = app
        self.metrics = metrics or Metrics()
        self.index = item_index(settings)
        self.config = profile_config(settings)
        self.scorer = Scorer(self.index, scoring_config(settings), device=device)
        self.model = {"name": MODEL_NAME, "version": self.scorer.config.version}
        self.decoder = EventDecoder(settings.max_event_bytes)
        partitions = events_partitions(settings)
        self.partitions = partitions
        # Profile key -> the events partition the agent last wrote it from (see holds).
        self._written_partition: dict[bytes, int] = {}
        self.events_topic = app.topic(
            settings.topic_events,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
        )
        self.profiles = app.Table(
            TABLE_NAME,
            key_type=bytes,
            value_type=bytes,
            partitions=partitions,
            changelog_topic=app.topic(
                settings.profiles_changelog,
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=partitions,
            ),
        )
        app.agent(self.events_topic, name="aimass-recs-events")(self._agent)
        self.index_ready = asyncio.Event()
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue(
            maxsize=4 * settings.recs_batch_max_events
        )
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="aimass-recs")
        self._tasks: list[asyncio.Task[None]] = []
        self._producer: Any = None
        self._reader: Any = None
        self._stopping = asyncio.Event()
        self._busy = False
        # Time in _apply (decode + profile table), summed: a histogram per event costs more.
        self._profile_seconds = 0.0
        # Plain counts for progress checks (reading them from the registry costs a collect).
        self.applied = 0
        self.published = 0
        self._publish_slots = asyncio.Semaphore(4)
        self._publishing: set[asyncio.Task[None]] = set()
        # Where the item-vector reader is, to resume there with a new consumer.
        self._item_positions: dict[TopicPartition, int] = {}
        self._reader_failing = False
        self._failed: BaseException | None = None  # a task of ours died: not ready

    # -- lifecycle ---------------------------------------------------------------------

    async def prepare_store(self) -> bool:
        """Before the Faust app starts: rebuild a local profile store that belongs to other
        data than the changelog now on the broker (see :mod:`.table_store`); True if so."""
        if not self.settings.recs_store.startswith("rocksdb"):
            return False  # a memory store is rebuilt from the changelog on every start
        return await rebuild_stale_store(
            self.settings,
            self.bootstrap,
            Path(self.app.conf.tabledir),
            TABLE_NAME,
            self.settings.profiles_changelog,
        )

    async def start(self, timeout_s: float = 120.0) -> None:
        """Load the item index (up to the end offsets now), then start scoring."""
        self._producer = make_producer(self.settings, self.bootstrap)
        await self._producer.start()
        self._reader = self._new_reader()
        await self._reader.start()
        ends = await self._assign_item_vectors()
        self._tasks = [
            asyncio.create_task(self._read_items(ends), name="aimass-item-index"),
            asyncio.create_task(self._score_loop(), name="aimass-recs-score"),
        ]
        for task in self._tasks:
            task.add_done_callback(self._task_done)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.index_ready.wait(), timeout_s)
        if not self.index_ready.is_set():
            log.warning("item index not loaded after %.0f s; serving what it has", timeout_s)
            self.index_ready.set()

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._publishing:  # recommendations already scored still go out
            await asyncio.gather(*self._publishing, return_exceptions=True)
        self._tasks = []
        if self._reader is not None:
            await self._reader.stop()
        if self._producer is not None:
            await self._producer.stop()
        self._pool.shutdown(wait=True)

    @property
    def ready(self) -> bool:
        """The item index is loaded, its reader fetches, and no task of ours has died."""
        return self.index_ready.is_set() and not self._reader_failing and self._failed is None

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and self._failed is None:
            self._failed = task.exception()
            log.error("recommendation path task %s failed: %r", task.get_name(), self._failed)

    @property
    def profile_seconds(self) -> float:
        """Event-loop time spent decoding events and updating profiles, since start."""
        return self._profile_seconds

    @property
    def idle(self) -> bool:
        """Nothing queued for scoring and no batch being scored or published."""
        return self._queue.empty() and not self._busy and not self._publishing

    # -- item index --------------------------------------------------------------------

    async def _assign_item_vectors(self) -> dict[TopicPartition, int]:
        topic = self.settings.topic_item_vectors
        await self._reader._client.force_metadata_update()
        tps = [
            TopicPartition(topic, p) for p in sorted(self._reader.partitions_for_topic(topic) or ())
        ]
        self._reader.assign(tps)
        await self._reader.seek_to_beginning(*tps)
        ends: dict[TopicPartition, int] = await self._reader.end_offsets(tps)
        return {tp: end for tp, end in ends.items() if end > 0}

    def _new_reader(self) -> Any:
        # Item vectors may trail by half a second (events on newer items wait as pending):
        # a long fetch wait keeps this always-idle reader from polling the broker.
        return make_consumer(
            self.settings, self.bootstrap, None, fetch_max_wait_ms=ITEM_FETCH_WAIT_MS
        )

    async def _replace_reader(self, error: KafkaError) -> None:
        """A new item-vector reader, resuming where the failed one was."""
        log.warning("item-vector reader failed (%s); starting a new one", error)
        tps = list(self._reader.assignment())
        with contextlib.suppress(Exception):
            await self._reader.stop()
        await sleep_unless(self._stopping, 1.0)
        self._reader = self._new_reader()
        await self._reader.start()
        self._reader.assign(tps)
        for tp in tps:
            if tp in self._item_positions:
                self._reader.seek(tp, self._item_positions[tp])
            else:
                await self._reader.seek_to_beginning(tp)

    async def _read_items(self, ends: dict[TopicPartition, int]) -> None:
        started = time.perf_counter()
        remaining = dict(ends)
        if not remaining:
            self.index_ready.set()
        while not self._stopping.is_set():
            try:
                records = await self._reader.getmany(timeout_ms=100, max_records=4096)
            except KafkaError as exc:
                # Not ready until a new reader fetches: the index would silently go stale.
                self._reader_failing = True
                self.metrics.consumer_failures.labels("recs", type(exc).__name__).inc()
                await self._replace_reader(exc)
                continue
            self._reader_failing = False
            for tp, messages in records.items():
                if messages:
                    self._item_positions[tp] = messages[-1].offset + 1
                for msg in messages:
                    if unreadable_batch(msg) is not None:
                        # Not a tombstone: the sink stores it as a dead letter.
                        self.metrics.unreadable_batches.labels("recs", tp.topic).inc()
                        continue
                    try:
                        self.index.apply(msg.key, msg.value, msg.timestamp, msg.offset)
                    except ItemVectorError as exc:
                        self.index.rejected += 1
                        log.warning(
                            "item vector %s:%s:%s unusable: %s",
                            tp.topic,
                            tp.partition,
                            msg.offset,
                            exc,
                        )
                if tp in remaining and messages and messages[-1].offset + 1 >= remaining[tp]:
                    del remaining[tp]
            self.metrics.item_index_items.set(len(self.index))
            if not self.index_ready.is_set() and not remaining:
                log.info(
                    "item index loaded: %d items in %.1f s",
                    len(self.index),
                    time.perf_counter() - started,
                )
                self.index_ready.set()

    # -- events -> profiles ------------------------------------------------------------

    async def _agent(self, stream: Any) -> None:
        await self.index_ready.wait()
        async for event in stream.events():
            message = event.message
            if unreadable_batch(message) is not None:
                # The sink stores the batch as a dead letter; its events are not applied.
                self.metrics.recs_events.labels("unreadable").inc()
                continue
            source = Source(
                message.topic, message.partition, message.offset, int(message.timestamp * 1000)
            )
            t0 = time.perf_counter()
            queued = self._apply(event.key, event.value, source)
            self._profile_seconds += time.perf_counter() - t0
            if queued is not None:
                await self._queue.put(queued)

    def _apply(self, key: bytes | None, value: bytes | None, source: Source) -> _Queued | None:
        """Decode one event and fold it into its user's profile (in the event loop)."""
        decoded = self.decoder.decode(value, source, key)
        if isinstance(decoded, DeadLetter):
            self.metrics.recs_events.labels("invalid").inc()
            return None
        event = decoded
        table_key = profile_key(event.tenant, event.user_id)
        raw = self.profiles.get(table_key)
        profile = Profile.from_bytes(raw) if raw else None
        vector = self.index.vector(event.tenant, event.item_id)
        if vector is None:
            self.metrics.recs_unknown_items.inc()
        updated = apply_event(
            profile,
            event,
            vector,
            self.config,
            self.index.model_version,
            lookup=functools.partial(self.index.vector, event.tenant),
        )
        if updated is None:
            self.metrics.recs_events.labels("replayed").inc()
            return None
        self.profiles[table_key] = updated.to_bytes()
        self._written_partition[table_key] = source.partition
        self.index.add_interaction(
            event.tenant, event.item_id, self.config.weight(event.type), event.ts_ms
        )
        self.metrics.recs_events.labels("applied").inc()
        self.applied += 1
        request = ScoreRequest(
            event.tenant, updated.unit_vector(), tuple(updated.recent), now_ms=event.ts_ms
        )
        return _Queued(event, request, [event.event_id])

    # -- scoring and publishing --------------------------------------------------------

    async def _next_batch(self) -> list[_Queued]:
        batch = [await self._queue.get()]
        self._busy = True
        deadline = time.monotonic() + self.settings.recs_batch_max_wait_ms / 1000
        while len(batch) < self.settings.recs_batch_max_events:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), left))
            except TimeoutError:
                break
        # One recommendation per user per batch, from the newest state of the profile.
        by_user: dict[tuple[str, str], _Queued] = {}
        for queued in batch:
            user = (queued.event.tenant, queued.event.user_id)
            earlier = by_user.get(user)
            if earlier is not None:
                queued.triggers = earlier.triggers + queued.triggers
            by_user[user] = queued
        return list(by_user.values())

    async def _score_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._busy = False
            batch = await self._next_batch()
            t0 = time.perf_counter()
            requests = [q.request for q in batch]
            if self.scorer.device.startswith("cuda"):
                scored = await loop.run_in_executor(self._pool, self.scorer.score, requests)
            else:
                # On a CPU a batch takes about a millisecond; a thread hop would spend more
                # than that waiting for the GIL behind the event loop (measured: 7 ms).
                scored = self.scorer.score(requests)
            self.metrics.observe_stage("recs", "score", time.perf_counter() - t0)
            self.metrics.recs_batch_events.observe(len(batch))
            # Score the next batch while this one's acknowledgements are on their way.
            await self._publish_slots.acquire()
            task = asyncio.create_task(self._publish_logged(batch, scored))
            self._publishing.add(task)
            task.add_done_callback(self._publishing.discard)

    async def _publish_logged(self, batch: list[_Queued], scored: list[Scored]) -> None:
        try:
            await self._publish(batch, scored)
        except Exception:  # a bug, not Kafka (deliver retries those): say so, count it
            self.metrics.recs_publish_failures.inc(len(batch))
            log.exception("publishing %d recommendations failed", len(batch))
        finally:
            self._publish_slots.release()

    async def _publish(self, batch: list[_Queued], scored: list[Scored]) -> None:
        """Produce the batch's recommendations until acknowledged (retried with backoff;
        meanwhile scoring waits for a publish slot and the events agent for queue room)."""
        t0 = time.perf_counter()
        topic = self.settings.topic_recommendations
        records = []
        for queued, result in zip(batch, scored, strict=True):
            event = queued.event
            rec = Recommendation(
                tenant=event.tenant,
                user_id=event.user_id,
                trigger_event_ids=tuple(queued.triggers),
                items=tuple(item.to_dict(rank) for rank, item in enumerate(result.items, 1)),
                cold_start=result.cold_start,
                k=self.scorer.config.k,
                model=self.model,
                event=event.source,
                event_ts_ms=event.ts_ms,
                ts_ms=_now_ms(),
                worker=WORKER_ID,
            )
            records.append(Outgoing(topic, rec.to_json(), rec.key))
        self.metrics.observe_stage("recs", "produce", time.perf_counter() - t0)

        def retried(out: Outgoing) -> None:
            self.metrics.recs_publish_failures.inc()
            self.metrics.produce_retries.labels(out.topic).inc()

        given_up = await deliver(
            self._producer,
            records,
            stopping=self._stopping.is_set,
            sleep=lambda s: sleep_unless(self._stopping, s),
            retry_max_s=self.settings.produce_retry_max_s,
            on_retry=retried,
        )
        for row, (queued, result) in enumerate(zip(batch, scored, strict=True)):
            if row in given_up:
                continue  # stopping: at-most-once (see docs/reliability.md)
            self.published += 1
            self.metrics.recs_published.labels(
                "cold_start" if result.cold_start else "personal"
            ).inc()
            self.metrics.recs_latency_seconds.observe(
                max(0.0, time.time() - queued.event.source.timestamp_ms / 1000)
            )

    # -- HTTP --------------------------------------------------------------------------

    def holds(self, tenant: str, user_id: str) -> bool:
        """Whether this worker has the user's profile and holds its partition now (Faust's
        memory store keeps what the agent wrote to a partition that moved away: stale)."""
        key = profile_key(tenant, user_id)
        if self.profiles.get(key) is None:
            return False
        partition = self._written_partition.get(key)
        if partition is None:  # restored from the changelog: Faust drops those it gives away
            return True
        actives = self.app.assignor.assigned_actives()
        return (self.settings.topic_events, partition) in {(t.topic, t.partition) for t in actives}

    def lookup(self, tenant: str, user_id: str) -> Profile | None:
        raw = self.profiles.get(profile_key(tenant, user_id))
        return Profile.from_bytes(raw) if raw else None

    def recommend(
        self, tenant: str, user_id: str, k: int, cold_start: bool
    ) -> tuple[int, dict[str, Any]]:
        """The body of ``GET /v1/recommendations/{tenant}/{user_id}``: (status, JSON)."""
        error = validate_request(tenant, user_id, k)
        if error is not None:
            return 400, {"error": error}
        profile = self.lookup(tenant, user_id)
        if profile is None and not cold_start:
            return 404, {
                "error": f"unknown user {user_id!r} in tenant {tenant!r}",
                "hint": "add ?cold_start=true for the tenant's popular items",
            }
        if profile is not None and profile.pending:
            # Items indexed since the user's last event count now (this copy is not saved).
            lookup = functools.partial(self.index.vector, tenant)
            resolve_pending(profile, lookup, self.config, self.index.model_version)
        vector = profile.unit_vector() if profile is not None else None
        request = ScoreRequest(
            tenant,
            vector,
            tuple(profile.recent) if profile is not None else (),
            now_ms=_now_ms() if profile is None else max(profile.last_seen_ms, 0) or _now_ms(),
            k=k,
        )
        (result,) = self.scorer.score([request])
        return 200, {
            "tenant": tenant,
            "user_id": user_id,
            "k": k,
            "known_user": profile is not None,
            "cold_start": result.cold_start,
            "items": [
                {**item.to_dict(rank), "title": item.title}
                for rank, item in enumerate(result.items, 1)
            ],
            "profile": profile.summary() if profile is not None else None,
            "model": self.model,
        }

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, "index": self.index.describe(), "ready": self.ready}


def validate_request(tenant: str, user_id: str, k: int | None) -> str | None:
    """Why a recommendations request is invalid, or None."""
    if not TENANT_RE.fullmatch(tenant):
        return f"tenant {TENANT_RULE}"
    if not user_id or len(user_id) > MAX_USER_ID:
        return f"user_id must be 1 to {MAX_USER_ID} characters"
    if k is None or not 1 <= k <= MAX_K:
        return f"k must be an integer from 1 to {MAX_K}"
    return None
