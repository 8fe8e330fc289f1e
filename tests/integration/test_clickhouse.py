"""Idempotent inserts and migrations against embedded ClickHouse (chdb)."""

from __future__ import annotations

import asyncio

import pytest

from stream_aimass.clickhouse import get_client, migrate, query_names, run_named_query
from stream_aimass.records import Category, Document, EnrichedDocument, ModelRef, Source
from stream_aimass.settings import Settings
from stream_aimass.sinks.clickhouse import (
    DOCUMENT_COLUMNS,
    ClickHouseWriter,
    InsertBatch,
    document_row,
)

pytestmark = pytest.mark.integration


def _row(doc_id: str, offset: int) -> list[object]:
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
    return document_row(enriched.to_json(), "aimass.enriched", 0, offset)


def test_migrations_apply_once(settings: Settings) -> None:
    client = get_client(settings)
    first = migrate(client)
    assert "0001_documents.sql" in first and "0002_dead_letters.sql" in first
    assert migrate(client) == []


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
    asyncio.run(
        ClickHouseWriter(client).insert(
            InsertBatch("documents", DOCUMENT_COLUMNS, [_row("doc-1", 1)], "q")
        )
    )
    for name in query_names():
        result = run_named_query(client, name)
        assert isinstance(result.rows, list), name  # a broken query raises
    mix = run_named_query(client, "category-mix").as_dicts()
    assert mix[0]["category"] == "sports" and mix[0]["documents"] == 1
