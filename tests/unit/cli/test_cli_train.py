"""The training and model-library commands, end to end on a tiny encoder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stream_aimass.cli.main import app
from stream_aimass.testing import INTENT_ROWS as ROWS

runner = CliRunner()


def _csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "category")):
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture()
def env(tmp_path: Path, tiny_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AIMASS_MODEL_DIR", str(tiny_encoder_dir))
    monkeypatch.setenv("AIMASS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIMASS_DTYPE", "fp32")
    return tmp_path


def test_train_eval_list_show_use(env: Path) -> None:
    data = _csv(env / "train.csv", ROWS)
    out = env / "data" / "models" / "intent"
    trained = runner.invoke(
        app,
        ["train", "classifier", "--data", str(data), "--dev", str(data), "--out", str(out),
         "--epochs", "3", "--json"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    summary = _last_json(trained.stdout)
    assert summary["name"] == "intent" and summary["mode"] == "head"
    version = summary["version"]
    assert (out / version / "model.json").is_file()
    assert "epoch 3:" in trained.output

    evaluated = runner.invoke(
        app, ["eval", "classifier", "--model", "intent", "--data", str(data), "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    report = _last_json(evaluated.stdout)
    assert {"accuracy", "macro_f1", "per_class", "confusion", "plot"} <= set(report)
    assert Path(report["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    listed = runner.invoke(app, ["models", "list", "--json"])
    assert [m["version"] for m in _last_json(listed.stdout)["models"]] == [version]
    shown = runner.invoke(app, ["models", "show", f"intent@{version[:6]}"])
    assert _last_json(shown.stdout)["labels"] == ["card", "transfer"]

    used = runner.invoke(app, ["models", "use", "intent", "intent"])
    assert used.exit_code == 0, used.output
    specs = json.loads((env / "data" / "classifiers.json").read_text())
    assert specs == {"intent": str((out / version).resolve())}
    removed = runner.invoke(app, ["models", "use", "intent", "--remove"])
    assert removed.exit_code == 0
    assert json.loads((env / "data" / "classifiers.json").read_text()) == {}


def _last_json(text: str) -> dict:  # type: ignore[type-arg]
    start = text.index("{")
    return json.loads(text[start:])


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        (
            ROWS,
            ("sentence", "category"),
            "no text column 'text'; available columns: 'sentence', 'category'",
        ),
        ([], ("text", "category"), "header row but no examples"),
        ([*ROWS, ("lonely example", "refund")], ("text", "category"), "'refund' has 1 example"),
    ],
)
def test_bad_training_data_is_a_clear_error(
    env: Path, rows: list[tuple[str, str]], header: tuple[str, str], message: str
) -> None:
    data = _csv(env / "bad.csv", rows, header)
    result = runner.invoke(
        app, ["train", "classifier", "--data", str(data), "--out", str(env / "m")]
    )
    assert result.exit_code == 2
    assert message in result.output


def test_missing_file_and_bad_mode_are_clear_errors(env: Path) -> None:
    result = runner.invoke(
        app, ["train", "classifier", "--data", str(env / "nope.csv"), "--out", str(env / "m")]
    )
    assert result.exit_code == 2 and "nope.csv" in result.output
    data = _csv(env / "train.csv", ROWS)
    result = runner.invoke(
        app, ["train", "classifier", "--data", str(data), "--out", str(env / "m"), "--mode", "x"]
    )
    assert result.exit_code == 2 and "--mode must be head or finetune" in result.output


def test_unknown_model_is_a_clear_error(env: Path) -> None:
    for args in (["models", "show", "nope"], ["models", "use", "x", "nope"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "no model 'nope'" in result.output


def test_data_split_writes_train_and_dev(env: Path) -> None:
    data = _csv(env / "all.csv", ROWS * 5)
    result = runner.invoke(app, ["data", "split", str(data), "--out-dir", str(env / "split")])
    assert result.exit_code == 0, result.output
    train = list(csv.DictReader((env / "split" / "train.csv").open()))
    dev = list(csv.DictReader((env / "split" / "dev.csv").open()))
    assert len(train) + len(dev) == 40 and len(dev) == 4


def test_progress_is_printed_as_lines_where_stderr_is_not_a_terminal() -> None:
    from io import StringIO

    from rich.console import Console
    from rich.progress import Progress

    from stream_aimass.cli.support import ProgressReporter

    sink = StringIO()
    progress = Progress(console=Console(file=sink, force_terminal=False, width=100))
    reporter = ProgressReporter(progress)
    with progress:
        reporter.start("finetune", 40)
        for _ in range(40):
            reporter.advance()
        reporter.start("tiny", 3)  # too short to report in tenths
        reporter.advance(3)
    lines = [line for line in sink.getvalue().splitlines() if line.startswith("finetune:")]
    assert [line.split()[1] for line in lines] == [f"{4 * k}/40" for k in range(1, 11)]
    assert "tiny:" not in sink.getvalue()
