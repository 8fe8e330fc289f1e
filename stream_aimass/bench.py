"""``stream-aimass bench``: three measurements on the same texts, in one run.

- model ceiling: tokenize + forward + heads + entities, same batching and dtype as the
  pipeline;
- pipeline: the full path through the embedded broker and ClickHouse, from a backlog
  (throughput), then steady streams at fractions of that rate (latency: produce ->
  ClickHouse row, p50/p95/p99 at each offered load; half the max is the headline figure);
- naive loop: consume one message, run the same model work in fp32 on it alone, produce its
  enriched record and wait for the ack, insert its row, commit, repeat (and the older
  forward-only loop, which skips the heads, the entity stage and the produce);
- recommendations: user events over the documents just indexed, as a backlog (events/s
  through decode -> profile table -> batched scoring -> produce) and then at half that rate
  (p50/p99 event -> recommendation latency), with the share of the path's time spent
  scoring, producing, and in Kafka/Faust (consume, decode, profile table).

Machines are noisy: the ratios measured in one run are the figures that mean something.
"""

from __future__ import annotations

import asyncio
import functools
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import TopicPartition
from rich.console import Console

from stream_aimass.batching import TokenBudgetBatcher
from stream_aimass.corpus import generate_documents, generate_events
from stream_aimass.decode import DocumentDecoder
from stream_aimass.enrich import DocumentEnricher
from stream_aimass.kafka import make_consumer, make_producer
from stream_aimass.models.classify import HeadInput
from stream_aimass.models.encoder import EncodedBatch, Encoder, Tokenized
from stream_aimass.pipeline import Pipeline, Stack, open_clickhouse
from stream_aimass.records import DeadLetter, Source
from stream_aimass.settings import Settings
from stream_aimass.sinks.clickhouse import DOCUMENT_COLUMNS, document_row

WARMUP_DOCS = 64
HEADS_DOCS = 512
HEAD_LABELS = 77  # the size of Banking77's intent set: a realistic head
WARMUP_TENANT = "bench-warmup"
STEADY_TENANT = "bench-steady"
FORWARD_FREE_TENANT = "bench-forward-free"


class StoredVectors:
    """Stands in for the encoder's forward pass in the forward-free phase only.

    Returns unit vectors and token states, sliced from a fixed random pool, in the shapes
    the real pass returns. Everything after the forward pass then does its real work on
    them: the heads, the entity stage, records, Kafka, ClickHouse. What the pipeline
    reaches then is the ceiling of one worker process's Python side: what a device that
    made the forward pass free would meet.
    """

    def __init__(self, dim: int, rows: int = 4096, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)
        pool = self._rng.standard_normal((rows, dim)).astype(np.float32)
        self.pool = pool / np.linalg.norm(pool, axis=1, keepdims=True)

    def __call__(self, ids: list[list[int]], *, token_states: bool = False) -> EncodedBatch:
        need = max([len(ids), *map(len, ids)])
        if need > len(self.pool):
            self.pool = np.resize(self.pool, (need, self.pool.shape[1]))
        start = int(self._rng.integers(0, len(self.pool) - need + 1))
        embeddings = self.pool[start : start + len(ids)].copy()
        states = [self.pool[start : start + len(seq)] for seq in ids] if token_states else None
        return EncodedBatch(embeddings, [len(seq) for seq in ids], states)


def model_ceiling(enricher: DocumentEnricher, texts: list[str], settings: Settings) -> float:
    """Docs/s of tokenize + forward + heads + entities with the pipeline's batching policy:
    everything the model thread computes, without Kafka, records or ClickHouse."""
    encoder = enricher.encoder
    entities = enricher.entities
    started = time.perf_counter()
    tokenized = enricher.tokenize(texts)
    batcher: TokenBudgetBatcher[int] = TokenBudgetBatcher(
        settings.batch_max_tokens, settings.batch_max_documents, 0.0
    )
    for row, seq in enumerate(tokenized.ids):
        batcher.add(row, len(seq))
    for batch in batcher.flush():
        rows = batch.items
        batch_ids = [tokenized.ids[r] for r in rows]
        batch_texts = [texts[r] for r in rows]
        encoded = encoder.encode_ids(batch_ids, token_states=entities is not None)
        heads = HeadInput(encoded.embeddings, batch_ids, batch_texts)
        if enricher.topic is not None:
            enricher.topic.scores(heads)
        enricher.classifiers.classify(heads)
        if entities is not None:
            sub = Tokenized(
                batch_ids,
                [tokenized.offsets[r] for r in rows],
                [tokenized.word_ids[r] for r in rows],
            )
            entities.extract(batch_texts, sub, encoded)
    return len(texts) / (time.perf_counter() - started)


def heads_scenario(
    enricher: DocumentEnricher,
    texts: list[str],
    counts: list[int],
    settings: Settings,
    rounds: int = 3,
) -> tuple[dict[str, float], dict[str, float]]:
    """The model thread (forward + heads + records) with 0, 1, 3... trained heads.

    Returns docs/s per head count, and the share of model time spent in the heads (from
    the ``forward``/``heads`` timings the records carry: exact even on a noisy machine,
    where docs/s differences of a few percent are noise). The heads are linear heads with
    Banking77's 77 labels and random weights: a head's cost does not depend on what it
    learned. Configurations rotate order each round and the best round is kept.
    """
    from stream_aimass.enrich import Pending
    from stream_aimass.models.classify import ClassifierSet, TrainedClassifier
    from stream_aimass.records import Document, Source
    from stream_aimass.testing import make_head_model

    encoder = enricher.encoder
    labels = [f"intent_{i:02d}" for i in range(HEAD_LABELS)]
    ids = encoder.tokenize(texts)
    batcher: TokenBudgetBatcher[Pending] = TokenBudgetBatcher(
        settings.batch_max_tokens, settings.batch_max_documents, 0.0
    )
    tp = TopicPartition("aimass.documents", 0)
    for i, (text, seq) in enumerate(zip(texts, ids, strict=True)):
        doc = Document(f"h{i}", "bench", 0, text, Source(tp.topic, 0, i, 0))
        batcher.add(Pending(doc, seq, tp, b"", None), len(seq))
    batches = [b.items for b in batcher.flush()]
    best: dict[int, float] = {}
    forward_ms: dict[int, float] = {}
    heads_ms: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="aimass-heads-") as tmp:
        heads = [
            TrainedClassifier(
                f"head{k}",
                make_head_model(Path(tmp) / f"head{k}", encoder, labels, seed=k, name=f"head{k}"),
                encoder,
            )
            for k in range(max(counts, default=0))
        ]
        for round_ in range(rounds):
            shift = round_ % max(1, len(counts))
            for count in counts[shift:] + counts[:shift]:
                variant = DocumentEnricher(
                    encoder, None, enricher.model.name, ClassifierSet(tuple(heads[:count]))
                )
                started = time.perf_counter()
                for items in batches:
                    timings = orjson.loads(variant.enrich(items, 0.0)[0])["timings_ms"]
                    forward_ms[count] = forward_ms.get(count, 0.0) + timings["forward"]
                    heads_ms[count] = heads_ms.get(count, 0.0) + timings["heads"]
                rate = len(texts) / (time.perf_counter() - started)
                best[count] = max(best.get(count, 0.0), rate)
    rates = {str(k): round(v, 1) for k, v in sorted(best.items())}
    shares = {str(k): round(heads_ms[k] / (forward_ms[k] + heads_ms[k]), 5) for k in sorted(best)}
    return rates, shares


def entities_scenario(
    enricher: DocumentEnricher, texts: list[str], settings: Settings, rounds: int = 3
) -> tuple[dict[str, float], float]:
    """The model thread with entities off and on (mention detection + linking).

    Returns docs/s for each, and the share of the "on" model time spent in the entity stage
    (from the records' timings: exact where docs/s differences are noise).
    """
    from stream_aimass.enrich import Pending
    from stream_aimass.records import Document, Source

    if enricher.entities is None:
        return {}, 0.0
    tokenized = enricher.encoder.tokenize_with_offsets(texts)
    batcher: TokenBudgetBatcher[Pending] = TokenBudgetBatcher(
        settings.batch_max_tokens, settings.batch_max_documents, 0.0
    )
    tp = TopicPartition("aimass.documents", 0)
    for i, text in enumerate(texts):
        doc = Document(f"e{i}", "bench", 0, text, Source(tp.topic, 0, i, 0))
        item = Pending(
            doc, tokenized.ids[i], tp, b"", None, tokenized.offsets[i], tokenized.word_ids[i]
        )
        batcher.add(item, len(item.ids))
    batches = [b.items for b in batcher.flush()]
    variants = {
        "off": DocumentEnricher(enricher.encoder, enricher.topic, enricher.model.name),
        "on": DocumentEnricher(
            enricher.encoder, enricher.topic, enricher.model.name, entities=enricher.entities
        ),
    }
    best: dict[str, float] = {}
    model_ms = entities_ms = 0.0
    for round_ in range(rounds):
        order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
        for name in order:
            started = time.perf_counter()
            for items in batches:
                timings = orjson.loads(variants[name].enrich(items, 0.0)[0])["timings_ms"]
                if name == "on":
                    entities_ms += timings["entities"]
                    model_ms += timings["forward"] + timings["heads"] + timings["entities"]
            rate = len(texts) / (time.perf_counter() - started)
            best[name] = max(best.get(name, 0.0), rate)
    return {k: round(v, 1) for k, v in best.items()}, round(entities_ms / max(model_ms, 1e-9), 5)


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
    compares figures taken a few seconds apart, not minutes (shared machines drift).

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
        phase = generate_documents(max(20, int(offered * steady_s)), seed=104, tenants=(tenant,))
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
            settings, stack, pipeline, len(docs), stored
        )
    await pipeline.stop_and_wait()
    return rate, steady_rate


async def _forward_free_backlog(
    settings: Settings, stack: Stack, pipeline: Pipeline, count: int, stored: int
) -> float:
    """Docs/s of a backlog of ``count`` documents with the forward pass made free."""
    assert pipeline.enrich is not None
    encoder = pipeline.enrich.enricher.encoder
    docs = generate_documents(count, seed=106, tenants=(FORWARD_FREE_TENANT,))
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


def _recs_latency(client: Any, prefix: str) -> tuple[float, float]:
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
) -> float:
    """Docs/s of the loop people write first, one message at a time in fp32 (on the bench's
    device): consume, decode, run the model, produce the enriched record and wait for its
    ack, insert its row, commit.

    With ``enricher`` (an fp32 one) the model step is the pipeline's whole job: encoder,
    topic head, classifiers and entity stage, and the row is the pipeline's row. Without it,
    the model step is an encoder forward pass alone and nothing is produced: the loop that
    earlier versions of ``bench`` timed (``naive_forward_only_docs_per_s``).
    """
    from stream_aimass.enrich import Pending

    topic = "aimass.bench-naive" if enricher is not None else "aimass.bench-naive-forward"
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


def _quantiles(client: Any, tenants: list[str]) -> tuple[float, float, float]:
    """p50, p95 and p99 of produce (Kafka timestamp) -> ClickHouse row (insert time), ms."""
    rows = client.query(
        "SELECT quantiles(0.5, 0.95, 0.99)(d) FROM (SELECT "
        "dateDiff('millisecond', source_ts, ingested_at) AS d FROM documents FINAL "
        "WHERE tenant IN {tenants:Array(String)})",
        parameters={"tenants": tenants},
    ).result_rows
    p50, p95, p99 = rows[0][0]
    return float(p50), float(p95), float(p99)


def _latency(client: Any, tenants: list[str]) -> tuple[float, float]:
    """p50 and p99 of produce (Kafka timestamp) -> ClickHouse row (insert time), in ms."""
    p50, _, p99 = _quantiles(client, tenants)
    return p50, p99


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heads = result.get("heads_docs_per_s") or {}
    recs = result.get("recommendations")
    panels = 2 + bool(heads) + bool(recs)
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4))
    ax1, ax2 = axes[0], axes[1]
    bars_spec = [
        ("model\n(in run)", result["model_docs_per_s"], "#888888"),
        ("model\n(alone)", result.get("model_docs_per_s_standalone"), "#bbbbbb"),
        ("pipeline", result["pipeline_docs_per_s"], "#1f77b4"),
        ("naive\nloop", result["naive_docs_per_s"], "#d62728"),
        ("naive\nforward", result.get("naive_forward_only_docs_per_s"), "#ff9896"),
    ]
    shown = [(n, v, c) for n, v, c in bars_spec if v is not None]
    bars = ax1.bar([n for n, _, _ in shown], [v for _, v, _ in shown], color=[c for *_, c in shown])
    ax1.bar_label(bars, fmt="%.0f")
    ax1.set_ylabel("documents / s")
    alone = result.get("ratio_standalone")
    ax1.set_title(
        f"pipeline = {result['ratio']:.2f} × model"
        + (f" ({alone:.2f} × alone)" if alone is not None else "")
        + f", {result['speedup_vs_naive']:.1f} × naive",
        fontsize=10,
    )
    sweep = result.get("load_sweep") or []
    if len(sweep) > 1:
        # Latency and achieved throughput against the offered load.
        offered = [p["offered_docs_per_s"] for p in sweep]
        for key, color in (("p50_ms", "#2ca02c"), ("p95_ms", "#ff7f0e"), ("p99_ms", "#d62728")):
            ax2.plot(offered, [p[key] for p in sweep], "o-", color=color, label=key[:3])
        ax2.set_xlabel("offered load, docs/s")
        ax2.set_ylabel("ms, produce → ClickHouse row")
        twin = ax2.twinx()
        twin.plot(offered, [p["achieved_docs_per_s"] for p in sweep], "s--", color="#7f7f7f")
        twin.set_ylabel("achieved docs/s (dashed)")
        ax2.legend(loc="upper left")
        ax2.set_title(f"steady streams; max (backlog) {result['pipeline_docs_per_s']:.0f} docs/s")
    else:
        bars = ax2.bar(["p50", "p99"], [result["p50_ms"], result["p99_ms"]], color="#2ca02c")
        ax2.bar_label(bars, fmt="%.0f")
        ax2.set_ylabel("ms")
        ax2.set_title(
            f"produce → ClickHouse row at {result['latency_load_docs_per_s']:.0f} docs/s "
            "(half the max)"
        )
    if heads:
        # The share of model time is exact; docs/s between configurations is mostly noise.
        ax3 = axes[2]
        shares = result.get("heads_share_of_model_time") or {}
        keys = list(heads)
        bars = ax3.bar(
            [f"{k} heads" for k in keys], [100 * shares.get(k, 0.0) for k in keys], color="#9467bd"
        )
        ax3.bar_label(
            bars, labels=[f"{100 * shares.get(k, 0.0):.1f}% · {heads[k]:.0f}/s" for k in keys]
        )
        ax3.set_ylabel("% of model time in the heads")
        ax3.set_ylim(0, max(5.0, 1.3 * max((100 * v for v in shares.values()), default=0.0)))
        ax3.set_title(f"classifier heads ({HEAD_LABELS} labels) on the shared pass")
    if recs:
        ax4 = axes[-1]
        bars = ax4.bar(["p50", "p99"], [recs["p50_ms"], recs["p99_ms"]], color="#8c564b")
        ax4.bar_label(bars, fmt="%.0f")
        ax4.set_ylabel("ms, event → recommendation")
        ax4.set_title(
            f"recommendations: {recs['events_per_s']:.0f} events/s, latency at "
            f"{recs['latency_load_events_per_s']:.0f}/s\ntime: scoring "
            f"{100 * recs['scoring_share']:.0f}%, profiles {100 * recs['profile_share']:.0f}%, "
            f"produce {100 * recs['produce_share']:.0f}%,\nKafka/Faust/sink "
            f"{100 * recs['kafka_faust_share']:.0f}%",
            fontsize=9,
        )
    fig.suptitle(
        f"stream-aimass bench: {result['documents']} docs, {result['model']} "
        f"{result['device']}/{result['dtype']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_bench(
    settings: Settings,
    n_documents: int,
    n_naive: int,
    out_dir: Path,
    *,
    console: Console,
    steady_s: float = 10.0,
    heads: list[int] | None = None,
    recs_events: int = 5000,
    loads: list[float] | None = None,
) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aimass-bench-") as tmp:
        settings = settings.model_copy(
            update={"data_dir": Path(tmp), "kafka_bootstrap": "embedded", "clickhouse_dsn": ""}
        )
        docs = generate_documents(n_documents, seed=101)
        warmup = generate_documents(WARMUP_DOCS, seed=102, tenants=(WARMUP_TENANT,))
        with console.status("loading the model"):
            enricher = DocumentEnricher.from_settings(settings)
        texts = [str(d["text"]) for d in docs]
        with console.status("model ceiling: tokenize + forward"):
            model_ceiling(enricher, texts[: min(256, len(texts))], settings)  # warm caches
            standalone_rate = model_ceiling(enricher, texts, settings)
        with console.status("entities: model thread with NER + linking off and on"):
            entity_rates, entity_share = entities_scenario(enricher, texts[:HEADS_DOCS], settings)
        heads_rates: dict[str, float] = {}
        heads_shares: dict[str, float] = {}
        if heads:
            with console.status(f"heads: model thread with {heads} classifier heads"):
                heads_rates, heads_shares = heads_scenario(
                    enricher, texts[:HEADS_DOCS], heads, settings
                )
        stack = Stack.start(settings)
        try:
            client = open_clickhouse(settings)
            pipeline = Pipeline(
                settings, stack.bootstrap, "all", enricher=enricher, clickhouse=client
            )
            recs: dict[str, Any] = {}
            with console.status(
                f"pipeline: {n_documents} documents through Kafka and ClickHouse"
                + (f", then {recs_events} user events" if recs_events else "")
            ):
                batch_sizes: dict[str, float] = {}
                sweep: list[dict[str, Any]] = []
                ceilings: list[float] = []
                forward_free: dict[str, float] = {}
                pipeline_rate, steady_rate = asyncio.run(
                    pipeline_run(
                        settings, stack, pipeline, warmup, docs, steady_s, batch_sizes,
                        recs_events=recs_events, recs=recs, loads=loads, sweep=sweep,
                        ceiling=functools.partial(model_ceiling, enricher, texts, settings),
                        ceilings=ceilings, forward_free=forward_free,
                    )
                )  # fmt: skip
            for point in sweep:
                q50, q95, q99 = _quantiles(client, [point.pop("tenant")])
                point.update({"p50_ms": q50, "p95_ms": q95, "p99_ms": q99})
            if recs:
                recs["p50_ms"], recs["p99_ms"] = _recs_latency(client, recs.pop("steady_prefix"))
            backlog_tenants = sorted({str(d["tenant"]) for d in docs})
            backlog_p50, backlog_p99 = _latency(client, backlog_tenants)
            p50, p95, p99 = _quantiles(client, [STEADY_TENANT])
            naive_docs = generate_documents(min(n_naive, n_documents), seed=103)
            with console.status(f"naive loop: {len(naive_docs)} documents one by one, fp32"):
                naive_enricher = DocumentEnricher.from_settings(
                    settings.model_copy(update={"dtype": "fp32"})
                )
                naive_rate = asyncio.run(
                    naive_run(settings, stack.bootstrap, client, naive_docs, naive_enricher)
                )
                naive_forward_rate = asyncio.run(
                    naive_run(
                        settings, stack.bootstrap, client,
                        generate_documents(len(naive_docs), seed=105),
                    )
                )  # fmt: skip
        finally:
            stack.close()
    encoder = enricher.encoder
    model_rate = sum(ceilings) / len(ceilings)
    result: dict[str, Any] = {
        "documents": n_documents,
        "naive_documents": min(n_naive, n_documents),
        "model": encoder.name,
        "model_version": encoder.version,
        "device": encoder.device,
        "dtype": encoder.dtype,
        "batch_max_tokens": settings.batch_max_tokens,
        "batch_max_documents": settings.batch_max_documents,
        "model_docs_per_s": round(model_rate, 1),
        "model_docs_per_s_before_after": [round(c, 1) for c in ceilings],
        "model_docs_per_s_standalone": round(standalone_rate, 1),
        "ratio_standalone": round(pipeline_rate / standalone_rate, 3),
        "pipeline_docs_per_s": round(pipeline_rate, 1),
        "naive_docs_per_s": round(naive_rate, 2),
        "naive_forward_only_docs_per_s": round(naive_forward_rate, 2),
        "ratio": round(pipeline_rate / model_rate, 3),
        "speedup_vs_naive": round(pipeline_rate / naive_rate, 2),
        "p50_ms": round(p50, 1),
        "p95_ms": round(p95, 1),
        "p99_ms": round(p99, 1),
        "latency_load_docs_per_s": round(steady_rate, 1),
        "load_sweep": sweep,
        "backlog_p50_ms": round(backlog_p50, 1),
        "backlog_p99_ms": round(backlog_p99, 1),
        "batch_adaptive": settings.batch_adaptive,
        "backlog_mean_batch_documents": batch_sizes.get("backlog", 0.0),
        "steady_mean_batch_documents": batch_sizes.get("steady", 0.0),
        "forward_free_docs_per_s": round(forward_free["docs_per_s"], 1),
    }
    if entity_rates:
        result["entities_docs_per_s"] = entity_rates
        result["entities_share_of_model_time"] = entity_share
        result["entities_detector"] = enricher.entities.describe() if enricher.entities else None
    if recs:
        result["recommendations"] = recs
    if heads_rates:
        result["heads_docs_per_s"] = heads_rates
        base = heads_rates.get("0") or next(iter(heads_rates.values()))
        result["heads_relative"] = {k: round(v / base, 3) for k, v in heads_rates.items()}
        result["heads_share_of_model_time"] = heads_shares
    (out_dir / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out_dir / "bench.png")
    return result
