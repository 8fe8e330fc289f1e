"""A ClickHouse client from a DSN: a server over HTTP(S), or embedded chdb."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from stream_aimass.clickhouse.cluster import CLUSTER_QUERY_SETTINGS
from stream_aimass.settings import Settings
from stream_aimass.settings import redact_dsn as redact_dsn  # public here since before

_SERVER_SCHEMES = ("http", "https", "clickhouse", "clickhouses")


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
        if settings.clickhouse_cluster:
            raise ClickHouseConfigError(
                f"clickhouse_cluster={settings.clickhouse_cluster} needs a ClickHouse server "
                "(http(s):// DSN): the embedded chdb is one node"
            )
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
    on_cluster = ""
    if settings.clickhouse_cluster:
        kwargs["settings"] = dict(CLUSTER_QUERY_SETTINGS)
        on_cluster = f" ON CLUSTER {settings.clickhouse_cluster}"
    if create_database:
        admin = clickhouse_connect.get_client(**kwargs)
        admin.command(f"CREATE DATABASE IF NOT EXISTS {database}{on_cluster}")
        admin.close()
    return clickhouse_connect.get_client(database=database, **kwargs)
