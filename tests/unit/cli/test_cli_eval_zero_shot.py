"""eval zero-shot: the topic labels of the settings measured on labelled texts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stream_aimass.cli.main import app


@pytest.fixture()
def env(tmp_path: Path, tiny_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AIMASS_MODEL_DIR", str(tiny_encoder_dir))
    monkeypatch.setenv("AIMASS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIMASS_DTYPE", "fp32")
    return tmp_path


def _report(output: str) -> dict:  # type: ignore[type-arg]
    return json.loads(output[output.index("{\n") :])  # type: ignore[no-any-return]


def test_zero_shot_labels_are_scored_on_a_csv(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMASS_LABELS", '{"money": "banks and payments", "sport": "football"}')
    data = env / "t.csv"
    data.write_text("text,category\nthe bank sent my payment,money\nthe match ended 2-1,sport\n")
    result = CliRunner().invoke(app, ["eval", "zero-shot", "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    report = _report(result.stdout)
    assert report["examples"] == 2 and 0.0 <= report["accuracy"] <= 1.0
    assert set(report["per_class"]) == {"money", "sport"}
    assert Path(report["plot"]).read_bytes()[:4] == b"\x89PNG"


def test_the_demo_corpus_is_labelled_with_its_topics(env: Path) -> None:
    result = CliRunner().invoke(
        app, ["eval", "zero-shot", "--synthetic", "--documents", "40", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = _report(result.stdout)
    assert report["examples"] == 40 and report["data"] == "synthetic"
    assert len(report["encoder"]["version"]) == 12


def test_bad_zero_shot_inputs_are_clear_errors(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    neither = runner.invoke(app, ["eval", "zero-shot"])
    assert neither.exit_code == 2 and "--data CSV or --synthetic" in neither.output
    data = env / "t.csv"
    data.write_text("text,category\nsome text,cooking\nmore text,cooking\n")
    unknown = runner.invoke(app, ["eval", "zero-shot", "--data", str(data)])
    assert unknown.exit_code == 2 and "not among the zero-shot labels: cooking" in unknown.output
    monkeypatch.setenv("AIMASS_LABELS", "{}")
    off = runner.invoke(app, ["eval", "zero-shot", "--synthetic"])
    assert off.exit_code == 2 and "labels setting is empty" in off.output
