"""Recommendations in embedded ClickHouse (chdb): the ``items`` and ``recommendations`` tables,
their usage view, and the ``recommendation-ctr`` and ``popular-items`` queries.

Rows go in the way the sink writes them (row builders on hand-made records, the real
``ClickHouseWriter`` with a deduplication token); the last test runs the sink role itself on
the embedded broker.
"""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from stream_aimass.clickhouse.client import get_client
from stream_aimass.clickhouse.migrations import migrate
from stream_aimass.clickhouse.queries import run_named_query
from stream_aimass.kafka.clients import make_producer
from stream_aimass.pipeline import Pipeline, Stack, open_clickhouse
from stream_aimass.records import Event, Source
from stream_aimass.settings import Settings
from stream_aimass.sink.item_rows import (
    ITEM_COLUMNS,
    RECOMMENDATION_COLUMNS,
    item_row,
    recommendation_row,
)
from stream_aimass.sink.rows import EVENT_COLUMNS, event_row
from stream_aimass.sink.writer import ClickHouseWriter, InsertBatch

pytestmark = pytest.mark.integration

H = datetime(2026, 11, 5, 10, tzinfo=UTC)
EVER = {
    "tenant": "",
    "from": datetime(1970, 1, 1, tzinfo=UTC),
    "to": datetime(2200, 1, 1, tzinfo=UTC),
}
VECTORS = "aimass.item-vectors"
RECS = "aimass.recommendations"


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def minutes(n: float) -> datetime:
    return H + timedelta(minutes=n)


def item_value(tenant: str, item_id: str, title: str, category: str, updated: datetime) -> bytes:
    return orjson.dumps(
        {
            "tenant": tenant,
            "item_id": item_id,
            "kind": "catalogue",
            "title": title,
            "category": category,
            "ts": ms(H),
            "embedding": {"dtype": "float16", "dim": 2, "b64": base64.b64encode(bytes(4)).decode()},
            "model": {"name": "all-MiniLM-L6-v2", "version": "abc123"},
            "updated_at_ms": ms(updated),
        }
    )


def rec_value(
    tenant: str, user_id: str, trigger: str, ts: datetime, items: list[str], **extra: Any
) -> bytes:
    return orjson.dumps(
        {
            "tenant": tenant,
            "user_id": user_id,
            "trigger_event_id": trigger,
            "items": [
                {"item_id": i, "score": 1 - n / 10, "rank": n + 1} for n, i in enumerate(items)
            ],
            "cold_start": not items,
            "k": 5,
            "model": {"name": "aimass-recs", "version": "1a2b3c"},
            "latency_ms": 12.5,
            "ts": ms(ts),
            "event_ts": ms(ts),  # the CTR query works in event time
            **extra,
        }
    )


def insert(client: Any, table: str, columns: list[str], rows: list[list[Any]], token: str) -> None:
    ClickHouseWriter(client).insert_sync(InsertBatch(table, columns, rows, token))


def insert_items(client: Any, values: list[bytes | None], keys: list[bytes], token: str) -> None:
    rows = [
        item_row(key, value, VECTORS, 0, n, ms(minutes(90 + n)))
        for n, (key, value) in enumerate(zip(keys, values, strict=True))
    ]
    insert(client, "items", ITEM_COLUMNS, rows, token)


def insert_recs(client: Any, values: list[bytes], token: str, *, ingested: datetime = H) -> None:
    rows = [[*recommendation_row(v, RECS, 0, n), ingested] for n, v in enumerate(values)]
    insert(client, "recommendations", [*RECOMMENDATION_COLUMNS, "ingested_at"], rows, token)


def insert_events(client: Any, events: list[tuple[str, str, str, str, datetime]]) -> None:
    """(tenant, user_id, item_id, type, ts) each."""
    rows = []
    for n, (tenant, user_id, item_id, kind, ts) in enumerate(events):
        source = Source("aimass.events", 0, n, ms(ts))
        rows.append(event_row(Event(f"e{n}", tenant, user_id, item_id, kind, ms(ts), source)))
    insert(client, "events", EVENT_COLUMNS, rows, f"events|{len(rows)}")


def query(client: Any, name: str, **parameters: Any) -> list[dict[str, Any]]:
    rows = run_named_query(client, name, {**EVER, **parameters}).as_dicts()
    for row in rows:
        if isinstance(row.get("hour"), datetime):
            hour = row["hour"]
            row["hour"] = hour.replace(tzinfo=UTC) if hour.tzinfo is None else hour
    return rows


@pytest.fixture()
def client(settings: Settings) -> Any:
    client = get_client(settings)
    migrate(client)
    return client


def test_migration_creates_the_tables_and_the_view(client: Any) -> None:
    names = {
        r[0]
        for r in client.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase()"
        ).result_rows
    }
    assert {"items", "recommendations", "usage_recommendations_mv"} <= names
    (version,) = client.query("SELECT max(version) FROM schema_migrations").result_rows[0]
    assert version >= 8


# ------------------------------------------------------------------------ recommendation-ctr

# acme, hour H:
#   r1 (u1, ts H+10) recommends i1..i5: u1 clicked i1 only before (H+5), i2 after (H+20,
#      twice), only viewed i3 after, clicked i5 exactly at H+10 (not after); u2 clicked i4
#      after (another user); globex's u1 clicked i5 after (another tenant). 1 of 5 clicked.
#   r2 (u2, ts H+30) recommends i4, i6: u2's click on i4 (H+20) came before r2; u2 clicked
#      i6 at H+120, in a later hour, which still counts. 1 of 2 clicked.
# acme, hour H+1:
#   r3 (u1, ts H+65) recommends i2, i7: u1's clicks on i2 came before. 0 of 2.
#   r4 (u3, ts H+70) is a cold start with no items: a recommendation of 0 items.
# globex, hour H:
#   g1 (u1, ts H+15) recommends i5, i1: u1 clicked i5 at H+20. 1 of 2.
RECOMMENDATIONS = [
    rec_value("acme", "u1", "t1", minutes(10), ["i1", "i2", "i3", "i4", "i5"]),
    rec_value("acme", "u2", "t2", minutes(30), ["i4", "i6"]),
    rec_value("acme", "u1", "t3", minutes(65), ["i2", "i7"]),
    rec_value("acme", "u3", "t4", minutes(70), []),
    rec_value("globex", "u1", "g1", minutes(15), ["i5", "i1"]),
]
EVENTS = [
    ("acme", "u1", "i1", "click", minutes(5)),
    ("acme", "u1", "i2", "click", minutes(20)),
    ("acme", "u1", "i2", "click", minutes(25)),
    ("acme", "u1", "i3", "view", minutes(20)),
    ("acme", "u1", "i5", "click", minutes(10)),
    ("acme", "u2", "i4", "click", minutes(20)),
    ("acme", "u2", "i6", "click", minutes(120)),
    ("globex", "u1", "i5", "click", minutes(20)),
]
CTR = [
    {"tenant": "acme", "hour": H, "recommendations": 2, "items_recommended": 7,
     "items_clicked": 2, "ctr": round(2 / 7, 4)},
    {"tenant": "acme", "hour": H + timedelta(hours=1), "recommendations": 2,
     "items_recommended": 2, "items_clicked": 0, "ctr": 0.0},
    {"tenant": "globex", "hour": H, "recommendations": 1, "items_recommended": 2,
     "items_clicked": 1, "ctr": 0.5},
]  # fmt: skip


def test_recommendation_ctr_counts_later_clicks_of_the_same_user_and_tenant(client: Any) -> None:
    insert_recs(client, RECOMMENDATIONS, "recommendations|aimass.recommendations:0:0-4")
    insert_events(client, EVENTS)
    assert query(client, "recommendation-ctr") == CTR


def test_recommendation_ctr_is_deduplicated(client: Any) -> None:
    insert_recs(client, RECOMMENDATIONS, "recommendations|aimass.recommendations:0:0-4")
    # Re-delivered after a crash: other offsets, another token, collapsed by FINAL.
    insert_recs(client, RECOMMENDATIONS[:2], "recommendations|aimass.recommendations:0:100-101")
    insert_events(client, EVENTS)
    insert_events(client, EVENTS[:3])  # the same event ids again
    assert client.query("SELECT count() FROM recommendations").result_rows == [(7,)]
    assert query(client, "recommendation-ctr") == CTR


def test_recommendation_ctr_filters_by_tenant_and_time(client: Any) -> None:
    insert_recs(client, RECOMMENDATIONS, "recommendations|aimass.recommendations:0:0-4")
    insert_events(client, EVENTS)
    assert query(client, "recommendation-ctr", tenant="acme") == CTR[:2]
    assert query(client, "recommendation-ctr", tenant="initech") == []
    # The hours that overlap [from, to): from inside H+1 keeps all of H+1, not H.
    late = query(client, "recommendation-ctr", **{"from": minutes(90)})
    assert late == [CTR[1]]
    # to = H+1 leaves H+1 out; a click after `to` still counts for a recommendation before it.
    early = query(client, "recommendation-ctr", **{"to": minutes(60)})
    assert early == [CTR[0], CTR[2]]


# ----------------------------------------------------------------------------- popular-items

ITEM_KEYS = [b"acme:i1", b"acme:i2", b"acme:i3", b"globex:i1", b"acme:i2", b"acme:i2", b"acme:i3"]
ITEM_VALUES: list[bytes | None] = [
    item_value("acme", "i1", "Cup final", "sports", minutes(1)),
    item_value("acme", "i2", "Old title", "business", minutes(1)),
    item_value("acme", "i3", "Gone soon", "health", minutes(1)),
    item_value("globex", "i1", "Another i1", "health", minutes(1)),
    item_value("acme", "i2", "Rate cut", "business", minutes(3)),  # a newer version
    item_value("acme", "i2", "Stale", "business", minutes(2)),  # older, arriving last
    None,  # acme:i3 deleted (at its Kafka timestamp, H+96)
]
POPULAR_EVENTS = [
    # acme i1: 3 views, 1 purchase by u1..u3 -> score 3 + 5 = 8
    ("acme", "u1", "i1", "view", minutes(1)),
    ("acme", "u2", "i1", "view", minutes(2)),
    ("acme", "u3", "i1", "view", minutes(3)),
    ("acme", "u1", "i1", "purchase", minutes(4)),
    # acme i2: 2 clicks, 1 like by u1, u2 -> score 4 + 3 = 7
    ("acme", "u1", "i2", "click", minutes(5)),
    ("acme", "u2", "i2", "click", minutes(6)),
    ("acme", "u1", "i2", "like", minutes(7)),
    # acme i3 is deleted: left out however popular
    ("acme", "u1", "i3", "purchase", minutes(8)),
    ("acme", "u2", "i3", "purchase", minutes(9)),
    # acme i4 was never on item-vectors: kept, without title or category -> score 3
    ("acme", "u4", "i4", "like", minutes(10)),
    # acme i5: before the window of the time-filter check below -> score 1
    ("acme", "u1", "i5", "view", minutes(-30)),
    # globex i1: 1 click -> score 2
    ("globex", "u9", "i1", "click", minutes(11)),
]


def popular(tenant: str, item_id: str, title: str, category: str, *counts: int) -> dict[str, Any]:
    events, views, clicks, likes, purchases, users, score = counts
    return {
        "tenant": tenant, "item_id": item_id, "title": title, "category": category,
        "events": events, "views": views, "clicks": clicks, "likes": likes,
        "purchases": purchases, "users": users, "score": score,
    }  # fmt: skip


POPULAR = [
    popular("acme", "i1", "Cup final", "sports", 4, 3, 0, 0, 1, 3, 8),
    popular("acme", "i2", "Rate cut", "business", 3, 0, 2, 1, 0, 2, 7),
    popular("acme", "i4", "", "", 1, 0, 0, 1, 0, 1, 3),
    popular("acme", "i5", "", "", 1, 1, 0, 0, 0, 1, 1),
    popular("globex", "i1", "Another i1", "health", 1, 0, 1, 0, 0, 1, 2),
]


def test_popular_items_ranks_by_weighted_interactions(client: Any) -> None:
    insert_items(client, ITEM_VALUES, ITEM_KEYS, "items|aimass.item-vectors:0:0-6")
    insert_events(client, POPULAR_EVENTS)
    assert query(client, "popular-items") == POPULAR
    assert query(client, "popular-items", tenant="globex") == POPULAR[4:]
    window = query(client, "popular-items", tenant="acme", **{"from": H, "to": minutes(10)})
    assert window == POPULAR[:2]  # i4 at H+10 is at `to` (exclusive), i5 before `from`


def test_popular_items_keeps_the_top_20_per_tenant(client: Any) -> None:
    events = [("acme", "u1", f"i{n:02d}", "view", minutes(n)) for n in range(25)]
    events += [("acme", "u2", f"i{n:02d}", "click", minutes(n)) for n in range(5)]
    events += [("globex", "u1", "g1", "view", minutes(1))]
    insert_events(client, events)
    rows = query(client, "popular-items")
    acme = [r["item_id"] for r in rows if r["tenant"] == "acme"]
    assert acme[:5] == ["i00", "i01", "i02", "i03", "i04"]  # score 3, then by item_id
    assert acme[5:] == [f"i{n:02d}" for n in range(5, 20)]
    assert [r["item_id"] for r in rows if r["tenant"] == "globex"] == ["g1"]


def test_tombstones_mark_items_deleted_under_final(client: Any) -> None:
    insert_items(client, ITEM_VALUES, ITEM_KEYS, "items|aimass.item-vectors:0:0-6")
    latest = "SELECT tenant, item_id, title, deleted FROM items FINAL ORDER BY tenant, item_id"
    assert client.query(latest).result_rows == [
        ("acme", "i1", "Cup final", 0),
        ("acme", "i2", "Rate cut", 0),  # the newest updated_at wins, not the last insert
        ("acme", "i3", "", 1),
        ("globex", "i1", "Another i1", 0),
    ]
    # Published again after the deletion (a newer updated_at): the item is back.
    value = item_value("acme", "i3", "Back again", "health", minutes(200))
    insert_items(client, [value], [b"acme:i3"], "items|aimass.item-vectors:0:7")
    live = "SELECT title FROM items FINAL WHERE item_id = 'i3' AND tenant = 'acme' AND NOT deleted"
    assert client.query(live).result_rows == [("Back again",)]


def test_a_retried_item_insert_is_dropped(client: Any) -> None:
    insert_items(client, ITEM_VALUES, ITEM_KEYS, "items|aimass.item-vectors:0:0-6")
    # (optimize_on_insert already collapsed the block's versions of an item: 4 rows, not 7.)
    once = client.query("SELECT count() FROM items").result_rows
    for _ in range(2):
        insert_items(client, ITEM_VALUES, ITEM_KEYS, "items|aimass.item-vectors:0:0-6")
    assert client.query("SELECT count() FROM items").result_rows == once == [(4,)]


# ------------------------------------------------------------------------------------ usage


def usage_recommendations(client: Any) -> dict[tuple[str, datetime], int]:
    return {(r["tenant"], r["hour"]): r["recommendations"] for r in query(client, "usage")}


def test_the_usage_view_counts_recommendations_per_tenant_and_hour(client: Any) -> None:
    insert_recs(client, RECOMMENDATIONS[:3], "recommendations|0", ingested=minutes(5))
    insert_recs(client, RECOMMENDATIONS[3:], "recommendations|1", ingested=minutes(70))
    assert usage_recommendations(client) == {
        ("acme", H): 3,  # billed in the hour stored, not the recommendation's ts
        ("acme", H + timedelta(hours=1)): 1,
        ("globex", H + timedelta(hours=1)): 1,
    }


def test_a_retried_recommendation_insert_is_not_counted_twice(client: Any) -> None:
    for _ in range(3):  # the first try and two retries after lost acknowledgements
        insert_recs(client, RECOMMENDATIONS, "recommendations|aimass.recommendations:0:0-4")
    assert client.query("SELECT count() FROM recommendations").result_rows == [(5,)]
    assert usage_recommendations(client) == {("acme", H): 4, ("globex", H): 1}


def test_a_redelivered_recommendation_is_counted_again(client: Any) -> None:
    # Documented in 0008: usage_hourly.recommendations is a plain sum.
    insert_recs(client, RECOMMENDATIONS, "recommendations|aimass.recommendations:0:0-4")
    insert_recs(client, RECOMMENDATIONS[:1], "recommendations|aimass.recommendations:0:100")
    assert client.query("SELECT count() FROM recommendations FINAL").result_rows == [(5,)]
    assert usage_recommendations(client) == {("acme", H): 5, ("globex", H): 1}


# ------------------------------------------------------------------- the sink role, end to end


async def _produce(bootstrap: str, messages: list[tuple[str, bytes | None, bytes | None]]) -> None:
    producer = make_producer(Settings(), bootstrap)
    await producer.start()
    try:
        for topic, key, value in messages:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def _sink_until_stored(pipeline: Pipeline, wanted: dict[str, int], timeout: float) -> None:
    await pipeline.start()
    assert pipeline.sink is not None
    sink = pipeline.sink
    deadline = time.monotonic() + timeout
    while any(sink.stored(table) < n for table, n in wanted.items()):
        stored = {table: sink.stored(table) for table in wanted}
        assert time.monotonic() < deadline, f"stored only {stored} of {wanted}"
        await asyncio.sleep(0.1)
    await pipeline.stop_and_wait()


def test_the_sink_role_stores_item_vectors_and_recommendations(settings: Settings) -> None:
    vectors = settings.topic_item_vectors
    recs = settings.topic_recommendations
    # The tombstone's updated_at is its Kafka timestamp (now): the item's must be older.
    updated = datetime.now(UTC) - timedelta(hours=1)
    messages: list[tuple[str, bytes | None, bytes | None]] = [
        (vectors, b"acme:i1", item_value("acme", "i1", "Cup final", "sports", updated)),
        (vectors, b"acme:i2", item_value("acme", "i2", "Rate cut", "business", updated)),
        (vectors, b"globex:i1", item_value("globex", "i1", "Another", "health", updated)),
        (vectors, b"acme:i2", None),  # deleted
        (vectors, b"acme:bad", b'{"tenant": "acme", "item_id": "bad"}'),  # broken
        (recs, b"acme:u1", RECOMMENDATIONS[0]),
        (recs, b"globex:u1", RECOMMENDATIONS[4]),
        (recs, b"acme:u9", b"not json"),  # broken
    ]
    stack = Stack.start(settings)
    try:
        client = open_clickhouse(settings)
        asyncio.run(_produce(stack.bootstrap, messages))
        pipeline = Pipeline(settings, stack.bootstrap, "sink", clickhouse=client)
        wanted = {"items": 4, "recommendations": 2, "dead_letters": 2}
        asyncio.run(_sink_until_stored(pipeline, wanted, timeout=120))
    finally:
        stack.close()

    items = "SELECT tenant, item_id, title, deleted FROM items FINAL ORDER BY tenant, item_id"
    assert client.query(items).result_rows == [
        ("acme", "i1", "Cup final", 0),
        ("acme", "i2", "", 1),
        ("globex", "i1", "Another", 0),
    ]
    stored = client.query(
        "SELECT tenant, user_id, trigger_event_id, item_ids, source_topic FROM recommendations"
        " FINAL ORDER BY tenant"
    ).result_rows
    assert stored == [
        ("acme", "u1", "t1", ["i1", "i2", "i3", "i4", "i5"], recs),
        ("globex", "u1", "g1", ["i5", "i1"], recs),
    ]
    dead = client.query(
        "SELECT source_topic, stage, error_type, reason, raw_b64 FROM dead_letters FINAL"
        " ORDER BY source_topic"
    ).result_rows
    assert [(topic, stage, kind) for topic, stage, kind, _, _ in dead] == [
        (vectors, "sink", "RowError"),
        (recs, "sink", "RowError"),
    ]
    assert dead[0][3] == "item vector is malformed: KeyError: 'kind'"
    assert dead[0][4] == base64.b64encode(messages[4][2] or b"").decode()
    assert dead[1][3].startswith("recommendation is malformed: JSONDecodeError")
    usage = query(client, "usage")
    assert sum(r["recommendations"] for r in usage) == 2
