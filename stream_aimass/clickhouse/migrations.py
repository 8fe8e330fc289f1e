"""Schema migrations: ordered SQL files, applied once, resumable statement by statement."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from stream_aimass.clickhouse.cluster import ClusterDDL, bookkeeping_tables

MIGRATIONS_TABLE = "schema_migrations"


# Statements done of migrations not finished yet: a run cut short resumes after the last one
# (a migration that rebuilds a table must not, say, exchange it twice).
MIGRATION_STEPS_TABLE = "schema_migration_steps"


_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def split_statements(sql: str) -> list[str]:
    """The statements of a SQL file, one per ``;``, with ``--`` comment lines left out."""
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        return split_statements(self.sql)


def sql_dir(kind: str) -> Any:
    return resources.files("stream_aimass") / "resources" / "clickhouse" / kind


def load_migrations() -> list[Migration]:
    found = []
    for entry in sql_dir("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text()))
    found.sort(key=lambda m: m.version)
    return found


# The runner's own tables: name -> (columns, ORDER BY).
BOOKKEEPING = {
    MIGRATIONS_TABLE: (
        "version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)",
        "version",
    ),
    MIGRATION_STEPS_TABLE: (
        "version UInt32, step UInt32, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)",
        "(version, step)",
    ),
}


def planned_statements(cluster: str = "") -> list[tuple[Migration, list[str]]]:
    """Each migration with the statements it runs: as written, or rewritten for ``cluster``
    (:mod:`.cluster`)."""
    if not cluster:
        return [(m, m.statements()) for m in load_migrations()]
    ddl = ClusterDDL(cluster)
    return [
        (m, [out for statement in m.statements() for out in ddl.rewrite(statement)])
        for m in load_migrations()
    ]


def bookkeeping_statements(cluster: str = "") -> list[str]:
    if cluster:
        return bookkeeping_tables(cluster, BOOKKEEPING)
    return [
        f"CREATE TABLE IF NOT EXISTS {name} ({columns}) ENGINE = ReplacingMergeTree "
        f"ORDER BY {order}"
        for name, (columns, order) in BOOKKEEPING.items()
    ]


def migrate(client: Any, cluster: str = "") -> list[str]:
    """Apply pending migrations in order; returns the names applied now. ``cluster``: the
    ClickHouse cluster to create the tables on (``ON CLUSTER``, Replicated, Distributed)."""
    for statement in bookkeeping_statements(cluster):
        client.command(statement)
    done = {row[0] for row in client.query(f"SELECT version FROM {MIGRATIONS_TABLE}").result_rows}
    steps = {
        (row[0], row[1])
        for row in client.query(f"SELECT version, step FROM {MIGRATION_STEPS_TABLE}").result_rows
    }
    applied = []
    for migration, statements in planned_statements(cluster):
        if migration.version in done:
            continue
        for step, statement in enumerate(statements):
            if (migration.version, step) in steps:
                continue
            client.command(statement)
            client.insert(
                MIGRATION_STEPS_TABLE,
                [[migration.version, step]],
                column_names=["version", "step"],
            )
        client.insert(
            MIGRATIONS_TABLE,
            [[migration.version, migration.name]],
            column_names=["version", "name"],
        )
        applied.append(migration.name)
    return applied
