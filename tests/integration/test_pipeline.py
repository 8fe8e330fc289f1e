"""The whole pipeline in one process on the embedded broker and chdb."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jsonschema
import orjson
import pytest

from stream_aimass.kafka.topics import load_schema
from stream_aimass.pipeline import Pipeline, Stack, open_clickhouse
from stream_aimass.settings import Settings
from stream_aimass.testing import produce, produce_documents, read_topic
from stream_aimass.tools.corpus import bad_messages, generate_documents, generate_events

pytestmark = pytest.mark.integration


async def _run_until_stored(
    pipeline: Pipeline, docs: int, dead: int, events: int = 0, timeout: float = 120
) -> None:
    await pipeline.start()
    assert pipeline.sink is not None
    sink = pipeline.sink
    wanted = {"documents": docs, "dead_letters": dead, "events": events}
    deadline = time.monotonic() + timeout
    while any(sink.stored(table) < n for table, n in wanted.items()):
        stored = {table: sink.stored(table) for table in wanted}
        assert time.monotonic() < deadline, f"stored only {stored} of {wanted}"
        await asyncio.sleep(0.1)
    await pipeline.stop_and_wait()


def test_documents_and_bad_messages_flow_to_clickhouse_and_topics(
    settings: Settings, enricher: Any
) -> None:
    n = 150
    docs = generate_documents(n, seed=21)
    bad = [raw for raw, _ in bad_messages()]
    stack = Stack.start(settings)
    try:
        client = open_clickhouse(settings)
        produce_documents(stack.bootstrap, docs, bad)
        events = generate_events(docs, 80, seed=22)
        bad_event = b'{"event_id": "e-bad", "tenant": "acme", "type": "teleport"}'
        produce(
            stack.bootstrap,
            settings.topic_events,
            [orjson.dumps(e) for e in events] + [bad_event],
            [f"{e['tenant']}:{e['user_id']}".encode() for e in events] + [None],
        )
        pipeline = Pipeline(settings, stack.bootstrap, "all", enricher=enricher, clickhouse=client)
        asyncio.run(_run_until_stored(pipeline, n, len(bad) + 1, len(events)))
        enriched = read_topic(stack.bootstrap, settings.topic_enriched, n)
        dlq = read_topic(stack.bootstrap, settings.topic_dlq, len(bad))
    finally:
        stack.close()

    # Exactly N rows, one per document; exactly M dead letters with stage and reason.
    assert client.query("SELECT count() FROM documents FINAL").result_rows[0][0] == n
    ids = {r[0] for r in client.query("SELECT doc_id FROM documents FINAL").result_rows}
    assert ids == {d["id"] for d in docs}
    dead_rows = client.query("SELECT stage, reason, raw_b64 FROM dead_letters FINAL").result_rows
    assert len(dead_rows) == len(bad) + 1  # the bad documents and the bad event
    assert {r[0] for r in dead_rows} <= {"decode", "validate"}
    stored_events = client.query("SELECT event_id FROM events FINAL").result_rows
    assert {r[0] for r in stored_events} == {e["event_id"] for e in events}
    (reason,) = client.query(
        "SELECT reason FROM dead_letters FINAL WHERE source_topic = 'aimass.events'"
    ).result_rows[0]
    assert "user_id" in reason or "type" in reason
    assert all(r[1] for r in dead_rows)

    # N records on the enriched topic, valid against the published schema, keyed tenant:id.
    assert len(enriched) == n
    schema = load_schema("aimass.enriched")
    for msg in enriched:
        record = orjson.loads(msg.value)
        jsonschema.validate(record, schema)
        assert msg.key == f"{record['tenant']}:{record['id']}".encode()
        assert record["model"]["version"] == enricher.encoder.version
    assert len(dlq) == len(bad)
    jsonschema.validate(orjson.loads(dlq[0].value), load_schema("aimass.dlq"))

    # Metrics counted what happened, stage by stage.
    m = pipeline.metrics
    assert m.value("aimass_records_total", role="enrich", outcome="enriched") == n
    assert m.value("aimass_rows_inserted_total", table="documents") == n
    assert m.value("aimass_rows_inserted_total", table="events") == len(events)
    assert m.value("aimass_dead_letters_total", stage="validate") + m.value(
        "aimass_dead_letters_total", stage="decode"
    ) == len(bad)
    assert m.value("aimass_end_to_end_seconds_count") == n
    for stage in ("decode", "tokenize", "queue", "model", "produce", "commit"):
        assert m.value("aimass_stage_seconds_count", role="enrich", stage=stage) > 0, stage
    assert m.value("aimass_batch_documents_sum") == n
    assert b"aimass_consumer_lag" in m.render()

    # The zero-shot heads see the obvious: most generated texts land in their category.
    hints = {d["id"]: d["meta"]["category_hint"] for d in docs}  # type: ignore[index]
    rows = client.query("SELECT doc_id, top_category FROM documents FINAL").result_rows
    agreement = sum(hints[i] == c for i, c in rows) / n
    assert agreement > 0.8


def test_restarted_pipeline_resumes_from_committed_offsets(
    settings: Settings, enricher: Any
) -> None:
    """A clean stop commits; a new pipeline takes only what came after."""
    settings = settings.model_copy(update={"batch_when_idle": True})  # the other batching path
    first, second = generate_documents(40, seed=31), generate_documents(30, seed=32)
    stack = Stack.start(settings)
    try:
        client = open_clickhouse(settings)
        produce_documents(stack.bootstrap, first)
        pipeline = Pipeline(settings, stack.bootstrap, "all", enricher=enricher, clickhouse=client)
        asyncio.run(_run_until_stored(pipeline, len(first), 0))
        produce_documents(stack.bootstrap, second)
        pipeline = Pipeline(settings, stack.bootstrap, "all", enricher=enricher, clickhouse=client)
        asyncio.run(_run_until_stored(pipeline, len(second), 0))
        assert pipeline.sink is not None and pipeline.enrich is not None
        # The second run consumed only the new documents: nothing was reprocessed.
        consumed = pipeline.metrics.value("aimass_records_total", role="enrich", outcome="consumed")
        assert consumed == len(second)
    finally:
        stack.close()
    total = client.query("SELECT count() FROM documents").result_rows[0][0]
    assert total == len(first) + len(second)
