"""Operations: ``topics``, ``db``, ``dlq``, ``lag`` and ``settings``."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, Any

import typer

from stream_aimass.cli.support import (
    Bootstrap,
    ClickHouseDsn,
    DataDir,
    JsonFlag,
    clickhouse_client,
    console,
    fail,
    out,
    parse_when,
    print_rows,
    resolve_bootstrap,
    settings_or_exit,
)

commands = typer.Typer()


topics_app = typer.Typer(help="Kafka topics of the pipeline.", no_args_is_help=True)


db_app = typer.Typer(help="ClickHouse schema.", no_args_is_help=True)


dlq_app = typer.Typer(help="Dead letters (aimass.dlq).", no_args_is_help=True)


def _when_ms(value: str | None, option: str) -> int | None:
    return None if value is None else int(parse_when(value, option).timestamp() * 1000)


@dlq_app.command("replay")
def dlq_replay(
    stage: Annotated[
        str | None, typer.Option("--stage", help="Only this stage (decode, validate, enrich...).")
    ] = None,
    source_topic: Annotated[
        str | None, typer.Option("--source-topic", help="Only dead letters from this topic.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Failed at or after (ISO, UTC unless zoned).")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Failed before (ISO).")] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Only reasons containing this text.")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most N.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be replayed; send nothing.")
    ] = False,
    bootstrap: Bootstrap = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Send selected dead letters back to their source topic, once the cause is fixed."""
    from stream_aimass.kafka.replay import ReplayFilter, replay_dead_letters

    settings = settings_or_exit(kafka_bootstrap=bootstrap, data_dir=data_dir)
    address = resolve_bootstrap(settings)
    selected = ReplayFilter(
        stage, source_topic, _when_ms(since, "--since"), _when_ms(until, "--until"), reason
    )
    report = asyncio.run(
        replay_dead_letters(settings, address, selected, dry_run=dry_run, limit=limit)
    ).to_dict(dry_run)
    if as_json:
        out.print_json(json.dumps(report))
        return
    verb = "would replay" if dry_run else "replayed"
    out.print(
        f"scanned {report['scanned']} dead letters, {report['matched']} matched, {verb} "
        f"{report['replayed']} ({report['to_topics'] or 'none'})"
    )
    for why, n in report["skipped"].items():
        out.print(f"  skipped {n}: {why}")


@commands.command()
def lag(
    bootstrap: Bootstrap = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Records each role has not committed yet, per topic (consumer-group lag)."""
    from stream_aimass.kafka.clients import group_lag

    settings = settings_or_exit(kafka_bootstrap=bootstrap, data_dir=data_dir)
    address = resolve_bootstrap(settings)
    roles = {
        settings.enrich_group: [settings.topic_documents, settings.topic_items],
        settings.app_id: [settings.topic_events],  # the recommendation path's Faust agent
        settings.sink_group: [
            settings.topic_enriched, settings.topic_events, settings.topic_item_vectors,
            settings.topic_recommendations, settings.topic_dlq,
        ],
    }  # fmt: skip

    async def measure() -> list[dict[str, Any]]:
        rows = []
        for group, topics in roles.items():
            per_tp = await group_lag(settings, address, group, topics)
            for topic in topics:
                parts = {tp.partition: n for tp, n in per_tp.items() if tp.topic == topic}
                rows.append(
                    {
                        "group": group,
                        "topic": topic,
                        "lag": sum(parts.values()),
                        "partitions": parts,
                    }
                )
        return rows

    rows = asyncio.run(measure())
    if as_json:
        out.print_json(json.dumps({"lag": rows}))
        return
    print_rows(
        "consumer lag",
        ["group", "topic", "lag", "per partition"],
        [[r["group"], r["topic"], r["lag"], r["partitions"]] for r in rows],
    )


@db_app.command("migrate")
def db_migrate(data_dir: DataDir = None, clickhouse: ClickHouseDsn = None) -> None:
    """Apply pending ClickHouse migrations."""
    from stream_aimass.clickhouse.client import get_client, redact_dsn
    from stream_aimass.clickhouse.migrations import migrate

    settings = settings_or_exit(data_dir=data_dir, clickhouse_dsn=clickhouse)
    try:
        applied = migrate(get_client(settings), settings.clickhouse_cluster)
    except Exception as exc:
        dsn = redact_dsn(settings.resolved_clickhouse_dsn)
        raise fail(f"migration on {dsn} failed: {exc}") from None
    out.print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@db_app.command("tenant-reader")
def db_tenant_reader(
    tenant: Annotated[str, typer.Argument(help="Tenant id whose rows the user may read.")],
    user: Annotated[
        str | None, typer.Option("--user", help="User name [default: aimass_reader_TENANT].")
    ] = None,
    password_env: Annotated[
        str | None,
        typer.Option("--password-env", metavar="VAR", help="Read the password from env VAR."),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    print_sql: Annotated[
        bool, typer.Option("--print-sql", help="Print the SQL instead of applying it.")
    ] = False,
    data_dir: DataDir = None,
    clickhouse: ClickHouseDsn = None,
) -> None:
    """Create a read-only user that sees one tenant's rows (role, grants, row policies).

    Needs a ClickHouse server: embedded chdb has no users or row policies (with --print-sql
    it still prints the SQL). See ops/clickhouse/tenants/README.md.
    """
    import os

    from stream_aimass.clickhouse.client import redact_dsn
    from stream_aimass.clickhouse.tenants import (
        CHDB_SKIPPED,
        TenantAccessError,
        apply_sql,
        check_tenant,
        check_user,
        default_user,
        password_sha256,
        render_tenant_reader,
        tables_without_tenant,
        tenant_tables,
    )

    try:
        check_tenant(tenant)
        login = check_user(user) if user is not None else default_user(tenant)
    except TenantAccessError as exc:
        raise fail(str(exc)) from None
    if password_env and password_stdin:
        raise fail("give --password-env VAR or --password-stdin, not both")
    password: str | None = None
    if password_env:
        password = os.environ.get(password_env, "")
        if not password:
            raise fail(f"the environment variable {password_env} (--password-env) is not set")
    elif password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise fail("--password-stdin: read an empty password")
    settings = settings_or_exit(data_dir=data_dir, clickhouse_dsn=clickhouse)
    dsn = redact_dsn(settings.resolved_clickhouse_dsn)
    embedded = settings.resolved_clickhouse_dsn.startswith("chdb://")
    if embedded and not print_sql:
        console.print(f"{CHDB_SKIPPED} ({dsn}); --print-sql shows the SQL", markup=False)
        return
    client = clickhouse_client(settings)
    try:
        database = str(client.command("SELECT currentDatabase()"))
        tables = tenant_tables(client, database)
        sql = render_tenant_reader(
            tenant,
            database,
            tables,
            user=login,
            password_hash=password_sha256(password) if password is not None else None,
        )
    except TenantAccessError as exc:
        raise fail(str(exc)) from None
    if print_sql:
        out.print(sql, markup=False, end="")
        if embedded:
            console.print(f"{CHDB_SKIPPED} ({dsn})", markup=False)
        return
    if password is None:
        raise fail("the user needs a password: --password-env VAR or --password-stdin")
    try:
        apply_sql(client, sql)
    except Exception as exc:
        raise fail(f"applying the tenant reader on {dsn} failed: {exc}") from None
    hidden = tables_without_tenant(client, database)
    out.print(
        f"user {login} reads tenant {tenant}'s rows of {len(tables)} tables in {database} "
        f"({', '.join(tables)})"
        + (f"; not granted (no tenant column): {', '.join(hidden)}" if hidden else ""),
        markup=False,
    )


@topics_app.command("create")
def topics_create(bootstrap: Bootstrap = None) -> None:
    """Create the pipeline's topics on a real Kafka cluster (idempotent)."""
    from stream_aimass.kafka.topics import create_on_cluster

    settings = settings_or_exit(kafka_bootstrap=bootstrap)
    if settings.embedded_kafka:
        raise fail(
            "topics create is for a real cluster: pass --bootstrap HOST:PORT "
            "(the embedded broker creates its topics itself)"
        )
    from confluent_kafka import KafkaException

    from stream_aimass.settings import SecurityConfigError

    try:
        outcome = create_on_cluster(settings)
    except (SecurityConfigError, KafkaException) as exc:
        raise fail(str(exc)) from None
    for name, result in outcome.items():
        out.print(f"{name}: {result}")
    bad = [n for n, r in outcome.items() if r.startswith(("failed", "mismatch"))]
    if bad:
        console.print(
            f"error: {len(bad)} topic(s) failed or differ from topics/*.config.json: "
            + ", ".join(bad)
            + " (a topic's partitions cannot shrink: recreate it, or change its config)"
        )
        raise typer.Exit(1)


@topics_app.command("list")
def topics_list() -> None:
    """Show the configured topics with partitions, key and retention."""
    from stream_aimass.kafka.topics import configured_topics

    rows = [
        [t.name, t.partitions, t.key, t.retention_ms, t.cleanup_policy]
        for t in configured_topics(settings_or_exit())
    ]
    print_rows("topics", ["topic", "partitions", "key", "retention_ms", "cleanup"], rows)


@commands.command("settings")
def settings_cmd(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="The table of docs/configuration.md.")
    ] = False,
) -> None:
    """Show every setting with its env var, default and current value."""
    from stream_aimass.settings import settings_markdown, settings_table

    rows = settings_table(settings_or_exit())
    if markdown:
        sys.stdout.write(settings_markdown())
        return
    print_rows(
        "settings",
        ["env var", "value", "default"],
        [[r["env"], r["value"], r["default"]] for r in rows],
    )
