"""The ``stream-aimass`` command line.

Heavy imports (torch, transformers, faust, chdb) happen inside commands so that ``--help``
stays instant. Flags mirror settings; a flag left out falls back to ``AIMASS_*`` env vars.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from stream_aimass.cli_support import DataDir, JsonFlag, console, fail, out
from stream_aimass.cli_support import settings_or_exit as _settings
from stream_aimass.cli_train import register as register_training_commands
from stream_aimass.settings import Settings

app = typer.Typer(
    name="stream-aimass",
    help="Real-time AI enrichment of event streams: Kafka in, transformers, ClickHouse out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
topics_app = typer.Typer(help="Kafka topics of the pipeline.", no_args_is_help=True)
db_app = typer.Typer(help="ClickHouse schema.", no_args_is_help=True)
produce_app = typer.Typer(help="Send JSONL files to the input topics.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(db_app, name="db")
app.add_typer(produce_app, name="produce")
register_training_commands(app)

Bootstrap = Annotated[
    str | None,
    typer.Option("--bootstrap", help="Kafka bootstrap servers [env AIMASS_KAFKA_BOOTSTRAP]."),
]
ClickHouseDsn = Annotated[
    str | None,
    typer.Option("--clickhouse", help="ClickHouse DSN [env AIMASS_CLICKHOUSE_DSN]."),
]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _print_rows(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(_jsonable(v)) for v in row))
    out.print(table)


def _resolve_bootstrap(settings: Settings) -> str:
    """A broker address for client-only commands (no in-process broker for them)."""
    if not settings.embedded_kafka:
        return settings.kafka_bootstrap
    addr_file = settings.data_dir / "broker.addr"
    if addr_file.exists():
        return addr_file.read_text().strip()
    raise fail(
        "this command needs a running broker: start one with `stream-aimass broker` "
        "(it writes <data-dir>/broker.addr) or pass --bootstrap HOST:PORT"
    )


# -- demo ----------------------------------------------------------------------------------


DEMO_ROWS = 12  # rows of each query the demo prints (the JSON summary has them all)


@app.command()
def demo(
    documents: Annotated[int, typer.Option(min=1, help="Documents to stream.")] = 1000,
    events: Annotated[int, typer.Option(min=0, help="User events to stream.")] = 2000,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
    seed: Annotated[int, typer.Option(help="Seed of the generated stream.")] = 7,
) -> None:
    """Run the whole pipeline on the embedded stack over a generated news stream."""
    from stream_aimass.demo import run_demo

    settings = _settings(data_dir=data_dir, kafka_bootstrap="embedded")
    if settings.clickhouse_dsn:
        settings = settings.model_copy(update={"clickhouse_dsn": ""})
    summary = run_demo(settings, documents, events, seed=seed, console=console, quiet=as_json)
    if as_json:
        out.print_json(json.dumps(summary, default=_jsonable))
        return
    out.print(
        f"\n[bold]{summary['documents_enriched']}[/] documents enriched, "
        f"[bold]{summary['dead_letters']}[/] dead letters, {summary['events_stored']} user events "
        f"stored, {summary['recommendations_stored']} recommendations, "
        f"in {summary['seconds']:.1f} s "
        f"([bold]{summary['docs_per_s']:.0f}[/] docs/s; model {summary['model']['name']} "
        f"{summary['model']['version']} on {summary['model']['device']}/"
        f"{summary['model']['dtype']})"
    )
    example = summary.get("example_recommendation")
    if example:
        _print_rows(
            f"recommendations for {example['tenant']}/{example['user_id']} after event "
            f"{example['trigger_event_id']}" + (" (cold start)" if example["cold_start"] else ""),
            ["item_id", "score", "title"],
            [[i["item_id"], i["score"], i["title"]] for i in example["items"]],
        )
    for name, result in summary["queries"].items():
        rows = result["rows"]
        _print_rows(f"query {name}", result["columns"], rows[:DEMO_ROWS])
        if len(rows) > DEMO_ROWS:
            out.print(f"  ({len(rows) - DEMO_ROWS} more rows: stream-aimass query {name})")
    out.print(
        f"\nData in {settings.data_dir}. Try: stream-aimass query category-mix "
        f"--data-dir {settings.data_dir}"
    )


# -- worker and broker -----------------------------------------------------------------------


@app.command()
def worker(
    role: Annotated[str, typer.Option(help="enrich | sink | all")] = "all",
    bootstrap: Bootstrap = None,
    clickhouse: ClickHouseDsn = None,
    data_dir: DataDir = None,
    web_port: Annotated[int | None, typer.Option(help="Web port [env AIMASS_WEB_PORT].")] = None,
    web_host: Annotated[
        str | None, typer.Option(help="Bind address [env AIMASS_WEB_HOST].")
    ] = None,
) -> None:
    """Run a worker (Faust app) until SIGTERM: enrich, sink or both roles."""
    from stream_aimass.pipeline import ROLES

    if role not in ROLES:
        raise fail(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
    settings = _settings(
        kafka_bootstrap=bootstrap,
        clickhouse_dsn=clickhouse,
        data_dir=data_dir,
        web_port=web_port,
        web_host=web_host,
    )
    from stream_aimass.app import run_worker
    from stream_aimass.observability import configure_logging
    from stream_aimass.settings import SecurityConfigError

    try:
        settings.check_security()  # missing certificate files, named, before anything starts
    except SecurityConfigError as exc:
        raise fail(str(exc)) from None
    configure_logging(settings.log_level)
    run_worker(settings, role)  # type: ignore[arg-type]


@app.command()
def broker(
    data_dir: DataDir = None,
) -> None:
    """Run a standalone embedded Kafka-protocol broker with the pipeline's topics."""
    from stream_aimass.embedded import EmbeddedBroker, write_address
    from stream_aimass.topics import configured_topics

    settings = _settings(data_dir=data_dir)
    stopping = False

    def _stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with EmbeddedBroker() as embedded:
        embedded.create_topics((t.name, t.partitions) for t in configured_topics(settings))
        addr_file = settings.data_dir / "broker.addr"
        write_address(addr_file, embedded.bootstrap)
        out.print(embedded.bootstrap)
        console.print(
            f"embedded broker at {embedded.bootstrap} (address in {addr_file}); topics: "
            + ", ".join(f"{n}[{p}]" for n, p in embedded.topics.items())
            + f"\nworkers: stream-aimass worker --role enrich --bootstrap {embedded.bootstrap}"
        )
        sys.stdout.flush()
        while not stopping:
            time.sleep(0.2)
        addr_file.unlink(missing_ok=True)


# -- produce ---------------------------------------------------------------------------------


def _produce(topic_kind: str, file: Path, bootstrap: str | None, data_dir: Path | None) -> None:
    from stream_aimass.produce import produce_file

    if not file.exists():
        raise fail(f"{file} does not exist")
    settings = _settings(kafka_bootstrap=bootstrap, data_dir=data_dir)
    address = _resolve_bootstrap(settings)
    topic = {
        "documents": settings.topic_documents,
        "events": settings.topic_events,
        "items": settings.topic_items,
    }[topic_kind]
    sent = asyncio.run(produce_file(settings, address, topic, topic_kind, file, console))
    out.print(f"{sent} messages sent to {topic}")


@produce_app.command("documents")
def produce_documents(
    file: Annotated[Path, typer.Argument(help="JSONL file, one document per line.")],
    bootstrap: Bootstrap = None,
    data_dir: DataDir = None,
) -> None:
    """Send a JSONL file of documents to the documents topic (lines sent as they are)."""
    _produce("documents", file, bootstrap, data_dir)


@produce_app.command("events")
def produce_events(
    file: Annotated[Path, typer.Argument(help="JSONL file, one event per line.")],
    bootstrap: Bootstrap = None,
    data_dir: DataDir = None,
) -> None:
    """Send a JSONL file of user events to the events topic."""
    _produce("events", file, bootstrap, data_dir)


@produce_app.command("items")
def produce_items(
    file: Annotated[Path, typer.Argument(help="JSONL file, one catalogue item per line.")],
    bootstrap: Bootstrap = None,
    data_dir: DataDir = None,
) -> None:
    """Send a JSONL file of catalogue items (id, tenant, text, title, category) to recommend."""
    _produce("items", file, bootstrap, data_dir)


@app.command()
def lag(
    bootstrap: Bootstrap = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Records each role has not committed yet, per topic (consumer-group lag)."""
    from stream_aimass.kafka import group_lag

    settings = _settings(kafka_bootstrap=bootstrap, data_dir=data_dir)
    address = _resolve_bootstrap(settings)
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
    _print_rows(
        "consumer lag",
        ["group", "topic", "lag", "per partition"],
        [[r["group"], r["topic"], r["lag"], r["partitions"]] for r in rows],
    )


# -- query, db, topics -------------------------------------------------------------------------


def _clickhouse(settings: Settings) -> Any:
    from stream_aimass.clickhouse import get_client, migrate, redact_dsn

    try:
        client = get_client(settings)
        migrate(client)
        return client
    except Exception as exc:
        dsn = redact_dsn(settings.resolved_clickhouse_dsn)
        hint = ""
        if "already running" in str(exc) or "CANNOT_OPEN_FILE" in str(exc):
            hint = " (a worker holds this data dir: embedded ClickHouse is one process per dir)"
        raise fail(f"cannot open ClickHouse at {dsn}{hint}: {exc}") from None


def _parse_when(value: str, option: str) -> datetime:
    """An ISO date or datetime from the command line, UTC when it names no zone."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise fail(
            f"{option} {value!r} is not an ISO date or datetime "
            "(e.g. 2026-11-01, 2026-11-01T08:00 or 2026-11-01T08:00:00+01:00)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@app.command()
def query(
    name: Annotated[
        str | None, typer.Argument(help="Named query from ops/clickhouse/queries.")
    ] = None,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
    clickhouse: ClickHouseDsn = None,
    list_queries: Annotated[bool, typer.Option("--list", help="List the named queries.")] = False,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant (queries that take one).")
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option("--from", help="Start: ISO date or datetime, UTC unless zoned (1970-01-01)."),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="End, exclusive: ISO date or datetime (far future)."),
    ] = None,
    entity: Annotated[
        str | None,
        typer.Option(
            "--entity", help="Knowledge-base entity id, e.g. company/apple (entity-trend)."
        ),
    ] = None,
) -> None:
    """Run a named analytics query.

    usage, top-entities, entity-trend: --tenant, --from, --to; entity-trend needs --entity.
    """
    from stream_aimass.clickhouse import (
        ALL_TIME,
        ClickHouseConfigError,
        query_names,
        query_parameters,
        run_named_query,
    )

    if list_queries or name is None:
        for q in query_names():
            out.print(q)
        return
    if name not in query_names():
        raise fail(f"unknown query {name!r}; available: {', '.join(query_names())}")
    start = _parse_when(from_, "--from") if from_ else ALL_TIME[0]
    end = _parse_when(to, "--to") if to else ALL_TIME[1]
    if start >= end:
        raise fail(f"--from {start.isoformat()} is not before --to {end.isoformat()}")
    parameters = {"tenant": tenant or "", "from": start, "to": end, "entity": entity or ""}
    wanted = query_parameters(name)
    if "entity" in wanted and not entity:
        # No entity has the id '': the query would quietly return nothing.
        raise fail(f"query {name} needs --entity ENTITY_ID (e.g. --entity company/apple)")
    given = {"tenant": tenant, "from": from_, "to": to, "entity": entity}
    ignored = [f"--{k}" for k, v in given.items() if v is not None and k not in wanted]
    if ignored:
        console.print(f"[yellow]note:[/] query {name} ignores {', '.join(ignored)}")
    settings = _settings(data_dir=data_dir, clickhouse_dsn=clickhouse)
    client = _clickhouse(settings)
    try:
        result = run_named_query(client, name, parameters)
    except ClickHouseConfigError as exc:
        raise fail(str(exc)) from None
    if as_json:
        rows = [{k: _jsonable(v) for k, v in r.items()} for r in result.as_dicts()]
        out.print_json(json.dumps({"query": name, "rows": rows}))
    else:
        _print_rows(name, result.columns, result.rows)


@db_app.command("migrate")
def db_migrate(data_dir: DataDir = None, clickhouse: ClickHouseDsn = None) -> None:
    """Apply pending ClickHouse migrations."""
    from stream_aimass.clickhouse import get_client, migrate, redact_dsn

    settings = _settings(data_dir=data_dir, clickhouse_dsn=clickhouse)
    try:
        applied = migrate(get_client(settings))
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

    from stream_aimass.clickhouse import redact_dsn
    from stream_aimass.tenants import (
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
    settings = _settings(data_dir=data_dir, clickhouse_dsn=clickhouse)
    dsn = redact_dsn(settings.resolved_clickhouse_dsn)
    embedded = settings.resolved_clickhouse_dsn.startswith("chdb://")
    if embedded and not print_sql:
        console.print(f"{CHDB_SKIPPED} ({dsn}); --print-sql shows the SQL", markup=False)
        return
    client = _clickhouse(settings)
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
    from stream_aimass.topics import create_on_cluster

    settings = _settings(kafka_bootstrap=bootstrap)
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
    from stream_aimass.topics import configured_topics

    rows = [
        [t.name, t.partitions, t.key, t.retention_ms, t.cleanup_policy]
        for t in configured_topics(_settings())
    ]
    _print_rows("topics", ["topic", "partitions", "key", "retention_ms", "cleanup"], rows)


# -- bench, settings -----------------------------------------------------------------------------


@app.command()
def bench(
    documents: Annotated[int, typer.Option(min=64, help="Documents in the run.")] = 2000,
    naive_documents: Annotated[
        int, typer.Option(min=8, help="Documents for the (slow) naive loop.")
    ] = 150,
    as_json: JsonFlag = False,
    out_dir: Annotated[Path, typer.Option("--out", help="Where JSON and PNG go.")] = Path(
        "bench-results"
    ),
    steady_seconds: Annotated[
        float, typer.Option(min=1, help="Length of the half-load latency phase.")
    ] = 10.0,
    heads: Annotated[
        str,
        typer.Option(
            help="Comma-separated numbers of 77-label classifier heads to time on the model "
            "thread (empty: skip).",
        ),
    ] = "0,1,3",
    recs_events: Annotated[
        int,
        typer.Option(min=0, help="User events for the recommendation path (backlog; 0: skip)."),
    ] = 5000,
    loads: Annotated[
        str,
        typer.Option(
            help="Offered loads of the steady phases, as fractions of the measured maximum "
            "(0.5 always runs: the headline latency).",
        ),
    ] = "0.25,0.5,0.75",
    device: Annotated[
        str | None, typer.Option(help="auto | cpu | cuda (env AIMASS_DEVICE); every phase.")
    ] = None,
) -> None:
    """Measure pipeline vs model ceiling vs a naive loop, in one run (ratios, JSON, PNG)."""
    from stream_aimass.bench import run_bench

    try:
        head_counts = [int(x) for x in heads.split(",") if x.strip()]
    except ValueError:
        raise fail(f"--heads takes comma-separated integers, not {heads!r}") from None
    if any(c < 0 or c > 16 for c in head_counts):
        raise fail("--heads counts must be between 0 and 16")
    try:
        fractions = [float(x) for x in loads.split(",") if x.strip()]
    except ValueError:
        raise fail(f"--loads takes comma-separated fractions, not {loads!r}") from None
    if any(not 0 < f <= 1.5 for f in fractions):
        raise fail("--loads fractions must be above 0 and at most 1.5")
    settings = _settings(device=device)
    from stream_aimass.models.encoder import ModelLoadError

    try:
        result = run_bench(
            settings, documents, naive_documents, out_dir, console=console,
            steady_s=steady_seconds, heads=head_counts, recs_events=recs_events,
            loads=fractions,
        )  # fmt: skip
    except ModelLoadError as exc:
        raise fail(str(exc)) from None
    if as_json:
        out.print_json(json.dumps(result))
        return
    rows = [[k, v] for k, v in result.items() if not isinstance(v, dict | list)]
    _print_rows("bench", ["metric", "value"], rows)
    sweep = result.get("load_sweep") or []
    if sweep:
        keys = ["offered_fraction", "offered_docs_per_s", "achieved_docs_per_s", "p50_ms",
                "p95_ms", "p99_ms"]  # fmt: skip
        _print_rows("latency against offered load", keys, [[p[k] for k in keys] for p in sweep])
    out.print(f"written: {out_dir / 'bench.json'}, {out_dir / 'bench.png'}")


@app.command("settings")
def settings_cmd(
    markdown: Annotated[bool, typer.Option("--markdown", help="README table format.")] = False,
) -> None:
    """Show every setting with its env var, default and current value."""
    from stream_aimass.settings import settings_table

    rows = settings_table(_settings())
    if markdown:
        out.print("| setting | env var | default | description |")
        out.print("|---|---|---|---|")
        for r in rows:
            out.print(f"| `{r['name']}` | `{r['env']}` | `{r['default']}` | {r['description']} |")
        return
    _print_rows(
        "settings",
        ["env var", "value", "default"],
        [[r["env"], r["value"], r["default"]] for r in rows],
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
