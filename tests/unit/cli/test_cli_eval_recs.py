"""``stream-aimass eval recs`` end to end: a tiny encoder for plumbing, MiniLM for the figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stream_aimass.cli.main import app
from stream_aimass.evaluation.recs_synthetic import synthetic_events
from stream_aimass.models.encoder import weights_version
from stream_aimass.settings import default_model_dir
from stream_aimass.tools.corpus import generate_documents, write_jsonl

runner = CliRunner()

KEYS = {
    "k", "events", "targets", "skipped_repeats", "unknown_items", "users", "items",
    "recall@10", "ndcg@10", "popularity", "random", "recall_vs_popularity", "synthetic",
    "model", "encoder", "plot", "seconds",
}  # fmt: skip


@pytest.fixture()
def env(tmp_path: Path, tiny_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AIMASS_MODEL_DIR", str(tiny_encoder_dir))
    monkeypatch.setenv("AIMASS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIMASS_DTYPE", "fp32")
    monkeypatch.delenv("AIMASS_RECS_K", raising=False)
    return tmp_path


def _json(text: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(text[text.index("{") :])
    return report


def test_synthetic_json_report_and_png(env: Path) -> None:
    png = env / "out" / "recs.png"
    args = ["eval", "recs", "--synthetic", "--documents", "90", "--users", "9",
            "--events-per-user", "6", "--json", "--plot", str(png)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = _json(result.stdout)
    assert set(report) == KEYS
    assert (report["k"], report["events"], report["users"], report["items"]) == (10, 54, 9, 90)
    assert report["targets"] + report["skipped_repeats"] == 54 - 9
    assert report["synthetic"] is True and report["unknown_items"] == 0
    assert report["model"]["name"] == "aimass-recs" and len(report["model"]["version"]) == 12
    assert report["encoder"]["name"] == "all-MiniLM-L6-v2"
    assert report["plot"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(report["random"]) == {"recall@10", "ndcg@10"}
    assert runner.invoke(app, args).stdout.count('"recall@10"') == 3  # deterministic shape
    again = _json(runner.invoke(app, args).stdout)
    assert {k: v for k, v in again.items() if k != "seconds"} == {
        k: v for k, v in report.items() if k != "seconds"
    }


def test_events_and_items_files_with_a_table(env: Path) -> None:
    docs = generate_documents(40, seed=2)
    items = env / "items.jsonl"
    events = env / "events.jsonl"
    write_jsonl(docs, items)
    write_jsonl(synthetic_events(docs, users=4, events_per_user=5, seed=2), events)
    result = runner.invoke(
        app, ["eval", "recs", "--events", str(events), "--items", str(items), "--k", "5"]
    )
    assert result.exit_code == 0, result.output
    assert "recall@5" in result.stdout and "popularity" in result.stdout
    assert (env / "data" / "reports" / "recs-events.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --events FILE.jsonl and --items FILE.jsonl, or --synthetic"),
        (["--events", "ev.jsonl"], "--items FILE.jsonl is required with --events"),
        (["--synthetic", "--events", "ev.jsonl"], "not both"),
        (["--synthetic", "--users", "0"], "--users must be at least 1"),
        (["--synthetic", "--k", "0"], "AIMASS_RECS_K"),
    ],
)
def test_bad_options_are_clear_errors(env: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["eval", "recs", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_bad_events_line_is_a_clear_error(env: Path) -> None:
    events = env / "ev.jsonl"
    events.write_text('{"event_id": "e1"}\n')
    items = env / "items.jsonl"
    items.write_text('{"id": "i1", "tenant": "t", "text": "hello"}\n')
    result = runner.invoke(app, ["eval", "recs", "--events", str(events), "--items", str(items)])
    assert result.exit_code == 2
    assert "ev.jsonl:1: missing required field" in result.output


@pytest.mark.model
@pytest.mark.slow
def test_minilm_recommender_on_synthetic_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's figure at the documented defaults (README Results): the real encoder,
    2,000 demo documents, 300 users, seed 13 (about 25 s on two cores)."""
    monkeypatch.delenv("AIMASS_MODEL_DIR", raising=False)
    monkeypatch.delenv("AIMASS_RECS_K", raising=False)
    monkeypatch.delenv("AIMASS_RECS_WEIGHT_POPULARITY", raising=False)
    monkeypatch.setenv("AIMASS_DATA_DIR", str(tmp_path / "data"))
    result = runner.invoke(app, ["eval", "recs", "--synthetic", "--json"])
    assert result.exit_code == 0, result.output
    report = _json(result.stdout)
    assert report["encoder"]["version"] == weights_version(default_model_dir())
    assert report["targets"] > 8000
    # Content similarity finds the user's categories: far above chance...
    assert report["recall@10"] >= 3 * report["random"]["recall@10"]
    # ...and the figure: at least twice the popularity baseline.
    assert report["recall@10"] >= 2 * report["popularity"]["recall@10"], report
