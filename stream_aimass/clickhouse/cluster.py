"""Cluster mode: the single-node migrations rewritten for a ClickHouse cluster.

With ``clickhouse_cluster`` set, each table of a migration becomes two, created ``ON
CLUSTER``:

- ``<table>_local``: the storage, the same engine made Replicated (ZooKeeper path from the
  table's UUID and the ``{shard}`` macro, replica ``{replica}``), with the replicated insert
  deduplication window where the single-node table has the non-replicated one (a retried
  insert of the same block is stored once, on every replica);
- ``<table>``: a Distributed table over them, under the name every reader and the sink use,
  so the named queries run unchanged on both.

Rows are sharded by document (``tenant, doc_id``) where a table has both columns, so a
document's rows of every table (mentions, classifications, findings, usage) live on one
shard; other tables by their sorting key. Either way the versions of a row always meet on one
shard and replace each other (``FINAL`` and ReplacingMergeTree work per shard). A query's
subquery or join on another Distributed table runs as ``GLOBAL`` (see
:data:`CLUSTER_QUERY_SETTINGS`): right whatever the two tables are sharded by.

Materialized views read and write the local tables on each shard; ``ALTER ... COLUMN`` runs on
both tables; ``EXCHANGE`` swaps the local tables (their Replicated paths move with their UUID);
``INSERT ... SELECT`` goes through the Distributed tables, in the foreground. A statement of
another kind is refused: a migration cluster mode does not know must be taught here first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Session settings of a cluster-mode client: inserts reach the shards before the INSERT
# returns (so the sink's commit follows a stored, deduplicated write), and a subquery or join
# on a Distributed table inside a query on another is GLOBAL: run once, sent to every shard.
CLUSTER_QUERY_SETTINGS = {"insert_distributed_sync": 1, "distributed_product_mode": "global"}

LOCAL_SUFFIX = "_local"

_CREATE_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+)\s+(.*)$", re.S)
_CREATE_VIEW = re.compile(
    r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+)\s+TO (\w+)\s+AS\s+(.*)$", re.S
)
_ALTER = re.compile(r"^ALTER TABLE (\w+)\s+(.*)$", re.S)
_EXCHANGE = re.compile(r"^EXCHANGE TABLES (\w+) AND (\w+)$")
_DROP = re.compile(r"^DROP TABLE IF EXISTS (\w+)$")
_INSERT = re.compile(r"^INSERT INTO \w+", re.S)
_AS_SOURCE = re.compile(r"^AS (\w+)\s*")
_ENGINE = re.compile(r"ENGINE = (\w*)MergeTree(?:\(([^)]*)\))?")
_ORDER_BY = re.compile(r"ORDER BY \(([^)]*)\)|ORDER BY (\w+)")
_COLUMN = re.compile(r"^\s*`?(\w+)`?\s+[A-Z]", re.M)
_FROM = re.compile(r"\b(FROM|JOIN)\s+(\w+)")
_COLUMN_ALTER = re.compile(r"^(ADD|DROP|MODIFY|RENAME|COMMENT) COLUMN\b")


class ClusterMigrationError(ValueError):
    """A migration statement cluster mode has no rewrite for."""


@dataclass
class ClusterDDL:
    """Rewrites migration statements, in order, for ``cluster`` (it learns each table's
    sharding key from the statement that creates it)."""

    cluster: str
    keys: dict[str, str] = field(default_factory=dict)

    def rewrite(self, statement: str) -> list[str]:
        statement = statement.strip()
        for pattern, rewrite in (
            (_CREATE_VIEW, self._view),
            (_CREATE_TABLE, self._table),
            (_ALTER, self._alter),
            (_EXCHANGE, self._exchange),
            (_DROP, self._drop),
        ):
            match = pattern.match(statement)
            if match:
                return rewrite(match)
        if _INSERT.match(statement):
            return [f"{statement}\nSETTINGS insert_distributed_sync = 1"]
        raise ClusterMigrationError(
            f"no cluster-mode rewrite for this migration statement: {statement[:120]!r}"
        )

    @property
    def _on(self) -> str:
        return f"ON CLUSTER {self.cluster}"

    def _table(self, match: re.Match[str]) -> list[str]:
        name, rest = match.group(1), match.group(2)
        source = _AS_SOURCE.match(rest)
        if source is not None:  # CREATE TABLE t AS other ENGINE = ...: other's columns
            self.keys[name] = self.keys[source.group(1)]
            rest = f"AS {source.group(1)}{LOCAL_SUFFIX} " + rest[source.end() :]
        else:
            self.keys[name] = _sharding_key(rest)
        engine = _ENGINE.search(rest)
        if engine is None:
            raise ClusterMigrationError(f"table {name}: no MergeTree engine to replicate")
        args = ["'/clickhouse/tables/{uuid}/{shard}'", "'{replica}'"]
        if engine.group(2):
            args.append(engine.group(2))
        replicated = f"ENGINE = Replicated{engine.group(1)}MergeTree({', '.join(args)})"
        rest = rest[: engine.start()] + replicated + rest[engine.end() :]
        rest = rest.replace("non_replicated_deduplication", "replicated_deduplication")
        local = f"{name}{LOCAL_SUFFIX}"
        return [
            f"CREATE TABLE IF NOT EXISTS {local} {self._on} {rest}",
            f"CREATE TABLE IF NOT EXISTS {name} {self._on} AS {local}\n"
            f"ENGINE = Distributed({self.cluster}, currentDatabase(), {local}, "
            f"{self.keys[name]})",
        ]

    def _view(self, match: re.Match[str]) -> list[str]:
        name, target, select = match.groups()

        def local(found: re.Match[str]) -> str:
            table = found.group(2)
            suffix = LOCAL_SUFFIX if table in self.keys else ""
            return f"{found.group(1)} {table}{suffix}"

        return [
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {name} {self._on} "
            f"TO {target}{LOCAL_SUFFIX} AS\n{_FROM.sub(local, select)}"
        ]

    def _alter(self, match: re.Match[str]) -> list[str]:
        name, change = match.groups()
        out = [f"ALTER TABLE {name}{LOCAL_SUFFIX} {self._on} {change}"]
        if _COLUMN_ALTER.match(change):  # the Distributed table has the columns too
            out.append(f"ALTER TABLE {name} {self._on} {change}")
        return out

    def _exchange(self, match: re.Match[str]) -> list[str]:
        a, b = match.groups()
        return [f"EXCHANGE TABLES {a}{LOCAL_SUFFIX} AND {b}{LOCAL_SUFFIX} {self._on}"]

    def _drop(self, match: re.Match[str]) -> list[str]:
        name = match.group(1)
        return [
            f"DROP TABLE IF EXISTS {name} {self._on} SYNC",
            f"DROP TABLE IF EXISTS {name}{LOCAL_SUFFIX} {self._on} SYNC",
        ]


def _sharding_key(definition: str) -> str:
    columns = set(_COLUMN.findall(definition.split("ENGINE", 1)[0]))
    if {"tenant", "doc_id"} <= columns:
        return "cityHash64(tenant, doc_id)"
    order = _ORDER_BY.search(definition)
    if order is None:
        raise ClusterMigrationError("a table without ORDER BY has no sharding key")
    return f"cityHash64({order.group(1) or order.group(2)})"


def bookkeeping_tables(cluster: str, tables: dict[str, tuple[str, str]]) -> list[str]:
    """The migration runner's own tables (name -> (columns, ORDER BY)) on a cluster: one
    replicated table across every node (no ``{shard}`` in the path), so whichever node the
    runner reaches knows what ran."""
    return [
        f"CREATE TABLE IF NOT EXISTS {name} ON CLUSTER {cluster} ({columns}) "
        f"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/aimass/{{database}}/{name}', "
        f"'{{shard}}-{{replica}}') ORDER BY {order}"
        for name, (columns, order) in tables.items()
    ]
