"""The ``bench`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from stream_aimass.cli.support import (
    JsonFlag,
    console,
    fail,
    out,
    print_rows,
    settings_or_exit,
)

commands = typer.Typer()


@commands.command()
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
    processes: Annotated[
        int,
        typer.Option(
            min=0,
            max=64,
            help="Roles phase: forward-free enrich processes sharing the device (1 always "
            "runs too, for the per-process figures), then a sink process; 0: skip it.",
        ),
    ] = 1,
    roles_documents: Annotated[
        int, typer.Option(min=16, help="Documents of the roles phase's backlog.")
    ] = 6000,
) -> None:
    """Measure pipeline vs model ceiling vs a naive loop, in one run (ratios, JSON, PNG)."""
    from stream_aimass.tools.bench import run_bench

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
    settings = settings_or_exit(device=device)
    from stream_aimass.models.encoder import ModelLoadError

    try:
        result = run_bench(
            settings, documents, naive_documents, out_dir, console=console,
            steady_s=steady_seconds, heads=head_counts, recs_events=recs_events,
            loads=fractions, roles_processes=[processes] if processes else [],
            roles_documents=roles_documents,
        )  # fmt: skip
    except ModelLoadError as exc:
        raise fail(str(exc)) from None
    if as_json:
        out.print_json(json.dumps(result))
        return
    rows = [[k, v] for k, v in result.items() if not isinstance(v, dict | list)]
    print_rows("bench", ["metric", "value"], rows)
    sweep = result.get("load_sweep") or []
    if sweep:
        keys = ["offered_fraction", "offered_docs_per_s", "achieved_docs_per_s", "p50_ms",
                "p95_ms", "p99_ms"]  # fmt: skip
        print_rows("latency against offered load", keys, [[p[k] for k in keys] for p in sweep])
    out.print(f"written: {out_dir / 'bench.json'}, {out_dir / 'bench.png'}")
