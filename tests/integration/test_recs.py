"""Recommendations end to end on the embedded stack (broker, Faust table, chdb, MiniLM).

Documents become items (their vectors go through ``aimass.item-vectors`` into the index),
user events update profiles in the Faust table, and every batch of events is scored and
published to ``aimass.recommendations`` and ClickHouse.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from stream_aimass.clickhouse.queries import ALL_TIME, run_named_query
from stream_aimass.pipeline import Pipeline, Stack, open_clickhouse
from stream_aimass.settings import Settings
from stream_aimass.testing import produce, produce_documents, read_topic
from stream_aimass.tools.corpus import generate_documents

pytestmark = pytest.mark.integration

T0 = 1_767_225_600_000  # 2026-01-01


def _catalogue() -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The same generated stories in two tenants (ids prefixed), and each id's category."""
    base = generate_documents(160, seed=91)
    docs, category = [], {}
    for tenant in ("shop-a", "shop-b"):
        for i, doc in enumerate(base):
            item_id = f"{tenant}-{i:03d}"
            docs.append({**doc, "id": item_id, "tenant": tenant, "ts": T0 + i})
            category[item_id] = doc["meta"]["category_hint"]  # type: ignore[index]
    return docs, category


def _event(event_id: str, tenant: str, user: str, item: str, kind: str, ts: int) -> bytes:
    return orjson.dumps(
        {"event_id": event_id, "tenant": tenant, "user_id": user, "item_id": item, "type": kind,
         "ts": ts}
    )  # fmt: skip


async def _until(check: Any, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def test_sports_clicker_gets_sports_first_and_tenants_stay_apart(
    settings: Settings, enricher: Any
) -> None:
    docs, category = _catalogue()
    sports_a = [d["id"] for d in docs if d["tenant"] == "shop-a" and category[d["id"]] == "sports"]
    assert len(sports_a) >= 10
    fan_clicks = sports_a[:6]
    stack = Stack.start(settings)
    try:
        client = open_clickhouse(settings)
        pipeline = Pipeline(settings, stack.bootstrap, "all", enricher=enricher, clickhouse=client)
        assert pipeline.recs is not None

        async def run() -> None:
            await pipeline.start()
            recs = pipeline.recs
            assert recs is not None and pipeline.sink is not None
            await asyncio.to_thread(produce_documents, stack.bootstrap, docs)
            await _until(lambda: len(recs.index) == len(docs), what="the item index")
            assert recs.index.describe()["tenants"] == {"shop-a": 160, "shop-b": 160}
            events, keys = [], []
            for i, item in enumerate(fan_clicks):
                events.append(_event(f"fan-{i}", "shop-a", "fan", item, "click", T0 + 10_000 + i))
                keys.append(b"shop-a:fan")
            # A user of the other tenant clicks the *same stories* (its own copies).
            for i, item in enumerate(fan_clicks[:3]):
                twin = item.replace("shop-a", "shop-b")
                events.append(_event(f"twin-{i}", "shop-b", "fan", twin, "like", T0 + 10_000 + i))
                keys.append(b"shop-b:fan")
            events.append(b"{not json")  # a bad event in the same stream
            keys.append(b"shop-a:fan")
            await asyncio.to_thread(produce, stack.bootstrap, settings.topic_events, events, keys)
            applied = len(events) - 1
            await _until(
                lambda: (
                    pipeline.metrics.value("aimass_recs_events_total", outcome="applied") >= applied
                ),
                what="profiles",
            )
            await _until(
                lambda: pipeline.metrics.value("aimass_recs_events_total", outcome="invalid") >= 1,
                what="the bad event",
            )
            await _until(
                lambda: (
                    pipeline.sink is not None
                    and pipeline.sink.stored("recommendations")
                    >= pipeline.metrics.value("aimass_recommendations_total", kind="personal")
                ),
                what="recommendations in ClickHouse",
            )
            # The HTTP endpoint's body, for the same users.
            status, body = recs.recommend("shop-a", "fan", 10, cold_start=False)
            assert status == 200 and body["known_user"] and not body["cold_start"]
            assert body["profile"]["events"] == len(fan_clicks)
            top = [item["item_id"] for item in body["items"]]
            assert len(top) == 10
            assert all(item.startswith("shop-a-") for item in top), top
            assert not set(top) & set(fan_clicks), "seen items are excluded"
            assert [category[i] for i in top[:5]] == ["sports"] * 5, top
            status, other = recs.recommend("shop-b", "fan", 10, cold_start=False)
            assert status == 200
            assert all(item["item_id"].startswith("shop-b-") for item in other["items"])
            assert recs.recommend("shop-a", "nobody", 5, cold_start=False)[0] == 404
            status, cold = recs.recommend("shop-a", "nobody", 5, cold_start=True)
            assert status == 200 and cold["cold_start"] and len(cold["items"]) == 5
            # The most popular item of shop-a (liked by nobody else) leads the cold list.
            assert cold["items"][0]["item_id"] in fan_clicks
            assert recs.recommend("shop a", "fan", 5, cold_start=False)[0] == 400
            assert recs.recommend("shop-a", "fan", 0, cold_start=False)[0] == 400
            await pipeline.stop_and_wait()

        asyncio.run(run())
        published = read_topic(stack.bootstrap, settings.topic_recommendations, 2, timeout=30)
    finally:
        stack.close()

    records = [orjson.loads(m.value) for m in published]
    assert {r["tenant"] for r in records} == {"shop-a", "shop-b"}
    for record in records:
        assert all(i["item_id"].startswith(record["tenant"] + "-") for i in record["items"])
        assert record["model"]["name"] == "aimass-recs"
        assert record["latency_ms"] >= 0
    last_fan = max((r for r in records if r["tenant"] == "shop-a"), key=lambda r: r["event_ts"])
    assert last_fan["trigger_event_id"] == f"fan-{len(fan_clicks) - 1}"
    assert category[last_fan["items"][0]["item_id"]] == "sports"
    stored = client.query(
        "SELECT tenant, count() FROM recommendations FINAL GROUP BY tenant ORDER BY tenant"
    ).result_rows
    assert [row[0] for row in stored] == ["shop-a", "shop-b"]
    items = client.query(
        "SELECT tenant, count() FROM items FINAL WHERE deleted = 0 GROUP BY tenant ORDER BY tenant"
    ).result_rows
    assert items == [("shop-a", 160), ("shop-b", 160)]
    everything = {"tenant": "", "from": ALL_TIME[0], "to": ALL_TIME[1]}
    ctr = run_named_query(client, "recommendation-ctr", everything)
    assert ctr.rows, "the CTR query covers the stored recommendations"
    popular = run_named_query(client, "popular-items", {**everything, "tenant": "shop-a"})
    assert popular.rows and popular.rows[0][popular.columns.index("item_id")] in fan_clicks
    dead = client.query(
        "SELECT count() FROM dead_letters FINAL WHERE source_topic = 'aimass.events'"
    ).result_rows
    assert dead == [(1,)], "the bad event is a dead letter (the sink role stores it)"


def test_catalogue_items_become_recommendable_without_enriched_records(
    settings: Settings, enricher: Any
) -> None:
    items = [
        {"id": "sku-1", "tenant": "store", "title": "Trail running shoes",
         "text": "Lightweight trail running shoes with a grippy sole.", "category": "sport"},
        {"id": "sku-2", "tenant": "store", "title": "Espresso machine",
         "text": "A compact espresso machine with a milk frother.", "category": "kitchen"},
        {"id": "sku-3", "tenant": "store", "title": "Road running shoes",
         "text": "Cushioned road running shoes for long distances.", "category": "sport"},
        {"id": "", "tenant": "store", "text": "no id"},
    ]  # fmt: skip
    stack = Stack.start(settings)
    try:
        client = open_clickhouse(settings)
        pipeline = Pipeline(settings, stack.bootstrap, "all", enricher=enricher, clickhouse=client)
        assert pipeline.recs is not None

        async def run() -> None:
            await pipeline.start()
            recs = pipeline.recs
            assert recs is not None
            await asyncio.to_thread(
                produce,
                stack.bootstrap,
                settings.topic_items,
                [orjson.dumps(i) for i in items],
                [f"store:{i['id']}".encode() for i in items],
            )
            await _until(lambda: len(recs.index) == 3, what="catalogue items")
            await asyncio.to_thread(
                produce,
                stack.bootstrap,
                settings.topic_events,
                [_event("e1", "store", "runner", "sku-1", "purchase", T0)],
                [b"store:runner"],
            )
            await _until(
                lambda: recs.lookup("store", "runner") is not None, what="the runner's profile"
            )
            status, body = recs.recommend("store", "runner", 2, cold_start=False)
            assert status == 200
            assert [i["item_id"] for i in body["items"]] == ["sku-3", "sku-2"]
            assert body["items"][0]["category"] == "sport"
            await pipeline.stop_and_wait()

        asyncio.run(run())
    finally:
        stack.close()
    enriched = client.query("SELECT count() FROM documents FINAL").result_rows
    assert enriched == [(0,)], "catalogue items are not documents"
    dead = client.query(
        "SELECT reason FROM dead_letters FINAL WHERE source_topic = 'aimass.items'"
    ).result_rows
    assert len(dead) == 1 and "id" in dead[0][0]
