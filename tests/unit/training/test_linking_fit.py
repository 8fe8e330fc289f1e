"""Fitting the linker's weights: the conditional logit, the weights file, the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stream_aimass.cli.main import app
from stream_aimass.entities.linking import SHIPPED_WEIGHTS, LinkWeights, load_link_weights
from stream_aimass.training.linking import (
    CandidateRows,
    conditional_logit,
    decisions,
    fit_link_weights,
)


def synthetic_rows(seed: int, mentions: int = 300) -> CandidateRows:
    """Mentions of 1-3 candidates; the gold is the candidate with the highest first feature,
    and a mention is NIL when even that one is low. The other features are noise."""
    rng = np.random.default_rng(seed)
    features, gold, owner, nil = [], [], [], []
    for m in range(mentions):
        n = int(rng.integers(1, 4))
        f = rng.normal(size=(n, 4))
        best = int(f[:, 0].argmax())
        is_nil = bool(f[best, 0] < 0.2)
        features.append(f)
        gold += [(k == best) and not is_nil for k in range(n)]
        owner += [m] * n
        nil.append(is_nil)
    return CandidateRows(
        np.vstack(features), np.array(gold), np.array(owner), mentions, np.array(nil)
    )


def test_the_fit_finds_the_feature_that_decides_and_the_nil_cut() -> None:
    rows = synthetic_rows(1)
    theta = conditional_logit(rows, l2=0.01)
    assert theta[0] > 5 * np.abs(theta[1:4]).max()  # the deciding feature dominates
    weights = fit_link_weights(rows, l2=0.01)
    assert weights.nil_threshold / weights.mention == pytest.approx(0.2, abs=0.1)
    # On new mentions of the same kind the fitted rule decides nearly all right.
    held = synthetic_rows(2)
    vector = np.array([weights.mention, weights.context, weights.prior, weights.exact])
    assert decisions(held, vector, weights.nil_threshold).mean() > 0.95


def test_decisions_link_the_best_candidate_or_nil_and_a_mention_without_candidates_is_nil() -> None:
    rows = CandidateRows(
        features=np.array([[1.0, 0, 0, 0], [3.0, 0, 0, 0], [0.5, 0, 0, 0]]),
        gold=np.array([False, True, False]),
        owner=np.array([0, 0, 1]),
        mentions=3,
        nil=np.array([False, True, True]),
    )
    right = decisions(rows, np.array([1.0, 0, 0, 0]), threshold=2.0)
    assert right.tolist() == [True, True, True]  # 3.0 >= 2: gold; 0.5 < 2: NIL; none: NIL
    assert decisions(rows, np.array([1.0, 0, 0, 0]), threshold=4.0).tolist() == [
        False, True, True,
    ]  # fmt: skip


def test_nothing_to_fit_is_an_error() -> None:
    rows = CandidateRows(np.zeros((1, 4)), np.array([False]), np.array([0]), 1, np.array([True]))
    with pytest.raises(ValueError, match="nothing to fit"):
        fit_link_weights(rows)


def test_weights_load_from_a_file_the_shipped_one_or_defaults(tmp_path: Path) -> None:
    shipped = json.loads(SHIPPED_WEIGHTS.read_text())
    assert load_link_weights().mention == shipped["mention"]
    assert shipped["fitted"]["data"] == "linking-eval.jsonl"  # never the second set
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"mention": 2.0, "nil_threshold": 0.9, "fitted": {}}))
    loaded = load_link_weights(path)
    assert (loaded.mention, loaded.nil_threshold, loaded.context) == (2.0, 0.9, 1.0)
    assert load_link_weights(path, nil_threshold=0.1).nil_threshold == 0.1
    path.write_text("not json")
    with pytest.raises(ValueError, match="not a linking weights file"):
        load_link_weights(path)
    assert LinkWeights().prior == 0.15  # the documented defaults stay the fallback


def test_train_linking_writes_weights_that_eval_and_the_worker_read(
    tmp_path: Path, tiny_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIMASS_MODEL_DIR", str(tiny_encoder_dir))
    monkeypatch.setenv("AIMASS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIMASS_DTYPE", "fp32")
    data = tmp_path / "gold.jsonl"
    lines = [
        {"id": "a", "text": "Apple shares rose after the iPhone maker reported.",
         "mentions": [{"start": 0, "end": 5, "entity_id": "company/apple"}]},
        {"id": "b", "text": "I ate an apple before my run.",
         "mentions": [{"start": 9, "end": 14, "entity_id": "food/apple"}]},
        {"id": "c", "text": "Jordan met ministers in Amman.",
         "mentions": [{"start": 0, "end": 6, "entity_id": None}]},
    ]  # fmt: skip
    data.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "weights.json"
    result = runner_invoke(["train", "linking", "--data", str(data), "--out", str(out), "--json"])
    summary = json.loads(result)
    assert summary["mentions"] == 3 and summary["candidate_rows"] >= 5
    written = json.loads(out.read_text())
    assert set(written) >= {"mention", "context", "prior", "exact", "nil_threshold", "fitted"}
    monkeypatch.setenv("AIMASS_LINK_WEIGHTS_PATH", str(out))
    report = json.loads(runner_invoke(["eval", "linking", "--data", str(data), "--json"]))
    assert report["weights"]["mention"] == written["mention"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    failed = CliRunner().invoke(app, ["train", "linking", "--data", str(bad), "--out", str(out)])
    assert failed.exit_code != 0 and "bad.jsonl:1" in failed.output


def runner_invoke(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output
