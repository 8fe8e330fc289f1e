"""Faults on the embedded stack, in one process: ClickHouse outages, Kafka produce failures,
model errors. Each test injects the fault around the real components (chdb underneath an
outage switch, librdkafka's mock broker refusing requests or going down, the real enricher
with a poison trigger) and checks that nothing is lost and nothing is stored twice.

Each prints one ``RELIABILITY <name>:`` line with its figures (``pytest -s``). CI counts are
small; ``pytest --long`` runs the full counts and longer outages.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
import pytest
import torch
from clickhouse_connect.driver.exceptions import OperationalError

from stream_aimass.enrich.enricher import DocumentEnricher, Enriched, Pending
from stream_aimass.kafka.clients import group_lag
from stream_aimass.kafka.embedded import API_PRODUCE, ERR_TOPIC_AUTHORIZATION_FAILED
from stream_aimass.models.encoder import Encoder
from stream_aimass.pipeline import Pipeline, Stack, open_clickhouse
from stream_aimass.settings import Settings
from stream_aimass.sink.service import SinkService
from stream_aimass.testing import free_port, produce_async
from stream_aimass.tools.corpus import bad_messages, generate_documents, generate_events

pytestmark = pytest.mark.integration


# -- fault injection around the real components -----------------------------------------


class OutageClient:
    """The real ClickHouse client behind an outage switch: while ``down``, every insert fails
    the way clickhouse-connect fails on a refused connection; everything else passes."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.down = False
        self.refused = 0

    def insert(self, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            self.refused += 1
            raise OperationalError(
                "Error HTTPConnectionPool(host='clickhouse', port=8123): Max retries exceeded "
                "(Caused by NewConnectionError: [Errno 111] Connection refused) (injected)"
            )
        return self.client.insert(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


class FaultyEnricher(DocumentEnricher):
    """The real enricher (tiny encoder) with injected faults: a batch holding a document
    whose text contains a poison marker raises that marker's error before the model runs
    (like an OOM only that input triggers); ``delay_s`` slows every batch so that a stream
    is still flowing when a broker fault lands."""

    POISON: ClassVar[dict[str, type[Exception]]] = {
        "POISON-OOM": torch.OutOfMemoryError,
        "POISON-RT": RuntimeError,
    }

    def __init__(self, encoder: Encoder, delay_s: float = 0.0) -> None:
        super().__init__(encoder, None, "tiny")
        self.delay_s = delay_s
        self.failed_calls = 0

    def run(
        self, items: list[Pending], queued_ms: float, item_vectors: bool = True
    ) -> list[Enriched]:
        if self.delay_s:
            time.sleep(self.delay_s)
        for marker, error in self.POISON.items():
            if any(marker in p.document.text for p in items):
                self.failed_calls += 1
                raise error(f"{marker}: model failed on this batch (injected)")
        return super().run(items, queued_ms, item_vectors)


# -- helpers ------------------------------------------------------------------------------


@dataclass
class Counts:
    documents: int
    events: int
    dead: int


def fault_settings(settings: Settings, **update: Any) -> Settings:
    base: dict[str, Any] = {
        "recs_enabled": False,  # the document path and the sink are under test here
        "entities_enabled": False,
        "batch_max_documents": 16,
        "sink_batch_rows": 50,
        "sink_retry_max_s": 1.0,
        "produce_retry_max_s": 1.0,
    }
    return settings.model_copy(update={**base, **update})


async def produce(bootstrap: str, topic: str, values: list[bytes], keys: list[Any]) -> None:
    """Produce from inside the test's event loop (the pipeline runs in the same loop)."""
    await produce_async(bootstrap, topic, values, keys)


async def produce_documents(
    bootstrap: str, docs: list[dict[str, Any]], bad: list[bytes] | None = None
) -> None:
    bad = bad or []
    values = [orjson.dumps(d) for d in docs] + bad
    keys: list[Any] = [f"{d['tenant']}:{d['id']}".encode() for d in docs] + [None] * len(bad)
    await produce(bootstrap, "aimass.documents", values, keys)


async def produce_events(bootstrap: str, events: list[dict[str, Any]]) -> None:
    values = [orjson.dumps(e) for e in events]
    keys: list[Any] = [f"{e['tenant']}:{e['user_id']}".encode() for e in events]
    await produce(bootstrap, "aimass.events", values, keys)


async def until(
    condition: Callable[[], bool],
    what: Callable[[], str],
    pipeline: Pipeline | None = None,
    timeout: float = 120,
    every: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Poll ``condition``; fail on timeout or when a pipeline service died meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        if pipeline is not None:
            dead = [t for t in pipeline._tasks if t.done()]
            assert not dead, f"a service stopped: {[t.exception() for t in dead]!r}"
        assert time.monotonic() < deadline, f"timed out waiting: {what()}"
        if every is not None:
            await every()
        await asyncio.sleep(0.05)


async def sink_lag(settings: Settings, bootstrap: str) -> int:
    s = settings
    topics = [s.topic_enriched, s.topic_dlq, s.topic_events]
    return sum((await group_lag(s, bootstrap, s.sink_group, topics)).values())


async def until_drained(settings: Settings, bootstrap: str, pipeline: Pipeline) -> None:
    """Until both groups have committed everything: ``stored`` counts re-delivered rows too,
    so reaching the expected counts alone does not mean every record has been handled."""
    s = settings
    deadline = time.monotonic() + 120
    while True:
        enrich = await group_lag(s, bootstrap, s.enrich_group, [s.topic_documents])
        lag = sum(enrich.values()) + await sink_lag(s, bootstrap)
        if lag == 0:
            return
        dead = [t for t in pipeline._tasks if t.done()]
        assert not dead, f"a service stopped: {[t.exception() for t in dead]!r}"
        assert time.monotonic() < deadline, f"not drained: {lag} records behind"
        await asyncio.sleep(0.5)


def stored(sink: SinkService, wanted: Counts) -> bool:
    return (
        sink.stored("documents") >= wanted.documents
        and sink.stored("events") >= wanted.events
        and sink.stored("dead_letters") >= wanted.dead
    )


def stored_text(sink: SinkService, wanted: Counts) -> str:
    have = {t: sink.stored(t) for t in ("documents", "events", "dead_letters")}
    return f"stored {have} of {wanted}"


def one_each(client: Any, table: str, key: str, expected: set[str]) -> tuple[int, int]:
    """Assert ``table FINAL`` holds each of ``expected`` exactly once; (final, raw) counts."""
    rows = client.query(f"SELECT {key}, count() FROM {table} FINAL GROUP BY {key}").result_rows
    counts = {r[0]: r[1] for r in rows}
    missing, extra = expected - set(counts), set(counts) - expected
    assert not missing, f"{table}: {len(missing)} lost, e.g. {sorted(missing)[:5]}"
    assert not extra, f"{table}: unexpected {sorted(extra)[:5]}"
    twice = {k: n for k, n in counts.items() if n != 1}
    assert not twice, f"{table}: stored more than once under FINAL: {twice}"
    raw = client.query(f"SELECT count() FROM {table}").result_rows[0][0]
    return len(counts), int(raw)


def dead_letters(client: Any) -> tuple[int, int]:
    """Dead letters under FINAL: (rows, distinct source records)."""
    sql = "SELECT count(), uniqExact(source_topic, source_partition, source_offset) FROM {}"
    rows = client.query(sql.format("dead_letters FINAL")).result_rows
    return int(rows[0][0]), int(rows[0][1])


def poisoned(docs: list[dict[str, Any]], every: int) -> dict[str, str]:
    """Turn every ``every``-th document into a poison one; {doc id: marker}."""
    markers = list(FaultyEnricher.POISON)
    out = {}
    for n, doc in enumerate(docs[::every]):
        marker = markers[n % len(markers)]
        doc["text"] = f"{marker} {doc['text']}"
        out[str(doc["id"])] = marker
    return out


# -- ClickHouse outage ---------------------------------------------------------------------


def test_clickhouse_outage_pauses_the_sink_and_loses_nothing(
    settings: Settings, tiny_encoder: Encoder, long_mode: bool
) -> None:
    """Inserts fail for a while: the sink retries with backoff, stops consuming (lag grows,
    buffers stay bounded, not ready), then stores every record exactly once."""
    before, during, n_events = (500, 3000, 3000) if long_mode else (60, 300, 200)
    outage_s = 20.0 if long_mode else 3.0
    settings = fault_settings(settings)
    limit = settings.sink_batch_rows
    docs = generate_documents(before + during, seed=41)
    first, second = docs[:before], docs[before:]
    events = generate_events(docs, n_events, seed=42)
    bad = [raw for raw, _ in bad_messages()]
    stack = Stack.start(settings)
    client = OutageClient(open_clickhouse(settings))
    enricher = FaultyEnricher(tiny_encoder)
    pipeline = Pipeline(settings, stack.bootstrap, "all", enricher=enricher, clickhouse=client)
    assert pipeline.sink is not None and pipeline.enrich is not None
    sink, enrich = pipeline.sink, pipeline.enrich
    figures: dict[str, Any] = {}

    async def scenario() -> None:
        await produce_documents(stack.bootstrap, first)
        await pipeline.start()
        healthy = Counts(before, 0, 0)
        await until(lambda: stored(sink, healthy), lambda: stored_text(sink, healthy), pipeline)

        client.down = True
        t_down = time.monotonic()
        at_outage = {t: sink.stored(t) for t in ("documents", "events", "dead_letters")}
        lag_start = await sink_lag(settings, stack.bootstrap)
        await produce_documents(stack.bootstrap, second, bad)
        await produce_events(stack.bootstrap, events)
        await until(lambda: sink.writer.failures > 0, lambda: "no failed insert", pipeline)
        peak: dict[str, int] = {}
        readiness: list[bool] = []

        async def sample() -> None:
            for table, rows in sink.buffered_rows().items():
                peak[table] = max(peak.get(table, 0), rows)
            readiness.append(sink.ready)

        def enriched() -> float:
            return enrich.metrics.value("aimass_records_total", role="enrich", outcome="enriched")

        # The enrich role is not held up: it enriches everything meanwhile.
        await until(
            lambda: enriched() >= before + during and time.monotonic() - t_down >= outage_s,
            lambda: f"enriched {enriched()} of {before + during} during the outage",
            pipeline,
            every=sample,
        )
        lag_end = await sink_lag(settings, stack.bootstrap)
        # Nothing was stored while ClickHouse was away, and the backlog waited in Kafka.
        assert {t: sink.stored(t) for t in at_outage} == at_outage
        assert lag_end - lag_start >= during + n_events, (lag_start, lag_end)
        # Bounded: at most one batch plus one fetch per table, far below what arrived.
        assert all(rows < 2 * limit for rows in peak.values()), peak
        assert sum(peak.values()) < (during + n_events) / 2, peak
        assert readiness and not any(readiness), "the sink reported ready while failing"
        client.down = False
        outage = time.monotonic() - t_down

        wanted = Counts(before + during, n_events, len(bad))
        await until(lambda: stored(sink, wanted), lambda: stored_text(sink, wanted), pipeline)
        await until_drained(settings, stack.bootstrap, pipeline)
        assert sink.ready
        await pipeline.stop_and_wait()
        figures.update(outage_s=outage, lag=lag_end, peak=sum(peak.values()))

    try:
        asyncio.run(scenario())
    finally:
        stack.close()

    docs_final, docs_raw = one_each(client, "documents", "doc_id", {d["id"] for d in docs})
    one_each(client, "events", "event_id", {e["event_id"] for e in events})
    assert dead_letters(client) == (len(bad), len(bad))
    failures = pipeline.metrics.value("aimass_insert_failures_total")
    assert failures == sink.writer.failures == client.refused > 0
    print(
        f"\nRELIABILITY sink-outage: documents={len(docs)} events={n_events} "
        f"dead_letters={len(bad)} outage_s={figures['outage_s']:.1f} "
        f"insert_failures={failures:.0f} lag_peak={figures['lag']} "
        f"buffered_peak={figures['peak']} lost=0 "
        f"duplicated_final=0 duplicate_rows_before_merge={docs_raw - docs_final}"
    )


def test_a_sink_started_before_its_clickhouse_server_waits_for_it(
    settings: Settings, tiny_encoder: Encoder, long_mode: bool
) -> None:
    """The sink's ClickHouse is a server on a closed port when the worker starts: the real
    driver refuses, the sink stays up and not ready, retries connecting with backoff, and
    holds no partitions; once the server is there (here: chdb) it migrates and stores all.
    """
    n = 1000 if long_mode else 100
    down_s = 15.0 if long_mode else 3.0
    settings = fault_settings(settings)
    closed = settings.model_copy(update={"clickhouse_dsn": f"http://127.0.0.1:{free_port()}"})
    server_up = False

    def connect() -> Any:
        return open_clickhouse(settings if server_up else closed)

    docs = generate_documents(n, seed=43)
    stack = Stack.start(settings)
    pipeline = Pipeline(settings, stack.bootstrap, "enrich", enricher=FaultyEnricher(tiny_encoder))
    sink = SinkService(settings, stack.bootstrap, connect=connect)
    figures: dict[str, Any] = {}

    async def scenario() -> None:
        nonlocal server_up
        await produce_documents(stack.bootstrap, docs)
        await pipeline.start()
        sink_task = asyncio.create_task(sink.run())
        t0 = time.monotonic()
        readiness: list[bool] = []

        async def sample() -> None:
            readiness.append(sink.ready)

        enrich = pipeline.enrich
        assert enrich is not None

        def enriched() -> float:
            return enrich.metrics.value("aimass_records_total", role="enrich", outcome="enriched")

        await until(
            lambda: time.monotonic() - t0 >= down_s and enriched() >= n,
            lambda: f"enriched {enriched()} of {n}",
            pipeline,
            every=sample,
        )
        assert not sink_task.done(), "the sink died while its ClickHouse was down"
        assert not any(readiness) and sink.consumer is None
        assert sink.connect_failures >= 2
        lag = await sink_lag(settings, stack.bootstrap)
        assert lag == n  # everything enriched waits in Kafka
        server_up = True
        wanted = Counts(n, 0, 0)
        await until(lambda: stored(sink, wanted), lambda: stored_text(sink, wanted), pipeline)
        await until_drained(settings, stack.bootstrap, pipeline)
        assert sink.ready
        await pipeline.stop_and_wait()
        sink.stop()
        await sink_task
        figures.update(lag=lag, down=time.monotonic() - t0)

    try:
        asyncio.run(scenario())
    finally:
        stack.close()
    client = open_clickhouse(settings)
    one_each(client, "documents", "doc_id", {d["id"] for d in docs})
    print(
        f"\nRELIABILITY sink-server-down-at-start: documents={n} down_s={down_s:.1f} "
        f"connect_failures={sink.connect_failures} lag_while_down={figures['lag']} lost=0 "
        "duplicated=0"
    )


# -- Kafka produce failures ----------------------------------------------------------------


def test_kafka_produce_failures_are_retried_and_lose_nothing(
    settings: Settings, tiny_encoder: Encoder, long_mode: bool
) -> None:
    """The broker refuses Produce requests (an error aiokafka does not retry) and later goes
    down for a while, as documents flow: the enrich role retries, keeps running, stays
    bounded, and every document ends up in ClickHouse exactly once."""
    n1, n2 = (3000, 3000) if long_mode else (300, 300)
    refusals = 200 if long_mode else 20
    # Long: down past aiokafka's own delivery timeout (request_timeout_ms, 40 s), so that
    # sends fail to the enrich role and its retries carry them; and past the group session.
    down_s = 50.0 if long_mode else 3.0
    max_pending = 128
    settings = fault_settings(
        settings, batch_max_documents=8, max_pending_documents=max_pending, fetch_max_records=64
    )
    docs = generate_documents(n1 + n2, seed=44)
    bad = [raw for raw, _ in bad_messages()]
    stack = Stack.start(settings)
    broker = stack.broker
    assert broker is not None
    client = open_clickhouse(settings)
    # Slow batches: the stream is still flowing when each fault lands.
    enricher = FaultyEnricher(tiny_encoder, delay_s=0.02)
    pipeline = Pipeline(settings, stack.bootstrap, "all", enricher=enricher, clickhouse=client)
    assert pipeline.sink is not None and pipeline.enrich is not None
    sink, enrich = pipeline.sink, pipeline.enrich
    metrics = pipeline.metrics
    figures: dict[str, Any] = {}

    def retries() -> float:
        return sum(
            metrics.value("aimass_produce_retries_total", topic=t)
            for t in (settings.topic_enriched, settings.topic_dlq)
        )

    async def scenario() -> None:
        peak = 0

        async def sample() -> None:
            nonlocal peak
            peak = max(peak, enrich.tracker.pending())

        await produce_documents(stack.bootstrap, docs[:n1], bad)
        await pipeline.start()
        some = Counts(n1 // 10, 0, 0)
        await until(lambda: stored(sink, some), lambda: stored_text(sink, some), pipeline)

        # 1. Produce requests refused (TOPIC_AUTHORIZATION_FAILED: the client gives up).
        broker.fail_requests(API_PRODUCE, [ERR_TOPIC_AUTHORIZATION_FAILED] * refusals)
        await until(lambda: retries() >= refusals, lambda: f"{retries()} retries", pipeline)
        first = Counts(n1, 0, len(bad))
        await until(
            lambda: stored(sink, first), lambda: stored_text(sink, first), pipeline, every=sample
        )
        broker.clear_request_errors(API_PRODUCE)  # none left for the test's own producer
        after_refusals = retries()

        # 2. The broker goes down mid-stream for a while, then comes back.
        await produce_documents(stack.bootstrap, docs[n1:])
        later = Counts(n1 + n2 // 10, 0, len(bad))
        await until(lambda: stored(sink, later), lambda: stored_text(sink, later), pipeline)
        broker.set_down()
        t_down = time.monotonic()
        stored_at_down = sink.stored("documents")
        assert stored_at_down < n1 + n2  # the fault lands mid-stream
        await until(lambda: time.monotonic() - t_down >= down_s, lambda: "", pipeline, every=sample)
        broker.set_up()
        wanted = Counts(n1 + n2, 0, len(bad))
        await until(
            lambda: stored(sink, wanted),
            lambda: stored_text(sink, wanted),
            pipeline,
            timeout=180,
            every=sample,
        )
        await until_drained(settings, stack.bootstrap, pipeline)
        await pipeline.stop_and_wait()
        figures.update(
            peak=peak,
            refusal_retries=after_refusals,
            down_retries=retries(),
            stored_at_down=stored_at_down,
        )

    try:
        asyncio.run(scenario())
    finally:
        stack.close()

    docs_final, docs_raw = one_each(client, "documents", "doc_id", {d["id"] for d in docs})
    assert dead_letters(client) == (len(bad), len(bad))
    assert figures["refusal_retries"] >= refusals
    # Backpressure: decoded-but-unacknowledged documents stayed bounded (one fetch over).
    assert figures["peak"] <= max_pending + settings.fetch_max_records
    stored_docs = sink.stored("documents")
    print(
        f"\nRELIABILITY kafka-produce-faults: documents={len(docs)} dead_letters={len(bad)} "
        f"produce_refusals_injected={refusals} broker_down_s={down_s:.1f} "
        f"produce_retries={figures['down_retries']:.0f} "
        f"(refusals {figures['refusal_retries']:.0f}) "
        f"stored_when_down={figures['stored_at_down']} pending_peak={figures['peak']} lost=0 "
        f"redelivered_rows={stored_docs - len(docs)} duplicated_final=0 "
        f"duplicate_rows_before_merge={docs_raw - docs_final}"
    )


# -- model faults --------------------------------------------------------------------------


def test_poison_documents_become_dead_letters_and_the_rest_flows(
    settings: Settings, tiny_encoder: Encoder, long_mode: bool
) -> None:
    """The model fails (OOM, runtime error) on any batch holding a poison document: the
    batch is split, the poison documents are dead letters with the reason, every other
    document is stored, and the worker keeps going."""
    n = 5000 if long_mode else 300
    every = 100 if long_mode else 50
    settings = fault_settings(settings, batch_max_documents=32)
    docs = generate_documents(n, seed=45)
    poison = poisoned(docs, every)
    stack = Stack.start(settings)
    client = open_clickhouse(settings)
    enricher = FaultyEnricher(tiny_encoder)
    pipeline = Pipeline(settings, stack.bootstrap, "all", enricher=enricher, clickhouse=client)
    assert pipeline.sink is not None
    sink = pipeline.sink

    async def scenario() -> None:
        await produce_documents(stack.bootstrap, docs)
        await pipeline.start()
        wanted = Counts(n - len(poison), 0, len(poison))
        await until(lambda: stored(sink, wanted), lambda: stored_text(sink, wanted), pipeline)
        await until_drained(settings, stack.bootstrap, pipeline)
        await pipeline.stop_and_wait()

    try:
        asyncio.run(scenario())
    finally:
        stack.close()

    good = {d["id"] for d in docs} - set(poison)
    one_each(client, "documents", "doc_id", good)
    rows = client.query(
        "SELECT stage, error_type, reason, raw_b64 FROM dead_letters FINAL"
    ).result_rows
    assert len(rows) == len(poison)
    seen = {}
    for stage, error_type, reason, raw_b64 in rows:
        doc = orjson.loads(base64.b64decode(raw_b64))
        marker = poison[doc["id"]]
        assert stage == "enrich"
        assert error_type == FaultyEnricher.POISON[marker].__name__
        assert error_type in reason and marker in reason
        seen[doc["id"]] = error_type
    assert set(seen) == set(poison)
    assert {"OutOfMemoryError", "RuntimeError"} <= set(seen.values()) or len(poison) < 2
    m = pipeline.metrics
    assert m.value("aimass_dead_letters_total", stage="enrich") == len(poison)
    errors = sum(m.value("aimass_model_errors_total", error_type=t) for t in set(seen.values()))
    assert errors == enricher.failed_calls
    batches = m.value("aimass_batch_documents_count")
    print(
        f"\nRELIABILITY model-faults: documents={n} poison={len(poison)} "
        f"model_batches={batches:.0f} failed_model_calls={enricher.failed_calls} "
        f"dead_letters={len(rows)} lost=0 duplicated=0"
    )


@pytest.mark.slow
def test_a_sink_worker_whose_clickhouse_server_is_down_stays_up_and_not_ready(
    tmp_path: Any, broker_process: Any
) -> None:
    import json
    import urllib.error
    import urllib.request

    from stream_aimass.testing import start_worker

    port = free_port()  # nothing listens there
    worker = start_worker("sink", broker_process.bootstrap, tmp_path / "sink", "down", env={
        "AIMASS_CLICKHOUSE_DSN": f"http://aimass:pw@127.0.0.1:{port}/aimass",
        "AIMASS_SINK_RETRY_MAX_S": "1",
    })  # fmt: skip

    def status(path: str) -> int | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}{path}", timeout=2) as r:
                json.loads(r.read())
                return int(r.status)
        except urllib.error.HTTPError as err:
            return int(err.code)
        except OSError:
            return None

    try:
        deadline = time.monotonic() + 60
        while status("/healthz") != 200:
            assert worker.process.poll() is None, worker.tail()
            assert time.monotonic() < deadline, worker.tail()
            time.sleep(0.3)
        # Several connect attempts later it is still up, and honestly not ready.
        time.sleep(4)
        assert worker.process.poll() is None, worker.tail()
        assert status("/readyz") == 503
        assert worker.sigterm(timeout=60) == 0, worker.tail()
    finally:
        if worker.process.poll() is None:
            worker.sigkill()
    assert f"127.0.0.1:{port}" in worker.log.read_text(errors="replace")
    print(f"RELIABILITY clickhouse-server-down-worker: up=yes readyz=503 exit=0 port={port}")
