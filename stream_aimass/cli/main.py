"""The ``stream-aimass`` command line: the root app, with every command module's commands.

Heavy imports (torch, transformers, faust, chdb) happen inside commands so that ``--help``
stays instant. Flags mirror settings; a flag left out falls back to ``AIMASS_*`` env vars.
"""

from __future__ import annotations

import typer

from stream_aimass.cli import (
    bench,
    data,
    eval,
    eval_pii,  # noqa: F401  (adds `eval pii` to eval_app)
    eval_summaries,  # noqa: F401  (adds `eval summaries` to eval_app)
    models,
    ops,
    train,
    worker,
)

app = typer.Typer(
    name="stream-aimass",
    help="Real-time AI enrichment of event streams: Kafka in, transformers, ClickHouse out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


app.add_typer(worker.commands)
app.add_typer(data.produce_app, name="produce")
app.add_typer(data.commands)
app.add_typer(ops.topics_app, name="topics")
app.add_typer(ops.db_app, name="db")
app.add_typer(ops.dlq_app, name="dlq")
app.add_typer(ops.commands)
app.add_typer(bench.commands)
app.add_typer(train.train_app, name="train")
app.add_typer(eval.eval_app, name="eval")
app.add_typer(models.models_app, name="models")
app.add_typer(data.data_app, name="data")


def main() -> None:
    app()
