"""``stream-aimass demo``: the whole pipeline on the embedded stack over a generated stream."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stream_aimass.clickhouse.queries import ALL_TIME, run_named_query
from stream_aimass.enrich.enricher import DocumentEnricher
from stream_aimass.kafka.clients import make_producer
from stream_aimass.pipeline import Pipeline, Stack, open_clickhouse
from stream_aimass.settings import Settings
from stream_aimass.tools.corpus import bad_messages, generate_documents, generate_events

DEMO_QUERIES = (
    "documents-count", "category-mix", "top-entities", "events-by-type", "popular-items",
    "recommendation-ctr", "dead-letters", "usage",
)  # fmt: skip
STALL_TIMEOUT_S = 120.0


class DemoStalled(RuntimeError):
    """The pipeline made no progress for too long."""


async def _produce(
    settings: Settings,
    pipeline: Pipeline,
    docs: list[dict[str, Any]],
    events: list[dict[str, Any]],
    bootstrap: str,
) -> None:
    producer = make_producer(settings, bootstrap)
    await producer.start()
    try:
        bad = bad_messages()
        # Bad messages go in among the good ones, as they would in a real stream.
        stride = max(1, len(docs) // (len(bad) + 1))
        for i, doc in enumerate(docs):
            key = f"{doc['tenant']}:{doc['id']}".encode()
            await producer.send(settings.topic_documents, orjson.dumps(doc), key=key)
            if i % stride == stride - 1 and bad:
                await producer.send(settings.topic_documents, bad.pop()[0])
        for raw, _ in bad:
            await producer.send(settings.topic_documents, raw)
        await producer.flush()
        # Users read what was published: events start once the items are recommendable.
        recs = pipeline.recs
        while recs is not None and len(recs.index) < len(docs):
            await asyncio.sleep(0.1)
        for event in events:
            key = f"{event['tenant']}:{event['user_id']}".encode()
            await producer.send(settings.topic_events, orjson.dumps(event), key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def _run(
    settings: Settings,
    stack: Stack,
    pipeline: Pipeline,
    docs: list[dict[str, Any]],
    events: list[dict[str, Any]],
    console: Console,
    quiet: bool,
) -> float:
    expected_docs, expected_dead = len(docs), len(bad_messages())
    expected_events = len(events)
    await pipeline.start()
    assert pipeline.sink is not None
    sink = pipeline.sink
    started = time.perf_counter()
    producing = asyncio.create_task(_produce(settings, pipeline, docs, events, stack.bootstrap))
    total = expected_docs + expected_dead + expected_events
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    last_progress, last_count = time.monotonic(), -1
    with Progress(*columns, console=console, disable=quiet, transient=False) as progress:
        task = progress.add_task("documents and events stored", total=total)
        while True:
            count = sum(map(sink.stored, ("documents", "dead_letters", "events")))
            progress.update(task, completed=min(count, total))
            if count >= total and _recommendations_stored(pipeline, expected_events):
                break
            if count != last_count:
                last_progress, last_count = time.monotonic(), count
            elif time.monotonic() - last_progress > STALL_TIMEOUT_S:
                raise DemoStalled(f"no progress for {STALL_TIMEOUT_S:.0f} s at {count}/{total}")
            if producing.done() and producing.exception():
                raise producing.exception()  # type: ignore[misc]
            await asyncio.sleep(0.1)
    elapsed = time.perf_counter() - started
    await producing
    await pipeline.stop_and_wait()
    return elapsed


def _recommendations_stored(pipeline: Pipeline, events: int) -> bool:
    """Every event reached a profile and every recommendation made is in ClickHouse."""
    if pipeline.recs is None or pipeline.sink is None:
        return True
    recs = pipeline.recs
    return (
        recs.applied >= events
        and recs.idle
        and pipeline.sink.stored("recommendations") >= (recs.published)
    )


def _example_recommendation(client: Any) -> dict[str, Any] | None:
    """The most recent recommendation of the most active user, with item titles."""
    rows = client.query(
        """
        SELECT r.tenant, r.user_id, r.trigger_event_id, r.cold_start, r.item_ids, r.scores
        FROM recommendations AS r FINAL
        ORDER BY r.event_ts DESC
        LIMIT 1 BY r.tenant
        LIMIT 1
        """
    ).result_rows
    if not rows:
        return None
    tenant, user_id, trigger, cold_start, item_ids, scores = rows[0]
    titles = dict(
        client.query(
            "SELECT item_id, title FROM items FINAL WHERE tenant = {t:String} "
            "AND item_id IN {ids:Array(String)}",
            parameters={"t": tenant, "ids": list(item_ids)},
        ).result_rows
    )
    return {
        "tenant": tenant,
        "user_id": user_id,
        "trigger_event_id": trigger,
        "cold_start": bool(cold_start),
        "items": [
            {"item_id": i, "score": round(float(sc), 4), "title": titles.get(i, "")}
            for i, sc in zip(item_ids, scores, strict=True)
        ],
    }


def run_demo(
    settings: Settings,
    n_documents: int,
    n_events: int,
    *,
    seed: int = 7,
    console: Console,
    quiet: bool = False,
) -> dict[str, Any]:
    # The demo serves no HTTP; should anything it starts ever do, it is open (no API keys).
    settings = settings.model_copy(update={"api_auth_enabled": False})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with console.status("starting the embedded broker and ClickHouse", spinner="dots"):
        stack = Stack.start(settings)
        client = open_clickhouse(settings)
    try:
        with console.status("loading the encoder and embedding the labels", spinner="dots"):
            enricher = DocumentEnricher.from_settings(settings)
        pipeline = Pipeline(settings, stack.bootstrap, "all", enricher=enricher, clickhouse=client)
        docs = generate_documents(n_documents, seed=seed)
        events = generate_events(docs, n_events, seed=seed + 1) if n_events else []
        elapsed = asyncio.run(_run(settings, stack, pipeline, docs, events, console, quiet))
    finally:
        stack.close()
    hints = {d["id"]: d["meta"]["category_hint"] for d in docs}  # type: ignore[index]
    rows = client.query(
        "SELECT doc_id, top_category FROM documents FINAL WHERE doc_id IN {ids:Array(String)}",
        parameters={"ids": list(hints)},
    ).result_rows
    agree = sum(1 for doc_id, top in rows if hints.get(doc_id) == top)
    assert pipeline.sink is not None and pipeline.enrich is not None
    queries = {}
    for name in DEMO_QUERIES:
        # Every tenant, all time; each query binds only what it uses.
        everything = {"tenant": "", "from": ALL_TIME[0], "to": ALL_TIME[1]}
        result = run_named_query(client, name, everything)
        queries[name] = {"columns": result.columns, "rows": result.rows}
    return {
        "documents_produced": n_documents,
        "documents_enriched": pipeline.sink.stored("documents"),
        "dead_letters": pipeline.sink.stored("dead_letters"),
        "events_produced": len(events),
        "events_stored": pipeline.sink.stored("events"),
        "recommendations_stored": pipeline.sink.stored("recommendations"),
        "items_indexed": len(pipeline.recs.index) if pipeline.recs is not None else 0,
        "example_recommendation": _example_recommendation(client),
        "seconds": round(elapsed, 3),
        "docs_per_s": round(n_documents / elapsed, 1),
        "zero_shot_agreement": round(agree / max(1, len(rows)), 4),
        "model": enricher.encoder.describe(),
        "data_dir": str(settings.data_dir),
        "queries": queries,
    }
