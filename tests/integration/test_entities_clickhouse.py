"""Entity mentions in embedded ClickHouse (chdb): ``entity_mentions`` and its hourly view.

Rows go in the way the sink writes them (``entity_mention_rows`` on hand-made enriched
records, the real ``ClickHouseWriter`` with its deduplication token), and come out through
the table, the ``top-entities`` and ``entity-trend`` named queries and ``stream-aimass query``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from stream_aimass.clickhouse.client import get_client
from stream_aimass.clickhouse.migrations import load_migrations, migrate
from stream_aimass.clickhouse.queries import run_named_query
from stream_aimass.settings import Settings
from stream_aimass.sink.rows import ENTITY_MENTION_COLUMNS, entity_mention_rows
from stream_aimass.sink.writer import ClickHouseWriter, InsertBatch

pytestmark = pytest.mark.integration

H1 = datetime(2026, 11, 5, 10, tzinfo=UTC)
H2 = H1 + timedelta(hours=1)
H3 = H1 + timedelta(hours=2)
EVER = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))
TOPIC = "aimass.enriched"

# Knowledge-base entities: id -> (label, name).
KB = {"company/apple": ("ORG", "Apple Inc."), "company/microsoft": ("ORG", "Microsoft")}
NIL = None


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def kb_entry(entity_id: str) -> tuple[str, str]:
    return KB.get(entity_id, ("ORG", entity_id.split("/")[-1].title()))


def mention(entity_id: str | None, start: int) -> dict[str, Any]:
    label, name = kb_entry(entity_id) if entity_id else ("ORG", None)
    text = name.split()[0] if name else "Zorblatt Ltd"
    return {
        "text": text,
        "start": start,
        "end": start + len(text),
        "label": label,
        "entity_id": entity_id,
        "name": name,
        "score": 0.75 if entity_id else 0.125,  # binary fractions: exact in Float32
    }


def enriched(
    doc_id: str,
    tenant: str,
    ts: datetime,
    mentions: list[tuple[str | None, int]],
    enriched_at: datetime | None = None,
) -> bytes:
    """An ``aimass.enriched`` record as the producer writes it, with the entity keys."""
    enriched_at = enriched_at or ts + timedelta(seconds=5)
    return orjson.dumps(
        {
            "id": doc_id,
            "tenant": tenant,
            "ts": ms(ts),
            "title": "",
            "lang": "en",
            "meta": {},
            "text_chars": 80,
            "tokens": 20,
            "categories": [{"label": "business", "score": 0.9}],
            "top_category": "business",
            "model": {"name": "all-MiniLM-L6-v2", "version": "a1b2c3d4e5f6"},
            "source": {
                "topic": "aimass.documents",
                "partition": 0,
                "offset": 1,
                "timestamp_ms": ms(ts) + 1000,
            },
            "enriched_at_ms": ms(enriched_at),
            "entities": [mention(entity_id, start) for entity_id, start in mentions],
            "entities_model": {
                "ner": {"name": "wikigold-ner", "version": "abc123def456"},
                "kb": {"name": "demo-kb", "version": "0123456789ab"},
            },
        }
    )


APPLE, MSFT = "company/apple", "company/microsoft"
# (doc_id, tenant, document ts, [(entity_id or NIL, start)]). globex's "a1" shares acme's doc
# id: document ids are unique per tenant only.
DOCS: list[tuple[str, str, datetime, list[tuple[str | None, int]]]] = [
    ("a1", "acme", H1 + timedelta(minutes=1), [(APPLE, 0), (APPLE, 30), (MSFT, 50), (NIL, 70)]),
    ("a2", "acme", H1 + timedelta(minutes=59), [(APPLE, 0)]),
    ("a3", "acme", H2 + timedelta(minutes=30), [(MSFT, 0), (NIL, 10)]),
    ("a1", "globex", H1 + timedelta(minutes=2), [(APPLE, 0)]),
    ("g2", "globex", H3, [(APPLE, 5), (APPLE, 20)]),
]
MENTIONS = sum(len(doc[3]) for doc in DOCS)


def mention_rows(docs: list[Any], first_offset: int = 0) -> list[list[Any]]:
    return [
        row
        for i, doc in enumerate(docs)
        for row in entity_mention_rows(enriched(*doc), TOPIC, 0, first_offset + i)
    ]


def insert(client: Any, rows: list[list[Any]], token: str) -> None:
    batch = InsertBatch("entity_mentions", ENTITY_MENTION_COLUMNS, rows, token)
    ClickHouseWriter(client).insert_sync(batch)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _hour(when: datetime) -> datetime:
    return when.replace(minute=0, second=0, microsecond=0)


def hourly(client: Any) -> dict[tuple[str, str, datetime], tuple[int, int, str, str]]:
    """entity_mentions_hourly merged: (tenant, entity, hour) -> mentions, documents, label, name."""
    rows = client.query(
        "SELECT tenant, entity_id, hour, uniqExactMerge(mentions), uniqExactMerge(documents),"
        " anyLast(label), anyLast(entity_name)"
        " FROM entity_mentions_hourly GROUP BY tenant, entity_id, hour"
    ).result_rows
    return {(t, e, _utc(h)): (m, d, label, name) for t, e, h, m, d, label, name in rows}


def expected_hourly(
    docs: list[Any],
) -> dict[tuple[str, str, datetime], tuple[int, int, str, str]]:
    spans: dict[tuple[str, str, datetime], set[tuple[str, int]]] = defaultdict(set)
    for doc_id, tenant, ts, mentions in docs:
        for entity_id, start in mentions:
            if entity_id is not NIL:
                spans[(tenant, entity_id, _hour(ts))].add((doc_id, start))
    return {
        key: (len(found), len({doc_id for doc_id, _ in found}), *kb_entry(key[1]))
        for key, found in spans.items()
    }


@pytest.fixture()
def client(settings: Settings) -> Any:
    client = get_client(settings)
    migrate(client)
    return client


# --------------------------------------------------------------------------- schema


def test_migrations_are_idempotent(settings: Settings) -> None:
    client = get_client(settings)
    assert "0007_entity_mentions.sql" in migrate(client)
    assert migrate(client) == []
    schema = "SELECT name, create_table_query FROM system.tables WHERE database = currentDatabase()"
    before = sorted(client.query(schema).result_rows)
    # A migration that failed half-way is run again from its first statement.
    (entities,) = [m for m in load_migrations() if m.name == "0007_entity_mentions.sql"]
    for statement in entities.statements():
        client.command(statement)
    assert sorted(client.query(schema).result_rows) == before
    names = {name for name, _ in before}
    assert {"entity_mentions", "entity_mentions_hourly", "entity_mentions_hourly_mv"} <= names


def test_the_hourly_view_starts_empty_with_no_backfill(client: Any) -> None:
    assert client.query("SELECT count() FROM entity_mentions_hourly").result_rows == [(0,)]


# --------------------------------------------------------------------------- entity_mentions


def test_rows_round_trip_into_entity_mentions(client: Any) -> None:
    insert(client, mention_rows(DOCS), "entity_mentions|aimass.enriched:0:0-4")
    got = client.query(
        "SELECT tenant, doc_id, ts, mention_start, mention_end, mention_text, label, entity_id,"
        " entity_name, linked, score, ner_model, ner_version, kb_name, kb_version,"
        " enriched_topic, enriched_partition, enriched_offset"
        " FROM entity_mentions FINAL ORDER BY tenant, doc_id, mention_start"
    ).result_rows
    want = sorted((tuple(row[:18]) for row in mention_rows(DOCS)), key=lambda r: (r[0], r[1], r[3]))
    assert [(*r[:2], _utc(r[2]), *r[3:]) for r in got] == want
    assert len(got) == MENTIONS
    nil = [r for r in got if r[0] == "acme" and r[1] == "a1" and r[3] == 70]
    assert [(r[5], r[7], r[8], r[9], r[10]) for r in nil] == [("Zorblatt Ltd", "", "", 0, 0.125)]


# --------------------------------------------------------------------------- the hourly view


def test_the_view_counts_distinct_mentions_and_documents_per_entity_and_hour(client: Any) -> None:
    insert(client, mention_rows(DOCS), "entity_mentions|aimass.enriched:0:0-4")
    got = hourly(client)
    assert got == expected_hourly(DOCS)
    assert got[("acme", APPLE, H1)][:2] == (3, 2)  # a1 twice, a2 once
    assert got[("globex", APPLE, H3)][:2] == (2, 1)


def test_each_batch_fires_the_view(client: Any) -> None:
    for i, doc in enumerate(DOCS):
        insert(client, mention_rows([doc], i), f"entity_mentions|aimass.enriched:0:{i}")
    assert hourly(client) == expected_hourly(DOCS)


def test_nil_mentions_are_stored_but_not_counted(client: Any) -> None:
    only_nil = [("n1", "acme", H1, [(NIL, 0), (NIL, 20)])]
    insert(client, mention_rows(only_nil), "entity_mentions|aimass.enriched:0:0")
    assert client.query("SELECT count() FROM entity_mentions FINAL").result_rows == [(2,)]
    assert client.query("SELECT count() FROM entity_mentions_hourly").result_rows == [(0,)]
    insert(client, mention_rows(DOCS, 1), "entity_mentions|aimass.enriched:0:1-5")
    assert "" not in {entity for _, entity, _ in hourly(client)}


def test_mentions_count_in_the_hour_the_document_was_written(client: Any) -> None:
    # Enriched (and stored) a day later: the trend still shows it when it was written.
    late = enriched("late", "acme", H1 + timedelta(minutes=5), [(APPLE, 0)], H1 + timedelta(days=1))
    insert(client, entity_mention_rows(late, TOPIC, 0, 0), "entity_mentions|aimass.enriched:0:0")
    assert list(hourly(client)) == [("acme", APPLE, H1)]


def test_a_retried_insert_with_the_same_token_is_not_counted_twice(client: Any) -> None:
    rows = mention_rows(DOCS)
    insert(client, rows, "entity_mentions|aimass.enriched:0:0-4")
    stored = client.query("SELECT count() FROM entity_mentions_hourly").result_rows
    for _ in range(2):  # retries after lost acknowledgements
        insert(client, rows, "entity_mentions|aimass.enriched:0:0-4")
    assert client.query("SELECT count() FROM entity_mentions").result_rows == [(MENTIONS,)]
    # The view's target dropped the retried blocks too (not merely counted them as distinct).
    assert client.query("SELECT count() FROM entity_mentions_hourly").result_rows == stored
    assert hourly(client) == expected_hourly(DOCS)


def test_a_redelivered_document_is_counted_once(client: Any) -> None:
    insert(client, mention_rows(DOCS), "entity_mentions|aimass.enriched:0:0-4")
    # After a crash before the commit the same records come back at other offsets, in
    # another batch, so with another token: ClickHouse cannot drop the insert.
    insert(client, mention_rows(DOCS[:3], 100), "entity_mentions|aimass.enriched:0:100-102")
    redelivered = sum(len(doc[3]) for doc in DOCS[:3])
    total = client.query("SELECT count() FROM entity_mentions").result_rows[0][0]
    assert total == MENTIONS + redelivered
    assert client.query("SELECT count() FROM entity_mentions FINAL").result_rows == [(MENTIONS,)]
    offsets = client.query(
        "SELECT DISTINCT enriched_offset FROM entity_mentions FINAL WHERE tenant = 'acme'"
    ).result_rows
    assert sorted(o for (o,) in offsets) == [100, 101, 102]  # the latest copy wins
    assert hourly(client) == expected_hourly(DOCS)


# --------------------------------------------------------------------------- named queries


def top_entities(
    client: Any, tenant: str = "", start: datetime = EVER[0], end: datetime = EVER[1]
) -> list[dict[str, Any]]:
    parameters = {"tenant": tenant, "from": start, "to": end}
    result = run_named_query(client, "top-entities", parameters)
    if result.rows:  # chdb names no columns for an empty result
        assert result.columns == ["entity_id", "entity_name", "label", "mentions", "documents"]
    return result.as_dicts()


def entity_trend(
    client: Any,
    entity: str,
    tenant: str = "",
    start: datetime = EVER[0],
    end: datetime = EVER[1],
) -> list[tuple[datetime, int, int]]:
    parameters = {"entity": entity, "tenant": tenant, "from": start, "to": end}
    result = run_named_query(client, "entity-trend", parameters)
    if result.rows:
        assert result.columns == ["hour", "mentions", "documents"]
    return [(_utc(r["hour"]), r["mentions"], r["documents"]) for r in result.as_dicts()]


def test_top_entities_ranks_by_mentions_with_tenant_and_time_filters(client: Any) -> None:
    insert(client, mention_rows(DOCS), "entity_mentions|aimass.enriched:0:0-4")
    apple = {"entity_id": APPLE, "entity_name": "Apple Inc.", "label": "ORG"}
    msft = {"entity_id": MSFT, "entity_name": "Microsoft", "label": "ORG"}
    # Every tenant: acme's a1 and globex's a1 are two documents.
    assert top_entities(client) == [
        {**apple, "mentions": 6, "documents": 4},
        {**msft, "mentions": 2, "documents": 2},
    ]
    assert top_entities(client, "acme") == [
        {**apple, "mentions": 3, "documents": 2},
        {**msft, "mentions": 2, "documents": 2},
    ]
    assert top_entities(client, "globex") == [{**apple, "mentions": 3, "documents": 2}]
    assert top_entities(client, "initech") == []
    # Hours overlapping [from, to): from in the middle of H1 keeps H1, to = H2 leaves H2 out.
    assert top_entities(client, "", H1 + timedelta(minutes=30), H2) == [
        {**apple, "mentions": 4, "documents": 3},
        {**msft, "mentions": 1, "documents": 1},
    ]
    assert top_entities(client, "acme", H2, H3) == [{**msft, "mentions": 1, "documents": 1}]
    assert top_entities(client, "", H3 + timedelta(hours=1), EVER[1]) == []


def test_top_entities_stops_at_twenty(client: Any) -> None:
    # Entity i is mentioned i + 1 times, in one document of its own.
    docs = [
        (f"d{i}", "acme", H1, [(f"company/c{i:02d}", 10 * n) for n in range(i + 1)])
        for i in range(25)
    ]
    insert(client, mention_rows(docs), "entity_mentions|aimass.enriched:0:0-24")
    got = top_entities(client)
    assert [r["entity_id"] for r in got] == [f"company/c{i:02d}" for i in range(24, 4, -1)]
    assert [r["mentions"] for r in got] == list(range(25, 5, -1))
    assert got[0]["entity_name"] == "C24"


def test_entity_trend_is_one_entity_per_hour_with_filters(client: Any) -> None:
    insert(client, mention_rows(DOCS), "entity_mentions|aimass.enriched:0:0-4")
    assert entity_trend(client, APPLE) == [(H1, 4, 3), (H3, 2, 1)]
    assert entity_trend(client, APPLE, "acme") == [(H1, 3, 2)]
    assert entity_trend(client, MSFT) == [(H1, 1, 1), (H2, 1, 1)]
    assert entity_trend(client, APPLE, "", H2, EVER[1]) == [(H3, 2, 1)]
    assert entity_trend(client, MSFT, "acme", H1 + timedelta(minutes=59), H2) == [(H1, 1, 1)]
    assert entity_trend(client, "company/nobody") == []
    assert entity_trend(client, "") == []  # NIL mentions have no trend


# --------------------------------------------------------------------------- the command line

runner = CliRunner()


def cli_settings(settings: Settings, chdb_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    # chdb opens one data path per process: the command must use the session's path.
    monkeypatch.setenv("AIMASS_CLICKHOUSE_DATABASE", settings.clickhouse_database)
    return ["--clickhouse", f"chdb://{chdb_path}", "--data-dir", str(settings.data_dir)]


def test_query_top_entities_json(
    client: Any, settings: Settings, chdb_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stream_aimass.cli.main import app

    insert(client, mention_rows(DOCS), "entity_mentions|aimass.enriched:0:0-4")
    common = cli_settings(settings, chdb_path, monkeypatch)
    result = runner.invoke(app, ["query", "top-entities", "--json", *common])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["query"] == "top-entities"
    assert [(r["entity_id"], r["mentions"], r["documents"]) for r in payload["rows"]] == [
        (APPLE, 6, 4),
        (MSFT, 2, 2),
    ]
    args = ["query", "top-entities", "--tenant", "acme", "--from", "2026-11-05T11:00"]
    result = runner.invoke(app, [*args, "--json", *common])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == [
        {
            "entity_id": MSFT,
            "entity_name": "Microsoft",
            "label": "ORG",
            "mentions": 1,
            "documents": 1,
        }
    ]


def test_query_entity_trend_json(
    client: Any, settings: Settings, chdb_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stream_aimass.cli.main import app

    insert(client, mention_rows(DOCS), "entity_mentions|aimass.enriched:0:0-4")
    common = cli_settings(settings, chdb_path, monkeypatch)
    args = ["query", "entity-trend", "--entity", APPLE, "--json", *common]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["query"] == "entity-trend"
    rows = [
        (_utc(datetime.fromisoformat(r["hour"])), r["mentions"], r["documents"])
        for r in payload["rows"]
    ]
    assert rows == [(H1, 4, 3), (H3, 2, 1)]
    result = runner.invoke(app, [*args, "--tenant", "globex", "--to", "2026-11-05T12:00"])
    assert result.exit_code == 0, result.output
    assert [r["mentions"] for r in json.loads(result.stdout)["rows"]] == [1]


@pytest.mark.parametrize("entity", [None, ""], ids=["absent", "empty"])
def test_entity_trend_without_an_entity_is_a_clear_error(
    entity: str | None, tmp_path: Path
) -> None:
    from stream_aimass.cli.main import app

    args = ["query", "entity-trend", "--data-dir", str(tmp_path)]
    if entity is not None:
        args += ["--entity", entity]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "query entity-trend needs --entity" in result.output


def test_queries_without_an_entity_parameter_ignore_the_option(
    client: Any, settings: Settings, chdb_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stream_aimass.cli.main import app

    common = cli_settings(settings, chdb_path, monkeypatch)
    args = ["query", "top-entities", "--entity", APPLE, "--json", *common]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "ignores --entity" in result.stderr
