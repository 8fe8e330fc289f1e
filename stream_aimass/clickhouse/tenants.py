"""Per-tenant read access to ClickHouse: a read-only user, its role, and row policies.

``stream-aimass db tenant-reader TENANT`` renders ``ops/clickhouse/tenants/tenant_reader.sql``
for every table of the database that has a ``tenant`` column (listed from
``system.tables``/``system.columns``, so tables added by later migrations are covered when
the command runs again) and applies it on a ClickHouse server. Tables without a ``tenant``
column (``dead_letters``: undecodable messages of any tenant; ``schema_migrations``) are not
granted to tenant readers at all.

Embedded chdb has no access control (``CREATE USER`` fails with ACCESS_DENIED): there the
command only prints the SQL.

Every name that goes into the SQL is validated and quoted: tenants follow the tenant id rule
of the decoders (``decode.TENANT_RULE``), user names a similar rule, identifiers are
backquoted and values single-quoted with escapes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from importlib import resources
from typing import Any

from stream_aimass.clickhouse.migrations import split_statements
from stream_aimass.records import TENANT_RE, TENANT_RULE

TENANT_COLUMN = "tenant"
ALL_TENANTS_POLICY = "aimass_all_tenants"
ROLE_PREFIX = "aimass_tenant_"
USER_PREFIX = "aimass_reader_"
TEMPLATE = "tenant_reader.sql"
USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,159}")
DATABASE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
PASSWORD_PLACEHOLDER = "<sha256 of the password: pass --password-env VAR or --password-stdin>"
CHDB_SKIPPED = (
    "skipped: ClickHouse users and row policies need a ClickHouse server; embedded chdb has "
    "no access control (CREATE USER fails with ACCESS_DENIED), so nothing was applied"
)
# Views read other tables (whose policies apply); only tables hold rows.
_VIEW_ENGINES = ("View", "MaterializedView", "LiveView", "WindowView")
_PLACEHOLDER = re.compile(r"\{([a-z_0-9]+)\}")
_EACH_TABLE, _END = "-- @each-table", "-- @end"


class TenantAccessError(ValueError):
    """A tenant, user or database name that cannot be used."""


def quote_identifier(name: str) -> str:
    """``name`` as a backquoted ClickHouse identifier."""
    if not name or any(ord(c) < 32 for c in name):
        raise TenantAccessError(f"unusable identifier {name!r}")
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_string(value: str) -> str:
    """``value`` as a single-quoted ClickHouse string literal."""
    if any(ord(c) < 32 for c in value):
        raise TenantAccessError(f"unusable string {value!r}")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _checked(value: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.fullmatch(value):
        shown = value[: len(pattern.pattern) + 120]
        raise TenantAccessError(f"{what} {shown!r} must match ^{pattern.pattern}$")
    return value


def check_tenant(tenant: str) -> str:
    if not TENANT_RE.fullmatch(tenant):
        raise TenantAccessError(f"tenant {tenant[:250]!r} {TENANT_RULE}")
    return tenant


def check_user(user: str) -> str:
    return _checked(user, USER_RE, "user name")


def check_database(database: str) -> str:
    return _checked(database, DATABASE_RE, "database name")


def role_name(tenant: str) -> str:
    return ROLE_PREFIX + check_tenant(tenant)


def default_user(tenant: str) -> str:
    return USER_PREFIX + check_tenant(tenant)


def password_sha256(password: str) -> str:
    """What ``IDENTIFIED WITH sha256_hash BY`` takes: the hex SHA-256 of the password."""
    if not password:
        raise TenantAccessError("the password is empty")
    return hashlib.sha256(password.encode()).hexdigest()


def template() -> str:
    path = resources.files("stream_aimass") / "resources" / "clickhouse" / "tenants" / TEMPLATE
    return path.read_text()


def _tables(client: Any, database: str, *, with_tenant: bool) -> list[str]:
    """Tables (not views) of ``database`` with (or without) a ``tenant`` column, by name."""
    rows = client.query(
        "SELECT name FROM system.tables WHERE database = {db:String} "
        f"AND engine NOT IN {{views:Array(String)}} AND name {'' if with_tenant else 'NOT '}IN "
        "(SELECT table FROM system.columns WHERE database = {db:String} "
        "AND name = {column:String}) ORDER BY name",
        parameters={"db": database, "views": list(_VIEW_ENGINES), "column": TENANT_COLUMN},
    ).result_rows
    return [str(row[0]) for row in rows]


def tenant_tables(client: Any, database: str) -> list[str]:
    """Tables (not views) of ``database`` with a ``tenant`` column, by name."""
    return _tables(client, database, with_tenant=True)


def tables_without_tenant(client: Any, database: str) -> list[str]:
    """Tables (not views) of ``database`` without a ``tenant`` column: not for tenant readers."""
    return _tables(client, database, with_tenant=False)


def _fill(text: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise TenantAccessError(f"{TEMPLATE}: unknown placeholder {{{name}}}")
        return values[name]

    return _PLACEHOLDER.sub(one, text)


def _sql_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.strip() and not line.strip().startswith("--")]


def render_tenant_reader(
    tenant: str,
    database: str,
    tables: Sequence[str],
    *,
    user: str | None = None,
    password_hash: str | None = None,
    text: str | None = None,
) -> str:
    """The SQL that gives ``user`` read access to ``tenant``'s rows of ``tables``.

    ``password_hash``: from :func:`password_sha256`; None leaves a placeholder that a server
    refuses (for ``--print-sql`` without a password). ``text``: the template (default: the
    bundled one).
    """
    check_tenant(tenant)
    user = check_user(user if user is not None else default_user(tenant))
    check_database(database)
    if not tables:
        raise TenantAccessError(f"database {database!r} has no table with a tenant column")
    if password_hash is not None and not re.fullmatch(r"[0-9a-f]{64}", password_hash):
        raise TenantAccessError("the password hash must be 64 lowercase hex digits")
    role = role_name(tenant)
    values = {
        "database": quote_identifier(database),
        "tenant": quote_string(tenant),
        "role": quote_identifier(role),
        "user": quote_identifier(user),
        "password_sha256": quote_string(password_hash or PASSWORD_PLACEHOLDER),
        "policy": quote_identifier(role),
        "only_policy": quote_identifier(role + "_only"),
        "all_tenants": quote_identifier(ALL_TENANTS_POLICY),
    }
    lines = (text if text is not None else template()).splitlines()
    if lines.count(_EACH_TABLE) != 1 or lines.count(_END) != 1:
        raise TenantAccessError(f"{TEMPLATE}: needs one {_EACH_TABLE!r} and one {_END!r} line")
    start, end = lines.index(_EACH_TABLE), lines.index(_END)
    head, block, tail = lines[:start], lines[start + 1 : end], lines[end + 1 :]
    out = [
        f"-- stream-aimass db tenant-reader: user {user!r}, role {role!r}, tenant {tenant!r}, "
        f"database {database!r}, {len(tables)} tables with a tenant column",
        _fill("\n".join(_sql_lines(head)), values),
    ]
    for table in tables:
        out.append(f"\n-- {table}")
        out.append(
            _fill("\n".join(_sql_lines(block)), {**values, "table": quote_identifier(table)})
        )
    rest = _sql_lines(tail)
    if rest:
        out.append(_fill("\n".join(rest), values))
    return "\n".join(out) + "\n"


def statements(sql: str) -> list[str]:
    """The statements of rendered SQL (safe to split on ``;``: every value in it is validated
    and none holds a ``;``)."""
    return split_statements(sql)


def apply_sql(client: Any, sql: str) -> int:
    """Run rendered SQL statement by statement; returns how many ran."""
    done = 0
    for statement in statements(sql):
        client.command(statement)
        done += 1
    return done
