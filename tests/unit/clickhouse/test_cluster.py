"""Cluster mode's rewrite of migration statements (the parser check is in
tests/integration/test_clickhouse_cluster.py)."""

from __future__ import annotations

import pytest

from stream_aimass.clickhouse.cluster import ClusterDDL, ClusterMigrationError
from stream_aimass.clickhouse.migrations import load_migrations, planned_statements

DOCS = """CREATE TABLE IF NOT EXISTS docs (
    tenant LowCardinality(String),
    doc_id String,
    v UInt64
)
ENGINE = ReplacingMergeTree(v)
ORDER BY (tenant, doc_id, v)
SETTINGS non_replicated_deduplication_window = 1000"""


def test_a_table_becomes_a_replicated_local_table_and_a_distributed_one() -> None:
    local, dist = ClusterDDL("prod").rewrite(DOCS)
    assert local.startswith("CREATE TABLE IF NOT EXISTS docs_local ON CLUSTER prod (")
    assert "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{uuid}/{shard}', " in local
    assert "'{replica}', v)" in local
    assert "SETTINGS replicated_deduplication_window = 1000" in local
    assert "non_replicated" not in local
    # By document, whatever the sorting key: every version of a document meets on one shard.
    assert dist == (
        "CREATE TABLE IF NOT EXISTS docs ON CLUSTER prod AS docs_local\n"
        "ENGINE = Distributed(prod, currentDatabase(), docs_local, cityHash64(tenant, doc_id))"
    )


def test_other_tables_shard_by_their_sorting_key_and_copies_inherit_it() -> None:
    ddl = ClusterDDL("c")
    ddl.rewrite(
        "CREATE TABLE IF NOT EXISTS ev (tenant String, event_id String) "
        "ENGINE = MergeTree ORDER BY (tenant, event_id)"
    )
    assert ddl.keys["ev"] == "cityHash64(tenant, event_id)"
    local, dist = ddl.rewrite(
        "CREATE TABLE IF NOT EXISTS ev_2 AS ev\nENGINE = MergeTree ORDER BY x"
    )
    assert local.startswith("CREATE TABLE IF NOT EXISTS ev_2_local ON CLUSTER c AS ev_local ")
    assert "ReplicatedMergeTree('/clickhouse/tables/{uuid}/{shard}', '{replica}')" in local
    assert dist.endswith("ev_2_local, cityHash64(tenant, event_id))")


def test_views_alters_exchanges_drops_and_inserts() -> None:
    ddl = ClusterDDL("c")
    ddl.rewrite(DOCS)
    (view,) = ddl.rewrite(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS mv TO hourly AS\nSELECT tenant FROM docs"
    )
    assert view == (
        "CREATE MATERIALIZED VIEW IF NOT EXISTS mv ON CLUSTER c TO hourly_local AS\n"
        "SELECT tenant FROM docs_local"
    )
    assert ddl.rewrite("ALTER TABLE docs ADD COLUMN IF NOT EXISTS x UInt8 DEFAULT 0") == [
        "ALTER TABLE docs_local ON CLUSTER c ADD COLUMN IF NOT EXISTS x UInt8 DEFAULT 0",
        "ALTER TABLE docs ON CLUSTER c ADD COLUMN IF NOT EXISTS x UInt8 DEFAULT 0",
    ]
    # Not a column change: the storage only (a Distributed table has no TTL).
    assert ddl.rewrite("ALTER TABLE docs MODIFY TTL toDate(ts) + 30") == [
        "ALTER TABLE docs_local ON CLUSTER c MODIFY TTL toDate(ts) + 30"
    ]
    assert ddl.rewrite("EXCHANGE TABLES docs AND docs_2") == [
        "EXCHANGE TABLES docs_local AND docs_2_local ON CLUSTER c"
    ]
    assert ddl.rewrite("DROP TABLE IF EXISTS docs_2") == [
        "DROP TABLE IF EXISTS docs_2 ON CLUSTER c SYNC",
        "DROP TABLE IF EXISTS docs_2_local ON CLUSTER c SYNC",
    ]
    assert ddl.rewrite("INSERT INTO docs_2 SELECT * FROM docs") == [
        "INSERT INTO docs_2 SELECT * FROM docs\nSETTINGS insert_distributed_sync = 1"
    ]


def test_a_statement_without_a_rewrite_is_refused_not_run_as_is() -> None:
    with pytest.raises(ClusterMigrationError, match="no cluster-mode rewrite"):
        ClusterDDL("c").rewrite("RENAME TABLE a TO b")
    with pytest.raises(ClusterMigrationError, match="no MergeTree engine"):
        ClusterDDL("c").rewrite("CREATE TABLE IF NOT EXISTS m (a UInt8) ENGINE = Log ORDER BY a")


def test_the_single_node_path_runs_the_files_as_written() -> None:
    plain = planned_statements("")
    assert [(m.name, s) for m, s in plain] == [(m.name, m.statements()) for m in load_migrations()]


def test_every_shipped_migration_has_a_cluster_rewrite() -> None:
    planned = planned_statements("aimass")
    statements = [s for _, ss in planned for s in ss]
    assert all(" ON CLUSTER aimass" in s or s.startswith("INSERT") for s in statements)
    assert not any("non_replicated_deduplication_window" in s for s in statements)
    engines = [s for s in statements if "ENGINE = " in s and "Distributed(" not in s]
    assert engines and all("ENGINE = Replicated" in s for s in engines)
