"""eval summaries: ROUGE of the extractive summaries next to the lead baseline (and of the
generated ones with summary_model), JSON and a PNG; bad input is a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stream_aimass.cli.main import app
from stream_aimass.evaluation.summaries import shipped_set
from stream_aimass.testing import make_tiny_generator


@pytest.fixture()
def env(tmp_path: Path, tiny_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AIMASS_MODEL_DIR", str(tiny_encoder_dir))
    monkeypatch.setenv("AIMASS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIMASS_DTYPE", "fp32")
    monkeypatch.setenv("AIMASS_DEVICE", "cpu")
    small = tmp_path / "small.jsonl"
    small.write_text("".join(shipped_set("dev").read_text().splitlines(keepends=True)[:6]))
    return small


def _report(output: str) -> dict:  # type: ignore[type-arg]
    return json.loads(output[output.index("{\n") :])  # type: ignore[no-any-return]


def test_extractive_and_lead_are_scored_with_a_png(env: Path) -> None:
    result = CliRunner().invoke(
        app, ["eval", "summaries", "--data", str(env), "--sentences", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = _report(result.stdout)
    assert report["articles"] == 6 and report["sentences"] == 2
    assert set(report["systems"]) == {"extractive", "lead2"}
    for m in ("rouge1", "rouge2", "rougeL"):
        assert 0.0 < report["systems"]["extractive"][m] < 1.0
    assert "vs_lead2" in report["systems"]["extractive"]
    assert 0.0 <= report["summary_share_of_model_time"] < 1.0
    assert Path(report["plot"]).read_bytes()[:4] == b"\x89PNG"


def test_a_summary_model_adds_the_generated_system(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_tiny_generator(tmp_path / "t5", kind="seq2seq")
    monkeypatch.setenv("AIMASS_SUMMARY_MODEL", str(model))
    monkeypatch.setenv("AIMASS_SUMMARY_MAX_NEW_TOKENS", "5")
    result = CliRunner().invoke(app, ["eval", "summaries", "--data", str(env), "--json"])
    assert result.exit_code == 0, result.output
    report = _report(result.stdout)
    assert set(report["systems"]) == {"extractive", "lead3", "generated"}
    assert report["generator"]["name"] == "t5" and report["generator"]["kind"] == "seq2seq"


def test_bad_inputs_are_clear_errors(env: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no summary here"}\n')
    result = runner.invoke(app, ["eval", "summaries", "--data", str(bad)])
    assert result.exit_code != 0 and "'summary' must be a non-empty string" in result.output
    missing = runner.invoke(app, ["eval", "summaries", "--data", str(tmp_path / "none.jsonl")])
    assert missing.exit_code != 0 and "cannot read" in missing.output
    refused = runner.invoke(app, ["eval", "summaries", "--data", str(env), "--sentences", "0"])
    assert refused.exit_code != 0


def test_a_model_that_cannot_generate_is_a_clear_error(
    env: Path, tiny_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIMASS_SUMMARY_MODEL", str(tiny_encoder_dir))
    result = CliRunner().invoke(app, ["eval", "summaries", "--data", str(env)])
    assert result.exit_code != 0 and "not a seq2seq or causal LM" in result.output
