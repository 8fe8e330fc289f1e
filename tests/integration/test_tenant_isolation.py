"""Tenant isolation: every table keyed by tenant, per-tenant read users (SQL checked by
ClickHouse's own parser on chdb; chdb itself has no users), and a worker whose /v1/
endpoints need a per-tenant API key and never answer with another tenant's data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from stream_aimass.cli.main import app
from stream_aimass.clickhouse.client import get_client
from stream_aimass.clickhouse.migrations import MIGRATION_STEPS_TABLE, MIGRATIONS_TABLE, migrate
from stream_aimass.clickhouse.tenants import (
    ALL_TENANTS_POLICY,
    CHDB_SKIPPED,
    password_sha256,
    render_tenant_reader,
    statements,
    tables_without_tenant,
    tenant_tables,
)
from stream_aimass.settings import Settings
from stream_aimass.testing import (
    BrokerProcess,
    WorkerProcess,
    cli,
    produce,
    produce_documents,
    start_worker,
    wait_ready,
)
from stream_aimass.tools.corpus import generate_documents

pytestmark = pytest.mark.integration

# Tables that are not tenant data, and why.
NOT_TENANT_KEYED = {
    MIGRATIONS_TABLE: "migration bookkeeping",
    MIGRATION_STEPS_TABLE: "migration bookkeeping",
    # Messages that could not be decoded: their tenant is unknown or untrusted. Ops data,
    # never granted to tenant readers.
    "dead_letters": "undecodable messages of any tenant",
}
TENANT_TABLES = {
    "classifications", "documents", "entity_mentions", "entity_mentions_hourly", "events",
    "items", "pii_findings", "recommendations", "usage_documents", "usage_hourly",
}  # fmt: skip


def _migrated(settings: Settings) -> tuple[Any, str]:
    client = get_client(settings)
    migrate(client)
    return client, settings.clickhouse_database


def test_every_table_and_view_target_is_keyed_by_tenant_first(settings: Settings) -> None:
    client, db = _migrated(settings)
    tables = client.query(
        "SELECT name, engine, sorting_key, create_table_query FROM system.tables "
        "WHERE database = {db:String} ORDER BY name",
        parameters={"db": db},
    ).result_rows
    columns: dict[str, list[str]] = {}
    for table, column in client.query(
        "SELECT table, name FROM system.columns WHERE database = {db:String} ORDER BY position",
        parameters={"db": db},
    ).result_rows:
        columns.setdefault(table, []).append(column)
    keyed, views = set(), 0
    for name, engine, sorting_key, create in tables:
        if engine == "MaterializedView":
            views += 1
            target = re.search(r"\bTO\s+`?[\w.-]+`?\.`?([\w-]+)`?", create)
            assert target, create
            assert target.group(1) in TENANT_TABLES, f"{name} feeds {target.group(1)}"
            assert "tenant" in columns[name], f"{name} selects no tenant"
            continue
        if name in NOT_TENANT_KEYED:
            assert "tenant" not in columns[name], f"{name} has a tenant column now: key it"
            continue
        assert "tenant" in columns[name], f"{name} ({engine}) has no tenant column"
        first = sorting_key.split(",")[0].strip()
        assert first == "tenant", f"{name}: sorting key {sorting_key!r} does not start with it"
        keyed.add(name)
    assert keyed == TENANT_TABLES, "a new table: add it here once it is tenant-keyed"
    # usage_documents_mv, usage_documents_ledger_mv, usage_events_mv, usage_recommendations_mv,
    # entity_mentions_hourly_mv
    assert views == 5


def test_tenant_reader_sql_covers_every_tenant_table_and_clickhouse_parses_it(
    settings: Settings,
) -> None:
    client, db = _migrated(settings)
    tables = tenant_tables(client, db)
    assert set(tables) == TENANT_TABLES
    assert set(tables_without_tenant(client, db)) == set(NOT_TENANT_KEYED)
    sql = render_tenant_reader("eu.acme-1", db, tables, password_hash=password_sha256("pw"))
    parsed = []
    for statement in statements(sql):
        # ClickHouse's own parser (formatQuery): a syntax error raises here.
        formatted = client.query(
            "SELECT formatQuery({q:String})", parameters={"q": statement}
        ).result_rows[0][0]
        parsed.append(formatted)
    for table in tables:
        policies = [p for p in parsed if "ROW POLICY" in p and f"ON {db}.{table} " in p]
        assert len(policies) == 3, (table, policies)
        assert any(ALL_TENANTS_POLICY in p and "TO ALL" in p for p in policies)
        assert any("RESTRICTIVE" in p and "tenant = 'eu.acme-1'" in p for p in policies)
    # Why chdb only prints it: no access control there.
    create_user = next(s for s in statements(sql) if s.startswith("CREATE USER"))
    with pytest.raises(Exception, match="ACCESS_DENIED"):
        client.command(create_user)


def test_tenant_reader_on_chdb_prints_the_sql_and_says_why_nothing_is_applied(
    settings: Settings, chdb_path: Path, tmp_path: Path
) -> None:
    migrate(get_client(settings))
    env = {
        "AIMASS_CLICKHOUSE_DSN": f"chdb://{chdb_path}",
        "AIMASS_CLICKHOUSE_DATABASE": settings.clickhouse_database,
        "READER_PW": "s3cr3t-pw",
    }
    result = CliRunner().invoke(
        app,
        ["db", "tenant-reader", "acme", "--print-sql", "--password-env", "READER_PW",
         "--data-dir", str(tmp_path)],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert CHDB_SKIPPED in result.stderr and result.stderr.strip().count("\n") == 0
    sql = result.stdout
    assert "s3cr3t-pw" not in sql and password_sha256("s3cr3t-pw") in sql
    for table in TENANT_TABLES:
        assert f"GRANT SELECT ON `{settings.clickhouse_database}`.`{table}`" in sql
    assert "dead_letters" not in sql and MIGRATIONS_TABLE not in sql


# -- a worker process with API keys ------------------------------------------------------------

KEYS = {"acme": ["acme-key-1", "acme-key-2"], "globex": "globex-key"}
ENV = {"AIMASS_RECS_STORE": "memory://", "AIMASS_API_KEYS": json.dumps(KEYS)}
T0 = 1_767_225_600_000
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("AIMASS_")}


def call(
    worker: WorkerProcess, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{worker.port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            status, got = response.status, dict(response.headers)
    except urllib.error.HTTPError as err:
        raw, status, got = err.read(), err.code, dict(err.headers)
    try:
        return status, got, json.loads(raw)
    except ValueError:
        return status, got, raw.decode()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def poll(worker: WorkerProcess, path: str, key: str, ok: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = call(worker, path, bearer(key))
        if ok(status, body):
            return body
        assert time.monotonic() < deadline, f"{path}: {status} {body}\n{worker.tail()}"
        time.sleep(0.5)


@pytest.mark.slow
def test_worker_api_keys_and_no_cross_tenant_data(
    broker_process: BrokerProcess, tmp_path: Path
) -> None:
    bootstrap = broker_process.bootstrap
    docs = generate_documents(60, seed=61)
    acme = {str(d["id"]) for d in docs if d["tenant"] == "acme"}
    globex = {str(d["id"]) for d in docs if d["tenant"] == "globex"}
    assert len(acme) >= 12 and len(globex) >= 12 and not acme & globex
    worker = start_worker("all", bootstrap, tmp_path / "worker", "keys", env=ENV)
    try:
        wait_ready(worker)
        produce_documents(bootstrap, docs)
        poll(worker, "/v1/recommendations/globex/nobody?cold_start=true&k=12", "globex-key",
             lambda status, body: status == 200 and len(body["items"]) == 12)  # fmt: skip
        # A user who exists in acme only.
        clicked = sorted(acme)[:4]
        values = [
            orjson.dumps({"event_id": f"only-{i}", "tenant": "acme", "user_id": "only-acme",
                          "item_id": item, "type": "click", "ts": T0 + i})
            for i, item in enumerate(clicked)
        ]  # fmt: skip
        produce(bootstrap, "aimass.events", values, [b"acme:only-acme"] * len(values))
        path = "/v1/recommendations/acme/only-acme?k=5"
        body = poll(
            worker,
            path,
            "acme-key-1",
            lambda status, body: status == 200 and body["profile"]["events"] == 4,
        )
        assert {i["item_id"] for i in body["items"]} <= acme

        # -- the key checks --
        status, headers, body = call(worker, path)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), body
        assert "API key is required" in body["error"]
        status, _, other = call(worker, path, bearer("globex-key"))
        assert status == 403 and "globex" not in json.dumps(other), other
        status, _, unknown = call(worker, path, bearer("not-a-key"))
        assert status == 403 and unknown == other, "unknown and foreign keys look the same"
        assert call(worker, path, {"X-API-Key": "acme-key-2"})[0] == 200
        assert call(worker, path, {"Authorization": "Basic YWNtZTprZXk="})[0] == 401
        for open_path in ("/healthz", "/readyz", "/metrics"):
            assert call(worker, open_path)[0] == 200, open_path
        assert call(worker, "/v1/models")[0] == 401
        assert call(worker, "/v1/models", bearer("not-a-key"))[0] == 403
        status, _, models = call(worker, "/v1/models", bearer("globex-key"))
        assert status == 200 and models["encoder"]["name"] == "all-MiniLM-L6-v2"

        # -- no data of acme under globex, even with a valid globex key --
        status, _, body = call(worker, "/v1/recommendations/globex/only-acme?k=5",
                               bearer("globex-key"))  # fmt: skip
        assert status == 404 and "unknown user" in body["error"], body
        status, _, body = call(
            worker, f"/v1/recommendations/globex/only-acme?cold_start=true&k={len(globex)}",
            bearer("globex-key"),
        )  # fmt: skip
        assert status == 200 and not body["known_user"] and body["profile"] is None
        items = {i["item_id"] for i in body["items"]}
        assert items and items <= globex and not items & acme, items
        assert body["tenant"] == "globex"
        assert worker.sigterm() == 0, worker.tail()
    finally:
        if worker.process.poll() is None:
            worker.sigkill()
    log = worker.log.read_text(errors="replace")
    for secret in ("acme-key-1", "acme-key-2", "globex-key"):
        assert secret not in log, "keys never reach the log"


def test_worker_refuses_to_start_on_unusable_keys_without_echoing_them(tmp_path: Path) -> None:
    # Parsed before the broker or anything else starts: no broker needed.
    result = subprocess.run(
        cli("worker", "--role", "sink", "--data-dir", str(tmp_path), "--bootstrap", "127.0.0.1:1"),
        env={**CLEAN_ENV, "AIMASS_API_KEYS": '{"acme": "s3cr3t-key",'},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "AIMASS_API_KEYS is not valid JSON" in result.stderr
    assert "s3cr3t" not in result.stderr + result.stdout


@pytest.mark.slow
def test_worker_with_auth_on_and_no_keys_refuses_v1_and_says_how_to_fix_it(
    broker_process: BrokerProcess, tmp_path: Path
) -> None:
    env = {"AIMASS_API_AUTH_ENABLED": "true", "AIMASS_API_KEYS": ""}
    worker = start_worker("sink", broker_process.bootstrap, tmp_path / "sink", "nokeys", env)
    try:
        wait_ready(worker)
        for path in ("/v1/models", "/v1/recommendations/acme/u-1"):
            status, headers, body = call(worker, path, bearer("any-key"))
            assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), body
            assert "AIMASS_API_KEYS" in body["error"]
            assert "AIMASS_API_AUTH_ENABLED=false" in body["error"]
        assert call(worker, "/healthz")[0] == 200
        assert worker.sigterm() == 0, worker.tail()
    finally:
        if worker.process.poll() is None:
            worker.sigkill()
    log = worker.log.read_text(errors="replace")
    assert log.count("no API keys are configured") == 1, log[-3000:]
