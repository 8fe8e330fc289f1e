"""Distilling a student encoder: its layers, its training, and the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stream_aimass.cli.main import app
from stream_aimass.models.encoder import Encoder
from stream_aimass.testing import make_tiny_encoder
from stream_aimass.training.distill import DistillConfig, distill_encoder, kept_layers

TEXTS = [f"the {w} report on {c} came out on day {i}" for i, (w, c) in enumerate(
    (w, c) for w in ("bank", "card", "loan", "transfer", "market", "election")
    for c in ("Apple", "Paris", "Tesla", "rates", "growth", "the budget", "Jordan", "oil")
)]  # fmt: skip


def test_every_other_layer_is_kept_by_default_and_the_last_always() -> None:
    assert kept_layers(6, None) == [1, 3, 5]
    assert kept_layers(5, None) == [0, 2, 4]
    assert kept_layers(6, [4, 0, 2, 2]) == [0, 2, 4]
    with pytest.raises(ValueError, match="between 0 and 5"):
        kept_layers(6, [6])


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_encoder(tmp_path_factory.mktemp("teacher"), layers=4, seed=3)


def test_the_student_learns_the_teachers_embeddings(teacher: Path, tmp_path: Path) -> None:
    config = DistillConfig(epochs=6, batch_size=8, lr=3e-3, held_aside=0.1)
    report = distill_encoder(teacher, tmp_path / "student", TEXTS, config)
    assert report["layers_kept"] == [1, 3] and report["teacher_layers"] == 4
    first, last = report["history"][0], report["history"][-1]
    assert last["loss"] < first["loss"]
    assert report["held_aside_cosine_mean"] == last["held_aside_cosine_mean"]
    # A plain encoder directory the worker loads: half the layers, close embeddings.
    student = Encoder(tmp_path / "student", device="cpu", dtype="fp32")
    assert student.model.config.num_hidden_layers == 2
    held = ["a report on Tesla and rates", "the election in Paris"]
    t = Encoder(teacher, device="cpu", dtype="fp32").encode_texts(held)
    s = student.encode_texts(held)
    assert float(np.mean((t * s).sum(axis=1))) > 0.9
    saved = json.loads((tmp_path / "student" / "distill.json").read_text())
    assert saved["student_version"] == student.version


def test_too_few_texts_are_refused(teacher: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 20"):
        distill_encoder(teacher, tmp_path / "s", TEXTS[:5], DistillConfig())


def test_train_distill_reads_csv_conll_and_lines_and_adds_generated_documents(
    teacher: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIMASS_MODEL_DIR", str(teacher))
    monkeypatch.setenv("AIMASS_DATA_DIR", str(tmp_path / "data"))
    csv_file = tmp_path / "t.csv"
    csv_file.write_text("category,text\na,my card is lost\nb,send money home\n")
    conll = tmp_path / "t.conll"
    conll.write_text("-DOCSTART- O\n\nApple B-ORG\nrose O\n\nParis B-LOC\nwaits O\n")
    lines = tmp_path / "t.txt"
    lines.write_text("first line\n\nsecond line\n")
    out = tmp_path / "student"
    result = CliRunner().invoke(app, [
        "train", "distill", "--out", str(out), "--texts", str(csv_file), "--texts", str(conll),
        "--texts", str(lines), "--generated", "30", "--epochs", "1", "--layers", "0,3", "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{\n") :])
    assert report["layers_kept"] == [0, 3]
    assert report["texts"]["train"] + report["texts"]["held_aside"] == 2 + 2 + 2 + 30
    bad = CliRunner().invoke(app, ["train", "distill", "--out", str(out), "--layers", "x"])
    assert bad.exit_code != 0 and "--layers" in bad.output
