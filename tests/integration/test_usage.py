"""Usage metering in embedded ClickHouse (chdb): materialized views into ``usage_hourly``.

Rows go in the way the sink writes them (row builders on hand-made enriched records, the
real ``ClickHouseWriter`` with its deduplication token), and come out through the ``usage``
named query and the ``stream-aimass query usage`` command.
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
from stream_aimass.clickhouse.migrations import migrate
from stream_aimass.clickhouse.queries import run_named_query
from stream_aimass.records import Event, Source
from stream_aimass.settings import Settings
from stream_aimass.sink.rows import DOCUMENT_COLUMNS, EVENT_COLUMNS, document_row, event_row
from stream_aimass.sink.writer import ClickHouseWriter, InsertBatch

pytestmark = pytest.mark.integration

H1 = datetime(2026, 11, 5, 10, tzinfo=UTC)
H2 = H1 + timedelta(hours=1)
H3 = H1 + timedelta(hours=2)
EVER = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def enriched(
    doc_id: str, tenant: str, enriched_at: datetime, tokens: int, compute_ms: float
) -> bytes:
    """An ``aimass.enriched`` record as the producer writes it, with the metering keys."""
    return orjson.dumps(
        {
            "id": doc_id,
            "tenant": tenant,
            "ts": ms(enriched_at) - 5000,
            "title": "",
            "lang": "en",
            "meta": {},
            "text_chars": 40,
            "tokens": tokens,
            "categories": [{"label": "sports", "score": 0.9}],
            "top_category": "sports",
            "model": {"name": "all-MiniLM-L6-v2", "version": "a1b2c3d4e5f6"},
            "source": {
                "topic": "aimass.documents",
                "partition": 0,
                "offset": 1,
                "timestamp_ms": ms(enriched_at) - 4000,
            },
            "enriched_at_ms": ms(enriched_at),
            "compute_ms": compute_ms,
            "models": {"all-MiniLM-L6-v2": "a1b2c3d4e5f6", "banking77": "0f9e8d7c6b5a"},
        }
    )


# (doc_id, tenant, enriched_at, tokens, compute_ms); compute_ms are binary fractions, so the
# Float32 column and the Float64 sum hold them exactly.
DOCS = [
    ("a1", "acme", H1 + timedelta(minutes=1), 10, 12.5),
    ("a2", "acme", H1 + timedelta(minutes=59), 20, 0.25),
    ("a3", "acme", H2 + timedelta(minutes=30), 30, 7.75),
    ("g1", "globex", H1 + timedelta(minutes=2), 5, 1.5),
    ("g2", "globex", H3, 7, 2.0),
]
# (event_id, tenant, ingested_at)
EVENTS = [
    ("e1", "acme", H1 + timedelta(minutes=3)),
    ("e2", "acme", H1 + timedelta(minutes=4)),
    ("e3", "acme", H3 + timedelta(minutes=5)),
    ("e4", "globex", H2),
]


def document_rows(docs: list[Any], first_offset: int = 0) -> list[list[Any]]:
    return [
        document_row(enriched(*doc), "aimass.enriched", 0, first_offset + i)
        for i, doc in enumerate(docs)
    ]


def event_rows(events: list[Any], first_offset: int = 0) -> list[list[Any]]:
    """``events`` rows with their ingestion time set, so each lands in a known hour."""
    rows = []
    for i, (event_id, tenant, ingested_at) in enumerate(events):
        source = Source("aimass.events", 0, first_offset + i, ms(ingested_at))
        event = Event(event_id, tenant, "u1", "i1", "view", ms(ingested_at) - 1000, source)
        rows.append([*event_row(event), ingested_at])
    return rows


def insert(client: Any, table: str, rows: list[list[Any]], token: str) -> None:
    columns = DOCUMENT_COLUMNS if table == "documents" else [*EVENT_COLUMNS, "ingested_at"]
    ClickHouseWriter(client).insert_sync(InsertBatch(table, columns, rows, token))


def usage(
    client: Any, tenant: str = "", start: datetime = EVER[0], end: datetime = EVER[1]
) -> dict[tuple[str, datetime], dict[str, Any]]:
    result = run_named_query(client, "usage", {"tenant": tenant, "from": start, "to": end})
    if result.rows:  # chdb names no columns for an empty result
        assert result.columns == [
            "tenant", "hour", "documents", "tokens", "events", "recommendations", "compute_ms"
        ]  # fmt: skip
    return {(r["tenant"], _utc(r["hour"])): r for r in result.as_dicts()}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def expected(docs: list[Any], events: list[Any]) -> dict[tuple[str, datetime], dict[str, Any]]:
    totals: dict[tuple[str, datetime], dict[str, Any]] = defaultdict(
        lambda: {"documents": set(), "tokens": 0, "events": set(), "compute_ms": 0.0}
    )
    for doc_id, tenant, enriched_at, tokens, compute_ms in docs:
        bucket = totals[(tenant, enriched_at.replace(minute=0, second=0, microsecond=0))]
        bucket["documents"].add(doc_id)
        bucket["tokens"] += tokens
        bucket["compute_ms"] += compute_ms
    for event_id, tenant, ingested_at in events:
        totals[(tenant, ingested_at.replace(minute=0, second=0, microsecond=0))]["events"].add(
            event_id
        )
    return {
        (tenant, hour): {
            "tenant": tenant,
            "hour": hour,
            "documents": len(t["documents"]),
            "tokens": t["tokens"],
            "events": len(t["events"]),
            "recommendations": 0,
            "compute_ms": t["compute_ms"],
        }
        for (tenant, hour), t in totals.items()
    }


def normalised(rows: dict[tuple[str, datetime], dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {key: {**row, "hour": _utc(row["hour"])} for key, row in rows.items()}


@pytest.fixture()
def client(settings: Settings) -> Any:
    client = get_client(settings)
    migrate(client)
    return client


def test_usage_adds_up_per_tenant_and_hour(client: Any) -> None:
    insert(client, "documents", document_rows(DOCS), "documents|aimass.enriched:0:0-4")
    insert(client, "events", event_rows(EVENTS), "events|aimass.events:0:0-3")
    got = normalised(usage(client))
    assert got == expected(DOCS, EVENTS)
    assert list(got) == sorted(got)  # ordered by tenant, hour
    assert sum(r["tokens"] for r in got.values()) == sum(d[3] for d in DOCS)
    assert sum(r["compute_ms"] for r in got.values()) == sum(d[4] for d in DOCS)


def test_each_batch_fires_the_views(client: Any) -> None:
    for i, doc in enumerate(DOCS):
        insert(client, "documents", document_rows([doc], i), f"documents|aimass.enriched:0:{i}")
    for i, event in enumerate(EVENTS):
        insert(client, "events", event_rows([event], i), f"events|aimass.events:0:{i}")
    assert normalised(usage(client)) == expected(DOCS, EVENTS)


def test_a_retried_insert_with_the_same_token_is_not_counted_twice(client: Any) -> None:
    docs, events = document_rows(DOCS), event_rows(EVENTS)
    for _ in range(3):  # the first try and two retries after lost acknowledgements
        insert(client, "documents", docs, "documents|aimass.enriched:0:0-4")
        insert(client, "events", events, "events|aimass.events:0:0-3")
    assert client.query("SELECT count() FROM documents").result_rows[0][0] == len(DOCS)
    assert client.query("SELECT count() FROM events").result_rows[0][0] == len(EVENTS)
    assert normalised(usage(client)) == expected(DOCS, EVENTS)


def test_the_same_token_on_two_source_tables_counts_both(client: Any) -> None:
    # Each view derives its own block id from the token: no collision in usage_hourly.
    insert(client, "documents", document_rows(DOCS), "same")
    insert(client, "events", event_rows(EVENTS), "same")
    assert normalised(usage(client)) == expected(DOCS, EVENTS)


def test_a_redelivered_document_is_billed_once(client: Any) -> None:
    insert(client, "documents", document_rows(DOCS), "documents|aimass.enriched:0:0-4")
    # After a crash before the commit the same records come back at other offsets, in
    # another batch, so with another token: ClickHouse cannot drop the insert.
    insert(client, "documents", document_rows(DOCS[:3], 100), "documents|aimass.enriched:0:100")
    insert(client, "events", event_rows(EVENTS), "events|aimass.events:0:0-3")
    insert(client, "events", event_rows(EVENTS, 100), "events|aimass.events:0:100-103")
    got = normalised(usage(client))
    want = expected(DOCS, EVENTS)
    assert {k: (r["documents"], r["events"]) for k, r in got.items()} == {
        k: (r["documents"], r["events"]) for k, r in want.items()
    }
    # Tokens and compute time are billed once per document version (the usage_documents
    # ledger, 0009_versions.sql): the re-delivered copies add nothing.
    acme_h1 = got[("acme", H1)]
    assert (acme_h1["tokens"], acme_h1["compute_ms"]) == (10 + 20, 12.5 + 0.25)
    assert got == want


def test_an_updated_document_bills_each_version_once(client: Any) -> None:
    """A new version is new work (billed); its re-delivery is not (billed once)."""
    insert(client, "documents", document_rows(DOCS[:1]), "documents|aimass.enriched:0:0")
    rec = orjson.loads(enriched(*DOCS[0]))
    rec["source"]["offset"] = 2  # the update: the next message of the same document
    rec["tokens"] = 11
    update = document_row(orjson.dumps(rec), "aimass.enriched", 0, 5)
    insert(client, "documents", [update], "documents|aimass.enriched:0:5")
    insert(client, "documents", [update], "documents|aimass.enriched:0:9")  # re-delivered
    acme_h1 = normalised(usage(client))[("acme", H1)]
    assert (acme_h1["documents"], acme_h1["tokens"]) == (1, 10 + 11)


def test_usage_filters_by_tenant_and_time(client: Any) -> None:
    insert(client, "documents", document_rows(DOCS), "documents|aimass.enriched:0:0-4")
    insert(client, "events", event_rows(EVENTS), "events|aimass.events:0:0-3")
    everything = normalised(usage(client))
    assert {t for t, _ in everything} == {"acme", "globex"}
    acme = normalised(usage(client, "acme"))
    assert acme == {k: v for k, v in everything.items() if k[0] == "acme"}
    assert usage(client, "initech") == {}
    # Hours overlapping [from, to): from in the middle of H1 keeps H1, to = H3 leaves H3 out.
    window = normalised(usage(client, "", H1 + timedelta(minutes=30), H3))
    assert set(window) == {("acme", H1), ("acme", H2), ("globex", H1), ("globex", H2)}
    assert set(normalised(usage(client, "acme", H2, H2 + timedelta(hours=1)))) == {("acme", H2)}
    assert usage(client, "", H3 + timedelta(hours=1), EVER[1]) == {}


def test_events_are_billed_in_the_hour_they_were_stored(client: Any) -> None:
    before = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    source = Source("aimass.events", 0, 0, 0)
    old = [
        event_row(Event(f"old-{i}", "acme", "u", "i", "view", 86_400_000, source)) for i in range(3)
    ]
    ClickHouseWriter(client).insert_sync(InsertBatch("events", EVENT_COLUMNS, old, "events|x"))
    after = datetime.now(UTC)
    got = normalised(usage(client, "acme"))
    assert sum(r["events"] for r in got.values()) == 3
    assert all(before <= hour <= after for _, hour in got)  # not 1970, the event's ts


def test_usage_starts_empty_and_recommendations_stay_zero(client: Any) -> None:
    assert usage(client) == {}
    insert(client, "documents", document_rows(DOCS[:1]), "d")
    assert [r["recommendations"] for r in usage(client).values()] == [0]


# --------------------------------------------------------------------------- the command line

runner = CliRunner()


def cli_settings(settings: Settings, chdb_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    # chdb opens one data path per process: the command must use the session's path.
    monkeypatch.setenv("AIMASS_CLICKHOUSE_DATABASE", settings.clickhouse_database)
    return ["--clickhouse", f"chdb://{chdb_path}", "--data-dir", str(settings.data_dir)]


def test_query_usage_json(
    client: Any, settings: Settings, chdb_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stream_aimass.cli.main import app

    insert(client, "documents", document_rows(DOCS), "documents|aimass.enriched:0:0-4")
    insert(client, "events", event_rows(EVENTS), "events|aimass.events:0:0-3")
    common = cli_settings(settings, chdb_path, monkeypatch)
    args = ["query", "usage", "--tenant", "acme", "--from", "2026-11-01", "--to", "2026-12-01"]
    result = runner.invoke(app, [*args, "--json", *common])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["query"] == "usage"
    want = [r for k, r in sorted(expected(DOCS, EVENTS).items()) if k[0] == "acme"]
    assert [{**r, "hour": _utc(datetime.fromisoformat(r["hour"]))} for r in payload["rows"]] == want
    # A zoned bound: 11:30+01:00 is 10:30 UTC, inside H1.
    zoned = ["query", "usage", "--from", "2026-11-05T11:30:00+01:00", "--to", "2026-11-05T11:00"]
    result = runner.invoke(app, [*zoned, "--json", *common])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert {(r["tenant"], _utc(datetime.fromisoformat(r["hour"]))) for r in rows} == {
        ("acme", H1),
        ("globex", H1),
    }


def test_queries_without_parameters_ignore_the_options(
    client: Any, settings: Settings, chdb_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stream_aimass.cli.main import app

    insert(client, "documents", document_rows(DOCS), "documents|aimass.enriched:0:0-4")
    common = cli_settings(settings, chdb_path, monkeypatch)
    result = runner.invoke(app, ["query", "documents-count", "--json", "--tenant", "acme", *common])
    assert result.exit_code == 0, result.output
    assert {r["tenant"] for r in json.loads(result.stdout)["rows"]} == {"acme", "globex"}
    assert "ignores --tenant" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "yesterday"], "--from 'yesterday' is not an ISO date"),
        (["--to", "2026-13-01"], "--to '2026-13-01' is not an ISO date"),
        (["--from", "2026-12-01", "--to", "2026-11-01"], "is not before --to"),
    ],
)
def test_bad_time_bounds_are_clear_errors(args: list[str], message: str, tmp_path: Path) -> None:
    from stream_aimass.cli.main import app

    result = runner.invoke(app, ["query", "usage", *args, "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert message in result.output
