"""Benchmark phases on the embedded stack: the pipeline (backlog, steady load,
forward-free), the recommendation path, and the naive per-message loop.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import TopicPartition

from stream_aimass.decode import DocumentDecoder
from stream_aimass.enrich.enricher import DocumentEnricher
from stream_aimass.kafka.clients import group_lag, make_consumer, make_producer
from stream_aimass.models.encoder import Encoder
from stream_aimass.pipeline import Pipeline, Stack
from stream_aimass.records import DeadLetter, Source
from stream_aimass.settings import Settings
from stream_aimass.sink.rows import DOCUMENT_COLUMNS, document_row
from stream_aimass.tools.bench.scenarios import StoredVectors
from stream_aimass.tools.corpus import generate_events

WARMUP_DOCS = 64


WARMUP_TENANT = "bench-warmup"


STEADY_TENANT = "bench-steady"


FORWARD_FREE_TENANT = "bench-forward-free"


def retag(docs: list[dict[str, Any]], tenant: str, count: int) -> list[dict[str, Any]]:
    """``count`` documents with the texts of ``docs`` (cycled, in order) under ``tenant``
    and new ids: every phase measures the same texts, each under its own tenant."""
    return [{**docs[i % len(docs)], "id": f"{tenant}-{i}", "tenant": tenant} for i in range(count)]


async def _produce(
    settings: Settings,
    bootstrap: str,
    docs: list[dict[str, Any]],
    rate: float | None = None,
    *,
    topic: str = "",
    key: str = "id",
) -> None:
    """Produce records (documents by default) at once, or paced at ``rate`` per second.

    Records are keyed ``tenant:<key field>``: ``tenant:id`` for documents, ``tenant:user_id``
    for events.
    """
    producer = make_producer(settings, bootstrap)
    await producer.start()
    started = time.perf_counter()
    try:
        for i, doc in enumerate(docs):
            if rate:
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            value = orjson.dumps(doc)
            await producer.send(
                topic or settings.topic_documents, value, key=f"{doc['tenant']}:{doc[key]}".encode()
            )
        await producer.flush()
    finally:
        await producer.stop()


async def _wait_rows(pipeline: Pipeline, count: int, timeout_s: float = 600.0) -> None:
    assert pipeline.sink is not None
    deadline = time.monotonic() + timeout_s
    while pipeline.sink.stored("documents") < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"pipeline stored {pipeline.sink.stored('documents')}/{count} rows")
        await asyncio.sleep(0.01)


async def wait_caught_up(
    settings: Settings, bootstrap: str, pipeline: Pipeline, items: int, timeout_s: float = 600.0
) -> float:
    """Until every stage has caught up, not only the documents table: both roles have
    committed everything on every input topic (side tables, item vectors and dead letters
    stored) and the recommender holds ``items`` item vectors. Returns the seconds waited."""
    s = settings
    groups = {
        s.enrich_group: [s.topic_documents, s.topic_items],
        s.sink_group: [s.topic_enriched, s.topic_dlq, s.topic_item_vectors],
    }
    started = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    while True:
        lag = 0
        for group, topics in groups.items():
            lag += sum((await group_lag(s, bootstrap, group, topics)).values())
        indexed = pipeline.recs is None or len(pipeline.recs.index) >= items
        if lag == 0 and indexed:
            return time.perf_counter() - started
        if time.monotonic() > deadline:
            raise TimeoutError(f"pipeline not caught up after {timeout_s:.0f} s (lag {lag})")
        await asyncio.sleep(0.05)


async def pipeline_run(
    settings: Settings,
    stack: Stack,
    pipeline: Pipeline,
    warmup: list[dict[str, Any]],
    docs: list[dict[str, Any]],
    steady_s: float,
    batch_sizes: dict[str, float] | None = None,
    recs_events: int = 0,
    recs: dict[str, Any] | None = None,
    loads: list[float] | None = None,
    sweep: list[dict[str, Any]] | None = None,
    ceiling: Callable[[], float] | None = None,
    ceilings: list[float] | None = None,
    forward_free: dict[str, float] | None = None,
) -> tuple[float, float]:
    """Docs/s through the whole pipeline for a backlog produced at once (after a warm-up),
    then a steady stream at half that rate for ``steady_s`` seconds (for latency).

    ``loads``: more steady phases, at these fractions of the backlog rate, each with its own
    tenant; ``sweep`` gets one entry per phase (0.5 included) with the offered and achieved
    rates (latencies are read from ClickHouse afterwards: :func:`_quantiles`).

    ``batch_sizes`` gets the mean documents per model batch in each phase: the two regimes
    of adaptive batching (``backlog`` and ``steady``).

    ``ceiling`` (the model ceiling, measured on a thread) runs right before and right after
    the backlog phase, with the pipeline idle, and ``ceilings`` gets both: the ratio then
    compares figures taken a few seconds apart, not minutes (shared machines drift). The
    "after" one waits until every stage has caught up (:func:`wait_caught_up`: side tables,
    item vectors, the recommender's index), so it never shares the CPU with them;
    ``forward_free["catch_up_s"]`` gets how long that took after the last document row.

    Every phase runs the backlog's texts (:func:`retag`), each under its own tenant.

    ``forward_free`` gets ``docs_per_s`` of one more backlog, as large as the first, with the
    encoder's forward pass replaced by :class:`StoredVectors` (the last phase).
    """
    loop = asyncio.get_running_loop()
    metrics = pipeline.metrics

    def batches() -> tuple[float, float]:
        return (
            metrics.value("aimass_batch_documents_sum"),
            metrics.value("aimass_batch_documents_count"),
        )

    def mean_since(before: tuple[float, float]) -> float:
        total, count = batches()
        return round((total - before[0]) / max(1.0, count - before[1]), 1)

    await pipeline.start()
    await _produce(settings, stack.bootstrap, warmup)
    await _wait_rows(pipeline, len(warmup))
    # A real backlog: the documents wait in Kafka in front of a warm worker, which is then
    # let go. The clock runs from then to the last row ClickHouse acknowledges.
    assert pipeline.enrich is not None
    pipeline.enrich.pause()
    await _produce(settings, stack.bootstrap, docs)
    if ceiling is not None and ceilings is not None:
        ceilings.append(await loop.run_in_executor(None, ceiling))
    mark = batches()
    started = time.perf_counter()
    pipeline.enrich.resume()
    await _wait_rows(pipeline, len(warmup) + len(docs))
    rate = len(docs) / (time.perf_counter() - started)
    catch_up = await wait_caught_up(settings, stack.bootstrap, pipeline, len(docs))
    if forward_free is not None:
        forward_free["catch_up_s"] = round(catch_up, 2)
    if ceiling is not None and ceilings is not None:
        ceilings.append(await loop.run_in_executor(None, ceiling))
    backlog_batch = mean_since(mark)
    mark = batches()
    stored = len(warmup) + len(docs)
    steady_rate = rate / 2
    steady_batch = 0.0
    for fraction in sorted({0.5, *(loads or [])}):
        offered = rate * fraction
        tenant = STEADY_TENANT if fraction == 0.5 else f"bench-load-{round(fraction * 100)}"
        phase = retag(docs, tenant, max(20, int(offered * steady_s)))
        mark = batches()
        t0 = time.perf_counter()
        await _produce(settings, stack.bootstrap, phase, rate=offered)
        stored += len(phase)
        await _wait_rows(pipeline, stored)
        achieved = len(phase) / (time.perf_counter() - t0)
        if fraction == 0.5:
            steady_batch = mean_since(mark)
        if sweep is not None:
            sweep.append(
                {
                    "offered_fraction": fraction,
                    "offered_docs_per_s": round(offered, 1),
                    "achieved_docs_per_s": round(achieved, 1),
                    "mean_batch_documents": mean_since(mark),
                    "tenant": tenant,
                }
            )
    if batch_sizes is not None:
        batch_sizes.update({"backlog": backlog_batch, "steady": steady_batch})
    if recs_events and pipeline.recs is not None and recs is not None:
        recs.update(await recs_run(settings, stack, pipeline, docs, recs_events, steady_s))
        # The sink stores the last recommendations (read back for their latencies).
        while (
            pipeline.sink is not None
            and pipeline.sink.stored("recommendations") < (_recs_counts(pipeline)[1])
        ):
            await asyncio.sleep(0.05)
    if forward_free is not None:
        # Last: its item vectors would otherwise be indexed while the recommendation phase
        # runs and delay those events.
        forward_free["docs_per_s"] = await _forward_free_backlog(
            settings, stack, pipeline, docs, stored
        )
    await pipeline.stop_and_wait()
    return rate, steady_rate


async def _forward_free_backlog(
    settings: Settings, stack: Stack, pipeline: Pipeline, texts: list[dict[str, Any]], stored: int
) -> float:
    """Docs/s of a backlog of the texts of ``texts`` with the forward pass made free."""
    assert pipeline.enrich is not None
    encoder = pipeline.enrich.enricher.encoder
    docs = retag(texts, FORWARD_FREE_TENANT, len(texts))
    count = len(docs)
    pipeline.enrich.pause()
    await _produce(settings, stack.bootstrap, docs)
    # An instance attribute shadows the method for this phase only (the model thread is
    # idle: the enrich role is paused).
    vars(encoder)["encode_ids"] = StoredVectors(encoder.dim)
    try:
        started = time.perf_counter()
        pipeline.enrich.resume()
        await _wait_rows(pipeline, stored + count)
        return count / (time.perf_counter() - started)
    finally:
        vars(encoder).pop("encode_ids", None)


def _recs_counts(pipeline: Pipeline) -> tuple[int, int]:
    """Events applied to profiles and recommendations published, since start."""
    recs = pipeline.recs
    return (recs.applied, recs.published) if recs is not None else (0, 0)


async def _produce_events(
    settings: Settings, bootstrap: str, events: list[dict[str, Any]], rate: float | None = None
) -> None:
    await _produce(settings, bootstrap, events, rate, topic=settings.topic_events, key="user_id")


async def _wait_recs(pipeline: Pipeline, applied: int, timeout_s: float = 600.0) -> float:
    """Until ``applied`` events are in profiles and their recommendations are published."""
    deadline = time.monotonic() + timeout_s
    while True:
        done, _ = _recs_counts(pipeline)
        queue_empty = pipeline.recs is None or pipeline.recs.idle
        if done >= applied and queue_empty:
            return time.perf_counter()
        if time.monotonic() > deadline:
            raise TimeoutError(f"recommendation path applied {done}/{applied} events")
        await asyncio.sleep(0.02)


async def recs_run(
    settings: Settings,
    stack: Stack,
    pipeline: Pipeline,
    docs: list[dict[str, Any]],
    n_events: int,
    steady_s: float,
) -> dict[str, Any]:
    """Events/s through the recommendation path (backlog), then latency at half that rate."""
    assert pipeline.recs is not None
    metrics = pipeline.metrics

    def stage_sum(stage: str) -> float:
        return metrics.value("aimass_stage_seconds_sum", role="recs", stage=stage)

    while len(pipeline.recs.index) < len(docs):  # every document is recommendable first
        await asyncio.sleep(0.05)
    events = generate_events(docs, n_events, seed=201)
    before, _ = _recs_counts(pipeline)
    score0, produce0 = stage_sum("score"), stage_sum("produce")
    profile0 = pipeline.recs.profile_seconds
    started = time.perf_counter()
    await _produce_events(settings, stack.bootstrap, events)
    finished = await _wait_recs(pipeline, before + len(events))
    wall = finished - started
    rate = len(events) / wall
    scoring = stage_sum("score") - score0
    producing = stage_sum("produce") - produce0
    profiles = pipeline.recs.profile_seconds - profile0
    steady_rate = rate / 2
    steady = generate_events(docs, max(20, int(steady_rate * steady_s)), seed=202)
    before, _ = _recs_counts(pipeline)
    await _produce_events(settings, stack.bootstrap, steady, rate=steady_rate)
    await _wait_recs(pipeline, before + len(steady))
    return {
        "events": len(events),
        "events_per_s": round(rate, 1),
        "latency_load_events_per_s": round(steady_rate, 1),
        "scoring_share": round(scoring / wall, 3),
        "produce_share": round(producing / wall, 3),
        "profile_share": round(profiles / wall, 3),
        "kafka_faust_share": round(max(0.0, 1 - (scoring + producing + profiles) / wall), 3),
        "mean_batch_users": round(
            metrics.value("aimass_recs_batch_events_sum")
            / max(1.0, metrics.value("aimass_recs_batch_events_count")),
            1,
        ),
        "items": len(pipeline.recs.index),
        "steady_prefix": "evt-202-",
    }


def recs_latency(client: Any, prefix: str) -> tuple[float, float]:
    """p50 and p99 of event (Kafka timestamp) -> recommendation produced, in ms."""
    rows = client.query(
        "SELECT quantile(0.5)(latency_ms), quantile(0.99)(latency_ms) FROM recommendations "
        "FINAL WHERE startsWith(trigger_event_id, {prefix:String})",
        parameters={"prefix": prefix},
    ).result_rows
    p50, p99 = rows[0]
    return float(p50 or 0.0), float(p99 or 0.0)


async def naive_run(
    settings: Settings,
    bootstrap: str,
    client: Any,
    docs: list[dict[str, Any]],
    enricher: DocumentEnricher | None = None,
    *,
    topic: str = "",
) -> float:
    """Docs/s of the loop people write first, one message at a time (on the bench's
    device): consume, decode, run the model, produce the enriched record and wait for its
    ack, insert its row, commit.

    With ``enricher`` the model step is the pipeline's whole job, in the enricher's dtype
    (fp32 for ``speedup_vs_naive``, the pipeline's own for
    ``speedup_vs_naive_same_dtype``): encoder,
    topic head, classifiers and entity stage, and the row is the pipeline's row. Without it,
    the model step is an encoder forward pass alone and nothing is produced: the loop that
    earlier versions of ``bench`` timed (``naive_forward_only_docs_per_s``).
    """
    from stream_aimass.enrich.enricher import Pending

    topic = topic or (
        "aimass.bench-naive" if enricher is not None else "aimass.bench-naive-forward"
    )
    encoder = None
    if enricher is None:
        encoder = Encoder(
            settings.resolved_model_dir,
            device=settings.device,
            dtype="fp32",
            max_tokens=settings.max_tokens_per_document,
        )
        encoder.warmup()
    client.command("CREATE TABLE IF NOT EXISTS naive_documents AS documents")
    await _produce(settings.model_copy(update={"topic_documents": topic}), bootstrap, docs)
    consumer = make_consumer(settings, bootstrap, f"{topic}-group", topic)
    producer = make_producer(settings, bootstrap) if enricher is not None else None
    decoder = DocumentDecoder(settings.max_document_bytes)
    await consumer.start()
    if producer is not None:
        await producer.start()
    loop = asyncio.get_running_loop()
    done = 0
    started = time.perf_counter()
    try:
        while done < len(docs):
            msg = await consumer.getone()
            tp = TopicPartition(msg.topic, msg.partition)
            source = Source(msg.topic, msg.partition, msg.offset, int(msg.timestamp))
            doc = decoder.decode(msg.value, source, msg.key)
            if isinstance(doc, DeadLetter):
                raise RuntimeError(f"bench document rejected: {doc.reason}")
            if enricher is not None and producer is not None:
                tokenized = enricher.tokenize([doc.text])
                item = Pending(
                    doc, tokenized.ids[0], tp, msg.value, msg.key,
                    tokenized.offsets[0] if tokenized.offsets else None,
                    tokenized.word_ids[0] if tokenized.word_ids else None,
                )  # fmt: skip
                record = enricher.run([item], 0.0, item_vectors=False)[0].record
                ack = await producer.send(f"{topic}-enriched", record, key=msg.key)
                await ack
            else:
                assert encoder is not None
                emb = encoder.encode_texts([doc.text])
                record = orjson.dumps(
                    {
                        "id": doc.id, "tenant": doc.tenant, "ts": doc.ts_ms, "text_chars": 0,
                        "tokens": 0, "categories": [], "top_category": "", "embedding": {},
                        "model": {"name": "naive", "version": "fp32"}, "enriched_at_ms": 0,
                        "source": source.to_dict(), "dim": int(emb.shape[1]),
                    }
                )  # fmt: skip
            row = document_row(record, topic, msg.partition, msg.offset)
            insert = functools.partial(
                client.insert, "naive_documents", [row], column_names=DOCUMENT_COLUMNS
            )
            await loop.run_in_executor(None, insert)
            await consumer.commit()
            done += 1
    finally:
        await consumer.stop()
        if producer is not None:
            await producer.stop()
    return done / (time.perf_counter() - started)
