"""Commands for data in and out: ``produce``, ``query`` and ``data split``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from stream_aimass.cli.support import (
    Bootstrap,
    ClickHouseDsn,
    DataDir,
    JsonFlag,
    LabelColumnOpt,
    SeparatorOpt,
    TextColumnOpt,
    clickhouse_client,
    console,
    fail,
    jsonable,
    out,
    parse_when,
    print_rows,
    read_labelled,
    resolve_bootstrap,
    settings_or_exit,
)

commands = typer.Typer()


produce_app = typer.Typer(help="Send JSONL files to the input topics.", no_args_is_help=True)


def _produce(topic_kind: str, file: Path, bootstrap: str | None, data_dir: Path | None) -> None:
    from stream_aimass.tools.produce import produce_file

    if not file.exists():
        raise fail(f"{file} does not exist")
    settings = settings_or_exit(kafka_bootstrap=bootstrap, data_dir=data_dir)
    address = resolve_bootstrap(settings)
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


@commands.command()
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
    stage: Annotated[
        str | None, typer.Option("--stage", help="Dead letters of this stage (dead-letter-list).")
    ] = None,
    source_topic: Annotated[
        str | None,
        typer.Option("--source-topic", help="Dead letters from this topic (dead-letter-list)."),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", min=1, max=100_000, help="Most rows (dead-letter-list, summaries)."
        ),
    ] = 100,
) -> None:
    """Run a named analytics query.

    usage, top-entities, entity-trend, pii-summary, summaries: --tenant, --from, --to;
    entity-trend needs --entity.
    """
    from stream_aimass.clickhouse.client import ClickHouseConfigError
    from stream_aimass.clickhouse.queries import (
        ALL_TIME,
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
    start = parse_when(from_, "--from") if from_ else ALL_TIME[0]
    end = parse_when(to, "--to") if to else ALL_TIME[1]
    if start >= end:
        raise fail(f"--from {start.isoformat()} is not before --to {end.isoformat()}")
    parameters = {
        "tenant": tenant or "", "from": start, "to": end, "entity": entity or "",
        "stage": stage or "", "topic": source_topic or "", "limit": limit,
    }  # fmt: skip
    wanted = query_parameters(name)
    if "entity" in wanted and not entity:
        # No entity has the id '': the query would quietly return nothing.
        raise fail(f"query {name} needs --entity ENTITY_ID (e.g. --entity company/apple)")
    given = {"tenant": tenant, "from": from_, "to": to, "entity": entity, "stage": stage,
             "topic": source_topic}  # fmt: skip
    flags = {"topic": "source-topic"}
    ignored = [
        f"--{flags.get(k, k)}" for k, v in given.items() if v is not None and k not in wanted
    ]
    if ignored:
        console.print(f"[yellow]note:[/] query {name} ignores {', '.join(ignored)}")
    settings = settings_or_exit(data_dir=data_dir, clickhouse_dsn=clickhouse)
    client = clickhouse_client(settings)
    try:
        result = run_named_query(client, name, parameters)
    except ClickHouseConfigError as exc:
        raise fail(str(exc)) from None
    if as_json:
        rows = [{k: jsonable(v) for k, v in r.items()} for r in result.as_dicts()]
        out.print_json(json.dumps({"query": name, "rows": rows}))
    else:
        print_rows(name, result.columns, result.rows)


data_app = typer.Typer(help="Prepare labelled data.", no_args_is_help=True)


@data_app.command("split")
def data_split(
    data: Annotated[Path, typer.Argument(help="Labelled CSV to split.")],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Writes train.csv and dev.csv.")],
    dev_fraction: Annotated[float, typer.Option("--dev-fraction")] = 0.1,
    seed: Annotated[int, typer.Option("--seed")] = 13,
    text_column: TextColumnOpt = "text",
    label_column: LabelColumnOpt = "category",
    multi_label: Annotated[bool, typer.Option("--multi-label")] = False,
    separator: SeparatorOpt = "|",
) -> None:
    """A stratified, seeded train/dev split of a labelled CSV."""
    from stream_aimass.training.data import stratified_split, write_classification_csv

    if not 0 < dev_fraction < 1:
        raise fail("--dev-fraction must be between 0 and 1")
    dataset = read_labelled(data, text_column, label_column, multi_label, separator)
    train, dev = stratified_split(dataset, dev_fraction, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    for part, rows in (("train", train), ("dev", dev)):
        write_classification_csv(
            rows, out_dir / f"{part}.csv", text_column, label_column, separator
        )
    out.print(
        f"{out_dir}/train.csv: {len(train.texts)} rows; {out_dir}/dev.csv: {len(dev.texts)} rows"
    )
