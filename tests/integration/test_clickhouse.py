"""Idempotent inserts and migrations against embedded ClickHouse (chdb)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson
import pytest

from stream_aimass.clickhouse.client import get_client
from stream_aimass.clickhouse.migrations import load_migrations, migrate
from stream_aimass.clickhouse.queries import query_names, run_named_query
from stream_aimass.records import Category, Document, EnrichedDocument, ModelRef, Source
from stream_aimass.settings import Settings
from stream_aimass.sink.rows import (
    CLASSIFICATION_COLUMNS,
    DOCUMENT_COLUMNS,
    classification_rows,
    document_row,
)
from stream_aimass.sink.writer import ClickHouseWriter, InsertBatch

pytestmark = pytest.mark.integration


# Parameters of the queries that take some (the others take none).
_EVERY_TENANT_EVER = {
    "tenant": "",
    "from": datetime(1970, 1, 1, tzinfo=UTC),
    "to": datetime(2200, 1, 1, tzinfo=UTC),
}
QUERY_PARAMETERS = {
    "usage": _EVERY_TENANT_EVER,
    "usage-by-source": _EVERY_TENANT_EVER,
    "top-entities": _EVERY_TENANT_EVER,
    "recommendation-ctr": _EVERY_TENANT_EVER,
    "popular-items": _EVERY_TENANT_EVER,
    "entity-trend": {**_EVERY_TENANT_EVER, "entity": "company/apple"},
    "dead-letter-list": {**_EVERY_TENANT_EVER, "stage": "", "topic": "", "limit": 10},
    "pii-summary": _EVERY_TENANT_EVER,
    "summaries": {**_EVERY_TENANT_EVER, "limit": 10},
}


def _enriched(doc_id: str, offset: int) -> bytes:
    doc = Document(
        doc_id,
        "acme",
        1_700_000_000_000,
        "text",
        Source("aimass.documents", 0, offset, 1_700_000_000_001),
    )
    enriched = EnrichedDocument(
        doc,
        3,
        (Category("sports", 0.5),),
        b"\x00\x00",
        1,
        ModelRef("m", "v1"),
        {},
        1_700_000_000_002,
    )
    rec = orjson.loads(enriched.to_json())
    rec["compute_ms"] = 12.5
    rec["models"] = {"m": "v1", "banking77": "0f9e8d7c6b5a"}
    rec["classifications"] = [
        {
            "classifier": "intent",
            "model": {"name": "banking77", "version": "0f9e8d7c6b5a"},
            "multi_label": False,
            "labels": ["card_arrival", "lost_card"],
            "scores": [0.75, 0.25],
            "predicted": ["card_arrival"],
            "top": "card_arrival",
        }
    ]
    return orjson.dumps(rec)


def _row(doc_id: str, offset: int) -> list[object]:
    return document_row(_enriched(doc_id, offset), "aimass.enriched", 0, offset)


def test_migrations_apply_once(settings: Settings) -> None:
    client = get_client(settings)
    first = migrate(client)
    assert "0001_documents.sql" in first and "0002_dead_letters.sql" in first
    assert first[-3:] == ["0009_versions.sql", "0010_pii.sql", "0011_summaries.sql"]
    assert migrate(client) == []


def test_migration_statements_can_run_twice(settings: Settings) -> None:
    # A migration that failed half-way is run again from its first statement.
    client = get_client(settings)
    migrate(client)
    schema = "SELECT name, create_table_query FROM system.tables WHERE database = currentDatabase()"
    before = sorted(client.query(schema).result_rows)
    for migration in load_migrations():
        for statement in migration.statements():
            client.command(statement)
    assert sorted(client.query(schema).result_rows) == before
    names = {name for name, _ in before}
    assert {"classifications", "usage_hourly", "usage_documents_mv", "usage_events_mv"} <= names


def test_document_models_and_classifications_round_trip(settings: Settings) -> None:
    client = get_client(settings)
    migrate(client)
    writer = ClickHouseWriter(client)
    value = _enriched("doc-1", 1)
    rows = classification_rows(value, "aimass.enriched", 0, 1)
    asyncio.run(writer.insert(InsertBatch("documents", DOCUMENT_COLUMNS, [_row("doc-1", 1)], "d")))
    asyncio.run(writer.insert(InsertBatch("classifications", CLASSIFICATION_COLUMNS, rows, "c")))
    stored = client.query("SELECT compute_ms, models FROM documents").result_rows
    assert stored == [(12.5, {"m": "v1", "banking77": "0f9e8d7c6b5a"})]
    got = client.query(
        "SELECT tenant, doc_id, classifier, model_version, multi_label, top_label, predicted,"
        " labels, scores FROM classifications"
    ).result_rows
    assert got == [
        (
            "acme",
            "doc-1",
            "intent",
            "0f9e8d7c6b5a",
            0,
            "card_arrival",
            ["card_arrival"],
            ["card_arrival", "lost_card"],
            [0.75, 0.25],
        )
    ]


def test_documents_written_before_0004_read_as_zero_and_empty(settings: Settings) -> None:
    client = get_client(settings)
    for migration in load_migrations()[:3]:
        for statement in migration.statements():
            client.command(statement)
    old_columns = DOCUMENT_COLUMNS[: DOCUMENT_COLUMNS.index("compute_ms")]
    row = _row("doc-1", 1)[: len(old_columns)]
    ClickHouseWriter(client).insert_sync(InsertBatch("documents", old_columns, [row], "old"))
    migrate(client)
    assert client.query("SELECT compute_ms, models FROM documents").result_rows == [(0.0, {})]
    # Usage counts from the migration on: no backfill (see 0006_usage.sql).
    assert client.query("SELECT count() FROM usage_hourly").result_rows == [(0,)]


def test_retried_batch_leaves_one_copy(settings: Settings) -> None:
    client = get_client(settings)
    migrate(client)
    writer = ClickHouseWriter(client)
    rows = [_row(f"doc-{i}", i) for i in range(10)]
    batch = InsertBatch("documents", DOCUMENT_COLUMNS, rows, "documents|aimass.enriched:0:0-9")
    assert asyncio.run(writer.insert(batch))
    assert asyncio.run(writer.insert(batch))  # a retry after a lost acknowledgement
    # The deduplication token dropped the second insert: one copy even without FINAL.
    assert client.query("SELECT count() FROM documents").result_rows[0][0] == 10


def test_redelivered_rows_collapse_under_final(settings: Settings) -> None:
    client = get_client(settings)
    migrate(client)
    writer = ClickHouseWriter(client)
    rows = [_row(f"doc-{i}", i) for i in range(5)]
    # A re-delivery after a crash forms a different batch, so a different token.
    asyncio.run(writer.insert(InsertBatch("documents", DOCUMENT_COLUMNS, rows, "a")))
    asyncio.run(writer.insert(InsertBatch("documents", DOCUMENT_COLUMNS, rows[2:], "b")))
    assert client.query("SELECT count() FROM documents").result_rows[0][0] == 8
    assert client.query("SELECT count() FROM documents FINAL").result_rows[0][0] == 5


def test_every_named_query_runs(settings: Settings) -> None:
    client = get_client(settings)
    migrate(client)
    writer = ClickHouseWriter(client)
    asyncio.run(writer.insert(InsertBatch("documents", DOCUMENT_COLUMNS, [_row("doc-1", 1)], "q")))
    classified = classification_rows(_enriched("doc-1", 1), "aimass.enriched", 0, 1)
    asyncio.run(
        writer.insert(InsertBatch("classifications", CLASSIFICATION_COLUMNS, classified, "c"))
    )
    for name in query_names():
        result = run_named_query(client, name, QUERY_PARAMETERS.get(name))
        assert isinstance(result.rows, list), name  # a broken query raises
    mix = run_named_query(client, "category-mix").as_dicts()
    assert mix[0]["category"] == "sports" and mix[0]["documents"] == 1
    intents = run_named_query(client, "classifier-mix").as_dicts()
    assert intents == [
        {
            "classifier": "intent",
            "model_version": "0f9e8d7c6b5a",
            "top_label": "card_arrival",
            "documents": 1,
            "mean_top_score": 0.75,
        }
    ]
    (usage,) = run_named_query(client, "usage", QUERY_PARAMETERS["usage"]).as_dicts()
    assert (usage["tenant"], usage["documents"], usage["tokens"]) == ("acme", 1, 3)
    assert (usage["events"], usage["recommendations"], usage["compute_ms"]) == (0, 0, 12.5)


@pytest.mark.parametrize("rows", [1, 7])
def test_the_writer_inserts_with_the_types_it_described_once(settings: Settings, rows: int) -> None:
    """The column types read once per table give the rows the client's own DESCRIBE does."""
    client = get_client(settings)
    client.command(
        "CREATE TABLE described (tenant LowCardinality(String), doc_id String, "
        "n Array(Float32)) ENGINE = MergeTree ORDER BY doc_id"
    )
    writer = ClickHouseWriter(client)
    for i in range(2):
        data = [["acme", f"d{i}-{j}", [0.5, float(j)]] for j in range(rows)]
        writer.insert_sync(InsertBatch("described", ("tenant", "doc_id", "n"), data, f"tok{i}"))
    stored = client.query("SELECT tenant, doc_id, n FROM described ORDER BY doc_id").result_rows
    assert [list(r) for r in stored] == [
        ["acme", f"d{i}-{j}", [0.5, float(j)]] for i in range(2) for j in range(rows)
    ]
