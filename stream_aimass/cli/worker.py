"""Commands that run the pipeline: ``demo``, ``worker`` and ``broker``."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from stream_aimass.cli.support import (
    Bootstrap,
    ClickHouseDsn,
    DataDir,
    JsonFlag,
    console,
    fail,
    jsonable,
    out,
    print_rows,
    settings_or_exit,
)

commands = typer.Typer()


DEMO_ROWS = 12  # rows of each query the demo prints (the JSON summary has them all)


@commands.command()
def demo(
    documents: Annotated[int, typer.Option(min=1, help="Documents to stream.")] = 1000,
    events: Annotated[int, typer.Option(min=0, help="User events to stream.")] = 2000,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
    seed: Annotated[int, typer.Option(help="Seed of the generated stream.")] = 7,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Run the stream through a worker that keeps running, with its console and "
            "API (no keys), and print their URLs.",
        ),
    ] = False,
) -> None:
    """Run the whole pipeline on the embedded stack over a generated news stream."""
    from stream_aimass.tools.demo import run_demo

    settings = settings_or_exit(data_dir=data_dir, kafka_bootstrap="embedded")
    if settings.clickhouse_dsn:
        settings = settings.model_copy(update={"clickhouse_dsn": ""})
    if serve:
        from stream_aimass.tools.demo_serve import serve_demo

        serve_demo(settings, documents, events, seed=seed, console=console)
        return
    summary = run_demo(settings, documents, events, seed=seed, console=console, quiet=as_json)
    if as_json:
        out.print_json(json.dumps(summary, default=jsonable))
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
        print_rows(
            f"recommendations for {example['tenant']}/{example['user_id']} after event "
            f"{example['trigger_event_id']}" + (" (cold start)" if example["cold_start"] else ""),
            ["item_id", "score", "title"],
            [[i["item_id"], i["score"], i["title"]] for i in example["items"]],
        )
    for name, result in summary["queries"].items():
        rows = result["rows"]
        print_rows(f"query {name}", result["columns"], rows[:DEMO_ROWS])
        if len(rows) > DEMO_ROWS:
            out.print(f"  ({len(rows) - DEMO_ROWS} more rows: stream-aimass query {name})")
    out.print(
        f"\nData in {settings.data_dir}. Try: stream-aimass query category-mix "
        f"--data-dir {settings.data_dir}"
    )


@commands.command()
def worker(
    role: Annotated[str, typer.Option(help="enrich | sink | events | all")] = "all",
    bootstrap: Bootstrap = None,
    clickhouse: ClickHouseDsn = None,
    data_dir: DataDir = None,
    web_port: Annotated[int | None, typer.Option(help="Web port [env AIMASS_WEB_PORT].")] = None,
    web_host: Annotated[
        str | None, typer.Option(help="Bind address [env AIMASS_WEB_HOST].")
    ] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Enrich processes sharing the device, each on web port + i "
            "[env AIMASS_ENRICH_PROCESSES; default 1 on CPU, 4 on CUDA].",
        ),
    ] = None,
) -> None:
    """Run a worker (Faust app) until SIGTERM: the enrich, sink or events role, or all."""
    from stream_aimass.pipeline import ROLES

    if role not in ROLES:
        raise fail(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
    settings = settings_or_exit(
        kafka_bootstrap=bootstrap,
        clickhouse_dsn=clickhouse,
        data_dir=data_dir,
        web_port=web_port,
        web_host=web_host,
        enrich_processes=processes,
    )
    from stream_aimass.privacy.policy import PolicyError
    from stream_aimass.privacy.stage import PiiStage

    try:
        PiiStage.from_settings(settings)  # a policy that cannot work, named, before the start
    except PolicyError as exc:
        raise fail(f"PII policy: {exc}") from None
    if settings.summary_model and role in ("enrich", "all"):
        from stream_aimass.models.encoder import ModelLoadError
        from stream_aimass.summaries.generative import check_generator_dir

        try:  # a model that cannot generate, named, before the start
            check_generator_dir(Path(settings.summary_model).expanduser())
        except ModelLoadError as exc:
            raise fail(f"AIMASS_SUMMARY_MODEL: {exc}") from None
    from stream_aimass.cli.processes import (
        check_processes,
        default_processes,
        die_with_parent,
        run_processes,
    )

    die_with_parent()
    count = default_processes(settings, role)
    problem = check_processes(settings, role, count)
    if problem is not None:
        raise fail(problem)
    from stream_aimass.app import run_worker
    from stream_aimass.observability import configure_logging
    from stream_aimass.settings import SecurityConfigError

    try:
        settings.check_security()  # missing certificate files, named, before anything starts
    except SecurityConfigError as exc:
        raise fail(str(exc)) from None
    configure_logging(settings.log_level)
    if count > 1:
        raise typer.Exit(run_processes(settings, count))
    run_worker(settings, role)  # type: ignore[arg-type]


@commands.command()
def broker(
    data_dir: DataDir = None,
    brokers: Annotated[
        int,
        typer.Option(
            min=1, max=9, help="Brokers in the embedded cluster (partition leaders spread)."
        ),
    ] = 1,
) -> None:
    """Run a standalone embedded Kafka-protocol broker with the pipeline's topics
    (`AIMASS_TOPIC_PARTITIONS` each)."""
    from stream_aimass.kafka.embedded import EmbeddedBroker, write_address
    from stream_aimass.kafka.topics import configured_topics

    settings = settings_or_exit(data_dir=data_dir)
    stopping = False

    def _stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with EmbeddedBroker(num_brokers=brokers) as embedded:
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
