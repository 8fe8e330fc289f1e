"""ClickHouse access: client from a DSN (server or embedded chdb), migrations, named queries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from stream_aimass.settings import Settings
from stream_aimass.settings import redact_dsn as redact_dsn  # public here since before

_SERVER_SCHEMES = ("http", "https", "clickhouse", "clickhouses")

MIGRATIONS_TABLE = "schema_migrations"
# Statements done of migrations not finished yet: a run cut short resumes after the last one
# (a migration that rebuilds a table must not, say, exchange it twice).
MIGRATION_STEPS_TABLE = "schema_migration_steps"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_QUERY_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class ClickHouseConfigError(ValueError):
    """A DSN or query name that cannot be used."""


def server_client_kwargs(settings: Settings) -> dict[str, Any]:
    """clickhouse-connect keyword arguments for an http(s):// server DSN (no I/O).

    User and password come from ``clickhouse_user``/``clickhouse_password`` when set, else
    from the DSN (URL-decoded); https:// (or clickhouses://) turns on TLS, port 8443 by
    default, verified against ``clickhouse_ca_cert`` (else the system CAs) unless
    ``clickhouse_verify`` is off. ``database`` is the DSN's path, else
    ``clickhouse_database``.
    """
    dsn = settings.resolved_clickhouse_dsn
    try:
        parsed = urlparse(dsn)
        port = parsed.port
    except ValueError as exc:  # a bad port or host: the message has no userinfo
        raise ClickHouseConfigError(f"invalid ClickHouse DSN {redact_dsn(dsn)}: {exc}") from None
    if parsed.scheme not in _SERVER_SCHEMES:
        raise ClickHouseConfigError(
            f"unsupported ClickHouse DSN scheme {parsed.scheme!r} in {redact_dsn(dsn)}: "
            "use chdb:///path, http://... or https://..."
        )
    secure = parsed.scheme in ("https", "clickhouses")
    password = settings.clickhouse_password.get_secret_value() or unquote(parsed.password or "")
    kwargs: dict[str, Any] = {
        "host": parsed.hostname or "localhost",
        "port": port or (8443 if secure else 8123),
        "username": settings.clickhouse_user or unquote(parsed.username or "") or "default",
        "password": password,
        "database": unquote(parsed.path.strip("/")) or settings.clickhouse_database,
        "secure": secure,
    }
    if secure:
        kwargs["verify"] = settings.clickhouse_verify
        if settings.clickhouse_ca_cert:
            kwargs["ca_cert"] = settings.clickhouse_ca_cert
    return kwargs


def get_client(settings: Settings, *, create_database: bool = True) -> Any:
    """A clickhouse-connect client for ``settings`` (chdb:// embedded or http(s):// server)."""
    import clickhouse_connect

    dsn = settings.resolved_clickhouse_dsn
    database = settings.clickhouse_database
    if dsn.startswith("chdb://"):
        path = dsn[len("chdb://") :]
        if path not in ("memory", ""):
            Path(path).mkdir(parents=True, exist_ok=True)
        client = clickhouse_connect.get_client(dsn=dsn)
        if create_database:
            client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
        return clickhouse_connect.get_client(dsn=dsn, database=database)
    kwargs = server_client_kwargs(settings)
    ca_cert = kwargs.get("ca_cert")
    if ca_cert and not Path(ca_cert).is_file():
        raise ClickHouseConfigError(f"AIMASS_CLICKHOUSE_CA_CERT={ca_cert}: no such file")
    database = kwargs.pop("database")
    if create_database:
        admin = clickhouse_connect.get_client(**kwargs)
        admin.command(f"CREATE DATABASE IF NOT EXISTS {database}")
        admin.close()
    return clickhouse_connect.get_client(database=database, **kwargs)


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


def _sql_dir(kind: str) -> Any:
    return resources.files("stream_aimass") / "resources" / "clickhouse" / kind


def load_migrations() -> list[Migration]:
    found = []
    for entry in _sql_dir("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text()))
    found.sort(key=lambda m: m.version)
    return found


def migrate(client: Any) -> list[str]:
    """Apply pending migrations in order; returns the names applied now."""
    client.command(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
        "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    client.command(
        f"CREATE TABLE IF NOT EXISTS {MIGRATION_STEPS_TABLE} "
        "(version UInt32, step UInt32, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY (version, step)"
    )
    done = {row[0] for row in client.query(f"SELECT version FROM {MIGRATIONS_TABLE}").result_rows}
    steps = {
        (row[0], row[1])
        for row in client.query(f"SELECT version, step FROM {MIGRATION_STEPS_TABLE}").result_rows
    }
    applied = []
    for migration in load_migrations():
        if migration.version in done:
            continue
        for step, statement in enumerate(migration.statements()):
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


def query_names() -> list[str]:
    return sorted(
        e.name.removesuffix(".sql")
        for e in _sql_dir("queries").iterdir()
        if e.name.endswith(".sql")
    )


def load_query(name: str) -> str:
    if not _QUERY_NAME.match(name) or name not in query_names():
        raise ClickHouseConfigError(
            f"unknown query {name!r}; available: {', '.join(query_names())}"
        )
    return str((_sql_dir("queries") / f"{name}.sql").read_text())


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


# The widest --from/--to: inside ClickHouse's DateTime64 range (1900-2299).
ALL_TIME = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))
_QUERY_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):")


def query_parameters(name: str) -> set[str]:
    """The parameters query ``name`` binds (``{name:Type}`` placeholders)."""
    return set(_QUERY_PARAMETER.findall(load_query(name)))


def run_named_query(
    client: Any, name: str, parameters: dict[str, Any] | None = None
) -> QueryResult:
    """Run a named query with the values it binds; values it does not use are left out
    (a query without placeholders would otherwise be formatted client-side with them)."""
    wanted = query_parameters(name)
    used = {k: v for k, v in (parameters or {}).items() if k in wanted}
    result = client.query(load_query(name), parameters=used)
    return QueryResult(list(result.column_names), [list(r) for r in result.result_rows])
