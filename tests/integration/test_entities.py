"""Entities end to end: produced documents -> linked mentions in records and ClickHouse."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from stream_aimass.clickhouse.queries import run_named_query
from stream_aimass.pipeline import Pipeline, Stack, open_clickhouse
from stream_aimass.settings import Settings
from stream_aimass.testing import produce_documents, read_topic
from stream_aimass.tools.corpus import generate_documents

pytestmark = pytest.mark.integration

KNOWN = [
    ("Apple shares rose after iPhone sales in China beat forecasts, Tim Cook said.",
     {"Apple": "company/apple", "iPhone": "product/iphone", "China": "country/china"}),
    ("The World Health Organization warned that malaria cases are rising in Nigeria.",
     {"World Health Organization": "org/who", "Nigeria": "country/nigeria"}),
    ("I ate an apple on the train from Berlin to Warsaw.",
     {"apple": "food/apple", "Berlin": "city/berlin", "Warsaw": "city/warsaw"}),
]  # fmt: skip


def _docs() -> list[dict[str, Any]]:
    docs = generate_documents(60, seed=71)
    for i, (text, _) in enumerate(KNOWN):
        docs.append(
            {"id": f"known-{i}", "tenant": "acme", "ts": 1_767_225_600_000 + i, "text": text}
        )
    return docs


def test_known_entities_are_linked_into_records_and_entity_mentions(
    settings: Settings, enricher: Any
) -> None:
    assert enricher.entities is not None, "entities are on by default (demo KB)"
    for _, expected in KNOWN:
        for entity_id in expected.values():
            assert enricher.entities.kb.get(entity_id) is not None, entity_id
    docs = _docs()
    stack = Stack.start(settings)
    try:
        client = open_clickhouse(settings)
        produce_documents(stack.bootstrap, docs, [])
        pipeline = Pipeline(settings, stack.bootstrap, "all", enricher=enricher, clickhouse=client)

        async def run() -> None:
            await pipeline.start()
            assert pipeline.sink is not None
            deadline = time.monotonic() + 120
            while pipeline.sink.stored("documents") < len(docs):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            await pipeline.stop_and_wait()

        asyncio.run(run())
        enriched = [
            orjson.loads(m.value)
            for m in read_topic(stack.bootstrap, settings.topic_enriched, len(docs))
        ]
    finally:
        stack.close()

    by_id = {r["id"]: r for r in enriched}
    for i, (text, expected) in enumerate(KNOWN):
        record = by_id[f"known-{i}"]
        linked = {e["text"]: e["entity_id"] for e in record["entities"]}
        for surface, entity_id in expected.items():
            assert linked.get(surface) == entity_id, (surface, record["entities"])
        for e in record["entities"]:
            assert text[e["start"] : e["end"]] == e["text"]
        assert record["entities_model"]["kb"]["name"] == "demo-kb"

    rows = client.query(
        "SELECT doc_id, mention_text, entity_id, label FROM entity_mentions FINAL "
        "WHERE doc_id LIKE 'known-%'"
    ).result_rows
    stored = {(doc, text): entity for doc, text, entity, _ in rows}
    for i, (_, expected) in enumerate(KNOWN):
        for surface, entity_id in expected.items():
            assert stored[(f"known-{i}", surface)] == entity_id
    # The generated documents record which KB entities they mention, and where.
    hinted = linked = 0
    for doc in docs:
        hints = doc.get("meta", {}).get("entity_hints", [])
        got = {(e["start"], e["end"]): e["entity_id"] for e in by_id[doc["id"]]["entities"]}
        hinted += len(hints)
        linked += sum(1 for h in hints if got.get((h["start"], h["end"])) == h["id"])
    assert hinted > 100 and linked / hinted > 0.9, (linked, hinted)
    total = sum(len(r["entities"]) for r in enriched)
    assert client.query("SELECT count() FROM entity_mentions FINAL").result_rows[0][0] == total

    params = {"tenant": "acme", "from": datetime(2020, 1, 1, tzinfo=UTC),
              "to": datetime(2100, 1, 1, tzinfo=UTC)}  # fmt: skip
    top = {r["entity_id"] for r in run_named_query(client, "top-entities", params).as_dicts()}
    assert "company/apple" in top or len(top) == 20
    trend = run_named_query(client, "entity-trend", params | {"entity": "company/apple"})
    assert sum(r["mentions"] for r in trend.as_dicts()) >= 1
