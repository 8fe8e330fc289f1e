"""What every command module shares: the consoles, common options and error exits."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from stream_aimass.jobs.store import PROGRESS_FILE_ENV
from stream_aimass.settings import Settings, load_settings

console = Console(stderr=True, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Working directory [env AIMASS_DATA_DIR].")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a clear error and return the exit to raise (exit code 2: bad input)."""
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def settings_or_exit(**overrides: Any) -> Settings:
    """Settings from env + flags; invalid values end the command with one readable line."""
    from pydantic import ValidationError

    try:
        return load_settings(**overrides)
    except ValidationError as exc:
        # A cross-field check has no location: its message names the settings itself.
        problems = "; ".join(
            f"AIMASS_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
            if e["loc"]
            else e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise fail(f"invalid settings: {problems}") from None


Bootstrap = Annotated[
    str | None,
    typer.Option("--bootstrap", help="Kafka bootstrap servers [env AIMASS_KAFKA_BOOTSTRAP]."),
]


ClickHouseDsn = Annotated[
    str | None,
    typer.Option("--clickhouse", help="ClickHouse DSN [env AIMASS_CLICKHOUSE_DSN]."),
]


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def print_rows(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(jsonable(v)) for v in row))
    out.print(table)


def resolve_bootstrap(settings: Settings) -> str:
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


def parse_when(value: str, option: str) -> datetime:
    """An ISO date or datetime from the command line, UTC when it names no zone."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise fail(
            f"{option} {value!r} is not an ISO date or datetime "
            "(e.g. 2026-11-01, 2026-11-01T08:00 or 2026-11-01T08:00:00+01:00)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def clickhouse_client(settings: Settings) -> Any:
    from stream_aimass.clickhouse.client import get_client, redact_dsn
    from stream_aimass.clickhouse.migrations import migrate

    try:
        client = get_client(settings)
        migrate(client, settings.clickhouse_cluster)
        return client
    except Exception as exc:
        dsn = redact_dsn(settings.resolved_clickhouse_dsn)
        hint = ""
        if "already running" in str(exc) or "CANNOT_OPEN_FILE" in str(exc):
            hint = " (a worker holds this data dir: embedded ClickHouse is one process per dir)"
        raise fail(f"cannot open ClickHouse at {dsn}{hint}: {exc}") from None


class ProgressReporter:
    """Training progress as rich progress bars on stderr, one per stage. Where stderr is
    not a terminal (a log file, a training job), rich draws no bars, so a plain line is
    printed at each tenth of a stage instead."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None
        self.plain = not progress.console.is_terminal
        self.stage, self.total, self.done, self.shown, self.began = "", 0, 0, 0, 0.0
        # A training job (jobs/runner.py) reads progress as JSON lines from this file.
        events = os.environ.get(PROGRESS_FILE_ENV)
        self.events = Path(events) if events else None
        self.reported = 0

    def _event(self, event: dict[str, Any]) -> None:
        if self.events is not None:
            with self.events.open("a") as fh:
                fh.write(json.dumps(event, default=str) + "\n")

    def start(self, stage: str, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, visible=False)
        self.task = self.progress.add_task(stage, total=total)
        self.stage, self.total, self.done, self.shown, self.reported = stage, total, 0, 0, 0
        self.began = time.monotonic()
        self._event({"stage": stage, "done": 0, "total": total, "percent": 0.0, "seconds": 0.0})

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)
        self.done += n
        hundredth = self.done * 100 // max(1, self.total)
        if hundredth > self.reported:
            self.reported = hundredth
            seconds = round(time.monotonic() - self.began, 1)
            self._event({"stage": self.stage, "done": self.done, "total": self.total,
                         "percent": float(min(100, hundredth)), "seconds": seconds})  # fmt: skip
        tenth = self.done * 10 // max(1, self.total)
        if self.plain and self.total >= 10 and tenth > self.shown:
            self.shown = tenth
            elapsed = time.monotonic() - self.began
            self.progress.console.print(
                f"{self.stage}: {self.done}/{self.total} ({min(100, tenth * 10)}%) {elapsed:.0f} s"
            )

    def epoch(self, epoch: int, metrics: dict[str, Any]) -> None:
        shown = "  ".join(f"{k}={v}" for k, v in metrics.items() if k != "epoch")
        self.progress.console.print(f"epoch {epoch}: {shown}")
        self._event({"epoch": epoch, "metrics": {k: v for k, v in metrics.items() if k != "epoch"}})


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def read_labelled(
    path: Path, text_column: str, label_column: str, multi_label: bool, separator: str
) -> Any:
    from stream_aimass.training.data import DataError, read_classification_csv

    try:
        return read_classification_csv(
            path,
            text_column=text_column,
            label_column=label_column,
            multi_label=multi_label,
            separator=separator,
        )
    except DataError as exc:
        raise fail(str(exc)) from None


ModelsDir = Annotated[
    Path | None, typer.Option("--models-dir", help="Model library [env AIMASS_MODELS_DIR].")
]


EncoderDir = Annotated[
    Path | None,
    typer.Option("--model-dir", help="Base encoder directory [env AIMASS_MODEL_DIR]."),
]


TextColumnOpt = Annotated[str, typer.Option("--text-column", help="Column holding the text.")]


LabelColumnOpt = Annotated[str, typer.Option("--label-column", help="Column holding the label(s).")]


SeparatorOpt = Annotated[
    str, typer.Option("--separator", help="Multi-label: separator between labels in a cell.")
]


def linking_inputs(settings: Settings, path: Path) -> tuple[list[Any], Any, Any]:
    """The gold examples of ``path``, the encoder and a dictionary-matching extractor with
    the settings' linking weights: what ``train linking`` and ``eval linking`` start from.
    A bad file or KB exits with its reason."""
    from stream_aimass.entities.extract import EntityExtractor
    from stream_aimass.entities.kb import KBError
    from stream_aimass.entities.linking import load_link_weights
    from stream_aimass.evaluation.linking import read_linking_file
    from stream_aimass.models.encoder import Encoder
    from stream_aimass.training.data import DataError

    try:
        examples = read_linking_file(path)
        weights = load_link_weights(settings.link_weights_path, settings.link_nil_threshold)
    except (DataError, ValueError) as exc:
        raise fail(str(exc)) from None
    encoder = Encoder(
        settings.resolved_model_dir, device=settings.device, dtype=settings.dtype,
        max_tokens=settings.max_tokens_per_document, name=settings.model_name,
    )  # fmt: skip
    try:
        extractor = EntityExtractor.build(
            encoder, kb_path=settings.kb_path, ner_model="",
            models_dir=settings.resolved_models_dir, cache_dir=settings.data_dir / "cache",
            weights=weights,
        )  # fmt: skip
    except KBError as exc:
        raise fail(str(exc)) from None
    return examples, encoder, extractor
