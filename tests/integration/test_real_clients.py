"""Real clients against the embedded stack: librdkafka producers in every codec, record batches
no client can read, offsets reused after a broker restart, and updates of a document id.

Everything here is produced with confluent-kafka (librdkafka), not with the project's own
producer, and the texts are written here, not taken from the demo generator.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from stream_aimass.pipeline import Pipeline, Stack, open_clickhouse
from stream_aimass.settings import Settings
from stream_aimass.testing import (
    KAFKA_CODECS,
    produce_raw_batch,
    produce_with_librdkafka,
    record_batch,
)

pytestmark = pytest.mark.integration

TEXTS = [
    "Apple opened a new office in Berlin on Monday, hiring two hundred engineers.",
    "The central bank raised interest rates again; shares in Frankfurt fell 2%.",
    "Liverpool beat Arsenal 3-1 at Anfield after a late goal from the captain.",
    "Researchers in Geneva measured a neutrino anomaly with the new detector.",
    "Le gouvernement a présenté un budget révisé à l'Assemblée nationale.",
    "Hospitals in Madrid report fewer flu cases than last winter 🤒.",
    "Microsoft released an update for its cloud database after an outage.",
    "A short one.",
    "東京で新しい電車の路線が開業した。Passengers waited for hours.",
    "The film festival in Cannes opened with a documentary about the sea.",
]

NEUTRAL = [t for t in TEXTS if "Apple" not in t and "Microsoft" not in t]


def doc(doc_id: str, tenant: str, text: str, **extra: Any) -> bytes:
    return orjson.dumps(
        {"id": doc_id, "tenant": tenant, "ts": 1_767_225_600_000, "text": text, **extra}
    )


def event(n: int, tenant: str, user: str, item: str) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"ev-{n}",
            "tenant": tenant,
            "user_id": user,
            "item_id": item,
            "type": "click",
            "ts": 1_767_225_600_000 + n,
        }
    )


def run_until(pipeline: Pipeline, done: Callable[[], bool], timeout: float = 180) -> None:
    """Run ``pipeline`` until ``done()``; fails with what was stored when it never is."""

    async def run() -> None:
        await pipeline.start()
        try:
            deadline = time.monotonic() + timeout
            while not done():
                assert pipeline.sink is not None
                stored = {t: pipeline.sink.stored(t) for t in ("documents", "events", "items")}
                assert time.monotonic() < deadline, f"not done after {timeout}s: stored {stored}"
                await asyncio.sleep(0.1)
        finally:
            await pipeline.stop_and_wait()

    asyncio.run(run())


def rows(client: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in client.query(sql).result_rows]


def test_every_codec_from_librdkafka_reaches_every_consumer(
    settings: Settings, enricher: Any
) -> None:
    """Documents, catalogue items and events in each codec Kafka defines, read by the enrich
    role, the events path (Faust), the item-vector reader and the sink; the workers' own
    batches are compressed too (zstd here)."""
    settings = settings.model_copy(update={"compression_type": "zstd"})
    stack = Stack.start(settings)
    try:
        client = open_clickhouse(settings)
        for c, codec in enumerate(KAFKA_CODECS):
            docs = [
                (f"acme:{codec}-{i}".encode(), doc(f"{codec}-{i}", "acme", TEXTS[i]))
                for i in range(len(TEXTS))
            ]
            produce_with_librdkafka(stack.bootstrap, "aimass.documents", docs, codec=codec)
            items = [
                (
                    f"acme:sku-{codec}".encode(),
                    orjson.dumps({"id": f"sku-{codec}", "tenant": "acme", "text": TEXTS[c]}),
                )
            ]
            produce_with_librdkafka(stack.bootstrap, "aimass.items", items, codec=codec)
        pipeline = Pipeline(settings, stack.bootstrap, "all", enricher=enricher, clickhouse=client)
        n_docs = len(KAFKA_CODECS) * len(TEXTS)
        assert pipeline.sink is not None and pipeline.recs is not None
        sink, recs = pipeline.sink, pipeline.recs

        async def run() -> None:
            await pipeline.start()
            try:
                deadline = time.monotonic() + 180
                while sink.stored("items") < n_docs + len(KAFKA_CODECS):
                    assert time.monotonic() < deadline, sink.buffered_rows()
                    await asyncio.sleep(0.1)
                # Events on indexed items, in every codec: the Faust agent must read them.
                for c, codec in enumerate(KAFKA_CODECS):
                    evs = [
                        (f"acme:u{c}".encode(), event(10 * c + k, "acme", f"u{c}", f"{codec}-{k}"))
                        for k in range(3)
                    ]
                    await asyncio.to_thread(
                        produce_with_librdkafka, stack.bootstrap, "aimass.events", evs, codec=codec
                    )
                while sink.stored("events") < 3 * len(KAFKA_CODECS) or recs.applied < 15:
                    assert time.monotonic() < deadline, (sink.stored("events"), recs.applied)
                    await asyncio.sleep(0.1)
            finally:
                await pipeline.stop_and_wait()

        asyncio.run(run())
    finally:
        stack.close()
    assert rows(client, "SELECT count() FROM documents FINAL") == [(n_docs,)]
    assert rows(client, "SELECT count() FROM items FINAL WHERE deleted = 0") == [
        (n_docs + len(KAFKA_CODECS),)
    ]
    assert rows(client, "SELECT count() FROM events FINAL") == [(3 * len(KAFKA_CODECS),)]
    assert rows(client, "SELECT count() FROM dead_letters FINAL") == [(0,)]
    assert len(recs.index) == n_docs + len(KAFKA_CODECS)
    assert (
        pipeline.metrics.value(
            "aimass_unreadable_batches_total", role="enrich", topic="aimass.documents"
        )
        == 0
    )


def test_an_unreadable_batch_is_dead_lettered_and_nothing_else_stalls(
    settings: Settings, enricher: Any
) -> None:
    """A batch no consumer can decode (corrupt lz4, CRC made to match) on partition 0 of the
    documents and the events topics: its offsets become one dead letter each, the documents
    before and after it on that partition and on the others are stored, readiness stays true."""
    stack = Stack.start(settings)
    try:
        client = open_clickhouse(settings)
        before = [(None, doc(f"before-{i}", "acme", TEXTS[i])) for i in range(4)]
        produce_with_librdkafka(stack.bootstrap, "aimass.documents", before, partition=0)
        corrupt = record_batch(
            [doc(f"lost-{i}", "acme", TEXTS[i]) for i in range(5)], "lz4", corrupt=True
        )
        first = produce_raw_batch(stack.bootstrap, "aimass.documents", 0, corrupt)
        produce_raw_batch(
            stack.bootstrap, "aimass.events", 0, record_batch([b"{}"] * 3, "zstd", corrupt=True)
        )
        after = [
            (f"acme:after-{i}".encode(), doc(f"after-{i}", "acme", TEXTS[i % 10]))
            for i in range(24)
        ]
        produce_with_librdkafka(stack.bootstrap, "aimass.documents", after, codec="lz4")
        produce_with_librdkafka(
            stack.bootstrap,
            "aimass.documents",
            [(None, doc("after-p0", "acme", TEXTS[0]))],
            partition=0,
        )
        pipeline = Pipeline(settings, stack.bootstrap, "all", enricher=enricher, clickhouse=client)
        assert pipeline.sink is not None
        sink = pipeline.sink
        readiness: list[bool] = []

        def done() -> bool:
            readiness.append(pipeline.ready)
            return sink.stored("documents") >= 29 and sink.stored("dead_letters") >= 2

        run_until(pipeline, done)
    finally:
        stack.close()
    ids = {r[0] for r in rows(client, "SELECT doc_id FROM documents FINAL")}
    assert ids == {f"before-{i}" for i in range(4)} | {f"after-{i}" for i in range(24)} | {
        "after-p0"
    }
    dead = rows(
        client,
        "SELECT source_topic, source_partition, source_offset, stage, error_type, reason, "
        "raw_bytes FROM dead_letters FINAL ORDER BY source_topic",
    )
    assert [(d[0], d[1], d[3], d[4]) for d in dead] == [
        ("aimass.documents", 0, "decode", "UnreadableBatch"),
        ("aimass.events", 0, "decode", "UnreadableBatch"),
    ]
    assert dead[0][2] == first
    assert f"offsets {first}-{first + 4} (5 records, codec lz4)" in dead[0][5]
    assert dead[0][6] == len(corrupt)  # the raw batch, as fetched
    m = pipeline.metrics
    assert m.value("aimass_unreadable_batches_total", role="enrich", topic="aimass.documents") == 1
    assert m.value("aimass_unreadable_batches_total", role="sink", topic="aimass.events") == 1
    assert m.value("aimass_consumer_failures_total", role="enrich", cause="KafkaError") == 0
    # Ready all along once started: nothing failed, nothing stalled.
    assert readiness[-1] and sum(readiness) >= len(readiness) - 20


def test_offsets_reused_by_a_new_broker_never_drop_new_rows(
    settings: Settings, enricher: Any
) -> None:
    """The same ClickHouse data behind a restarted broker: offsets start at 0 again, and every
    new document, event and dead letter is stored beside the old ones."""
    client = open_clickhouse(settings)
    for generation in range(2):
        stack = Stack.start(settings)  # a new embedded broker: offsets from 0
        try:
            docs = [
                (
                    f"acme:g{generation}-{i}".encode(),
                    doc(f"g{generation}-{i}", "acme", TEXTS[i % 10]),
                )
                for i in range(40)
            ]
            produce_with_librdkafka(stack.bootstrap, "aimass.documents", docs)
            produce_with_librdkafka(
                stack.bootstrap,
                "aimass.documents",
                [(None, b"not json " + bytes([generation]))],
                partition=0,
            )
            evs = [
                (
                    f"acme:u{i % 7}".encode(),
                    event(1000 * generation + i, "acme", f"u{i % 7}", f"g{generation}-{i}"),
                )
                for i in range(40)
            ]
            produce_with_librdkafka(stack.bootstrap, "aimass.events", evs)
            pipeline = Pipeline(
                settings, stack.bootstrap, "all", enricher=enricher, clickhouse=client
            )
            assert pipeline.sink is not None
            sink = pipeline.sink
            run_until(
                pipeline,
                lambda sink=sink: (
                    sink.stored("documents") >= 40
                    and sink.stored("events") >= 40
                    and sink.stored("dead_letters") >= 1
                ),
            )
        finally:
            stack.close()
        time.sleep(0.01)  # the next broker's messages get later Kafka timestamps
    assert rows(client, "SELECT count() FROM documents FINAL") == [(80,)]
    assert rows(client, "SELECT count() FROM events FINAL") == [(80,)]
    assert rows(client, "SELECT count() FROM items FINAL") == [(80,)]
    dead = rows(client, "SELECT source_offset, raw_preview FROM dead_letters FINAL ORDER BY 2")
    assert [d[1] for d in dead] == ["not json \x00", "not json \x01"]


def test_the_last_produced_version_of_a_document_wins_everywhere(
    settings: Settings, enricher: Any
) -> None:
    """Each id sent four times with new text. Keyed revisions share a partition (offsets
    order them, however batches and inserts are ordered); unkeyed ones land anywhere and
    are ordered by their Kafka timestamps; explicit versions beat both."""
    settings = settings.model_copy(update={"batch_max_documents": 3, "sink_batch_rows": 7})
    n, revisions = 24, 4
    keyed, unkeyed, explicit = [], [], []
    for rev in range(revisions):
        # The entity changes between revisions: only the last one names Apple.
        company = "Apple" if rev == revisions - 1 else "Microsoft"
        for i in range(n):
            text = f"Revision {rev}: {company} said on Monday that {NEUTRAL[i % len(NEUTRAL)]}"
            keyed.append((f"acme:k{i}".encode(), doc(f"k{i}", "acme", text, title=f"v{rev}")))
            unkeyed.append((None, doc(f"u{i}", "acme", text, title=f"v{rev}")))
            # Explicit versions, sent newest first: the highest version must still win.
            version = revisions - rev
            named = "Apple" if version == revisions else "Microsoft"
            explicit.append(
                (
                    None,
                    doc(
                        f"x{i}",
                        "acme",
                        f"{named} announced revision {version}.",
                        title=f"v{version}",
                        version=version,
                    ),
                )
            )
    base = int(time.time() * 1000) - 60_000
    stack = Stack.start(settings)
    try:
        client = open_clickhouse(settings)
        produce_with_librdkafka(stack.bootstrap, "aimass.documents", keyed, codec="lz4")
        produce_with_librdkafka(
            stack.bootstrap,
            "aimass.documents",
            unkeyed,
            timestamps=[base + j for j in range(len(unkeyed))],
        )
        produce_with_librdkafka(stack.bootstrap, "aimass.documents", explicit)
        pipeline = Pipeline(settings, stack.bootstrap, "all", enricher=enricher, clickhouse=client)
        assert pipeline.sink is not None and pipeline.recs is not None
        sink, recs = pipeline.sink, pipeline.recs
        total = 3 * n * revisions

        def index_read_everything() -> bool:
            # The item index reads aimass.item-vectors on its own: stored rows say nothing
            # of how far it has read. Every vector applied, each one upserted or skipped.
            return recs.index.applied + recs.index.stale >= total

        run_until(
            pipeline,
            lambda: (
                sink.stored("documents") >= total
                and sink.stored("items") >= total
                and index_read_everything()
            ),
        )
    finally:
        stack.close()
    titles = rows(
        client,
        "SELECT substring(doc_id, 1, 1), title, count() FROM documents FINAL "
        "GROUP BY 1, 2 ORDER BY 1",
    )
    assert titles == [("k", "v3", n), ("u", "v3", n), ("x", "v4", n)]
    items = sorted(rows(client, "SELECT title, count() FROM items FINAL GROUP BY title"))
    assert items == [("v3", 2 * n), ("v4", n)]
    # The workers' item index holds the same versions.
    indexed = recs.index.tenant("acme")
    assert indexed is not None and len(indexed) == 3 * n
    assert sorted(indexed.titles) == sorted(["v3"] * 2 * n + ["v4"] * n)
    # Entity mentions of the current versions only: Apple everywhere, Microsoft nowhere.
    from stream_aimass.clickhouse.queries import ALL_TIME, run_named_query

    top = run_named_query(
        client, "top-entities", {"tenant": "", "from": ALL_TIME[0], "to": ALL_TIME[1]}
    ).as_dicts()
    by_entity = {r["entity_id"]: r["documents"] for r in top}
    assert by_entity.get("company/apple") == 3 * n, top
    assert "company/microsoft" not in by_entity, top
    # Billing: every version is billed once (re-deliveries are not), documents once per hour.
    usage = run_named_query(
        client, "usage", {"tenant": "acme", "from": ALL_TIME[0], "to": ALL_TIME[1]}
    ).as_dicts()
    assert sum(r["documents"] for r in usage) >= 3 * n
    (ledger,) = rows(client, "SELECT count() FROM usage_documents FINAL")
    assert ledger == (total,)


def test_rows_clickhouse_refuses_for_good_become_dead_letters(
    settings: Settings, enricher: Any
) -> None:
    """A CONSTRAINT refuses some documents' rows: those become dead letters with the
    server's reason, the rest of every batch is stored, and the sink goes on (before, it
    retried the batch forever)."""
    client = open_clickhouse(settings)
    client.command("ALTER TABLE documents ADD CONSTRAINT short_titles CHECK length(title) < 40")
    stack = Stack.start(settings)
    try:
        docs = [
            (
                f"acme:c{i}".encode(),
                doc(
                    f"c{i}",
                    "acme",
                    TEXTS[i % 10],
                    title=("A title far too long " * 3) if i % 7 == 3 else f"title {i}",
                ),
            )
            for i in range(30)
        ]
        produce_with_librdkafka(stack.bootstrap, "aimass.documents", docs, codec="gzip")
        pipeline = Pipeline(settings, stack.bootstrap, "all", enricher=enricher, clickhouse=client)
        assert pipeline.sink is not None
        sink = pipeline.sink
        refused = [i for i in range(30) if i % 7 == 3]
        run_until(
            pipeline,
            lambda: (
                sink.stored("documents") >= 30 - len(refused)
                and sink.stored("dead_letters") >= len(refused)
            ),
        )
    finally:
        stack.close()
    stored = {r[0] for r in rows(client, "SELECT doc_id FROM documents FINAL")}
    assert stored == {f"c{i}" for i in range(30) if i not in refused}
    dead = rows(client, "SELECT stage, error_type, reason, raw_preview FROM dead_letters FINAL")
    assert len(dead) == len(refused)
    for stage, error_type, reason, preview in dead:
        assert (stage, error_type) == ("sink", "InsertRejected")
        assert "short_titles" in reason and "VIOLATED_CONSTRAINT" in reason, reason
        assert '"title":"A title far too long' in preview
    assert pipeline.metrics.value("aimass_rejected_rows_total", table="documents") == len(refused)


@pytest.mark.skipif(
    shutil.which("kcat") is None, reason="kcat is not installed (apt-get install kcat)"
)
def test_kcat_produces_in_and_reads_out(settings: Settings, enricher: Any) -> None:
    """Documents produced with kcat (lz4, keyed), enriched records read back with kcat from a
    worker writing snappy: the tool users reach for first, on both ends."""
    settings = settings.model_copy(update={"compression_type": "snappy"})
    stack = Stack.start(settings)
    try:
        client = open_clickhouse(settings)
        lines = "".join(
            f"acme:k{i}\t" + doc(f"k{i}", "acme", TEXTS[i % 10]).decode() + "\n" for i in range(15)
        )
        subprocess.run(
            [
                "kcat",
                "-P",
                "-b",
                stack.bootstrap,
                "-t",
                "aimass.documents",
                "-z",
                "lz4",
                "-K",
                "\t",
            ],
            input=lines,
            text=True,
            check=True,
            timeout=60,
        )
        pipeline = Pipeline(settings, stack.bootstrap, "all", enricher=enricher, clickhouse=client)
        assert pipeline.sink is not None
        sink = pipeline.sink
        run_until(pipeline, lambda: sink.stored("documents") >= 15)
        out = subprocess.run(
            [
                "kcat",
                "-C",
                "-b",
                stack.bootstrap,
                "-t",
                "aimass.enriched",
                "-o",
                "beginning",
                "-e",
                "-q",
                "-f",
                "%k\t%s\n",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    finally:
        stack.close()
    records = [line.split("\t", 1) for line in out.stdout.splitlines() if line]
    assert sorted(k for k, _ in records) == sorted(f"acme:k{i}" for i in range(15))
    assert all(orjson.loads(v)["embedding"]["dim"] == 384 for _, v in records)


def test_a_consumer_that_keeps_failing_makes_the_worker_not_ready(
    settings: Settings, enricher: Any
) -> None:
    """Fetches refused (TOPIC_AUTHORIZATION_FAILED, as a wrong ACL does): the consumers fail,
    readiness says so and the metric counts the cause; once fetches work again, everything
    is stored and the worker is ready."""
    from stream_aimass.kafka.embedded import API_FETCH, ERR_TOPIC_AUTHORIZATION_FAILED

    stack = Stack.start(settings)
    assert stack.broker is not None
    broker = stack.broker
    try:
        client = open_clickhouse(settings)
        pipeline = Pipeline(settings, stack.bootstrap, "all", enricher=enricher, clickhouse=client)
        assert pipeline.sink is not None
        sink = pipeline.sink
        seen: list[bool] = []

        async def run() -> None:
            await pipeline.start()
            try:
                deadline = time.monotonic() + 120
                while not pipeline.ready:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.1)
                broker.fail_requests(API_FETCH, [ERR_TOPIC_AUTHORIZATION_FAILED] * 15)
                docs = [
                    (f"acme:f{i}".encode(), doc(f"f{i}", "acme", TEXTS[i % 10])) for i in range(20)
                ]
                await asyncio.to_thread(
                    produce_with_librdkafka, stack.bootstrap, "aimass.documents", docs
                )
                while sink.stored("documents") < 20:
                    seen.append(pipeline.ready)
                    assert time.monotonic() < deadline, sink.stored("documents")
                    await asyncio.sleep(0.05)
                while not pipeline.ready:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.1)
            finally:
                broker.clear_request_errors(API_FETCH)
                await pipeline.stop_and_wait()

        asyncio.run(run())
    finally:
        stack.close()
    failures = sum(
        pipeline.metrics.value(
            "aimass_consumer_failures_total", role=role, cause="TopicAuthorizationFailedError"
        )
        for role in ("enrich", "sink", "recs")
    )
    assert failures > 0
    assert False in seen, "readiness never showed the failing consumers"
    assert rows(client, "SELECT count() FROM documents FINAL") == [(20,)]
