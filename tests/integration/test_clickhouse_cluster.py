"""Cluster mode's DDL through ClickHouse's own parser (chdb's formatQuery), and the named
queries against the tables it creates."""

from __future__ import annotations

import re

import pytest

from stream_aimass.clickhouse.client import ClickHouseConfigError, get_client
from stream_aimass.clickhouse.cluster import LOCAL_SUFFIX
from stream_aimass.clickhouse.migrations import bookkeeping_statements, planned_statements
from stream_aimass.clickhouse.queries import load_query, query_names
from stream_aimass.settings import Settings

CLUSTER = "aimass_cluster"


def _format(client: object, statement: str) -> str:
    formatted: str = client.query(  # type: ignore[attr-defined]
        "SELECT formatQuery({q:String})", parameters={"q": statement}
    ).result_rows[0][0]
    return formatted


def test_every_cluster_statement_parses_and_says_what_it_should(settings: Settings) -> None:
    client = get_client(settings)
    statements = bookkeeping_statements(CLUSTER) + [
        s for _, ss in planned_statements(CLUSTER) for s in ss
    ]
    distributed, local, views = set(), set(), set()
    for statement in statements:
        formatted = _format(client, statement)  # a syntax error raises here
        if not formatted.startswith("INSERT"):
            assert f"ON CLUSTER {CLUSTER}" in formatted, formatted
        created = re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", formatted)
        if created and "Distributed(" in formatted:
            distributed.add(created.group(1))
        elif created:
            assert "ENGINE = Replicated" in formatted, formatted
            local.add(created.group(1))
        if formatted.startswith("CREATE MATERIALIZED VIEW"):
            views.add(formatted)
            assert re.search(rf"TO \w+{LOCAL_SUFFIX}\b", formatted), formatted
            assert re.search(rf"FROM \w+{LOCAL_SUFFIX}\b", formatted), formatted
    # Every storage table has its Distributed table (the migration runner's own excepted).
    assert {t + LOCAL_SUFFIX for t in distributed} == local - {
        "schema_migrations",
        "schema_migration_steps",
    }
    assert len(views) == 5
    # What readers see on a cluster: the same table names the single-node schema has.
    migrate_plain = get_client(settings)
    from stream_aimass.clickhouse.migrations import migrate

    migrate(migrate_plain)
    single = {
        row[0]
        for row in migrate_plain.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() "
            "AND engine NOT IN ('MaterializedView') AND name NOT LIKE 'schema_migration%'"
        ).result_rows
    }
    assert distributed - {t for t in distributed if re.search(r"_\d{4}$", t)} == single


def test_named_queries_read_only_tables_a_cluster_has_under_their_names(
    settings: Settings,
) -> None:
    client = get_client(settings)
    statements = [s for _, ss in planned_statements(CLUSTER) for s in ss]
    distributed = {
        m.group(1)
        for s in statements
        if (
            m := re.match(
                r"CREATE TABLE IF NOT EXISTS (\w+) ON CLUSTER \w+ AS \w+\nENGINE = Dis", s
            )
        )
    }
    for name in query_names():
        sql = load_query(name)
        _format(client, re.sub(r"\{(\w+):[^}]+\}", "''", sql))
        tables = set(re.findall(r"\b(?:FROM|(?<!ARRAY )JOIN)\s+(\w+)", sql)) - {"numbers", "system"}
        assert tables and tables <= distributed, (name, tables - distributed)


def test_cluster_mode_needs_a_server(settings: Settings) -> None:
    with pytest.raises(ClickHouseConfigError, match="needs a ClickHouse server"):
        get_client(settings.model_copy(update={"clickhouse_cluster": CLUSTER}))
