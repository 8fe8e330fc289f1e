"""The one-pass benchmark of a multitask model's heads, on tiny models (mechanics only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream_aimass.tools.bench import heads
from stream_aimass.training.conll import read_conll
from stream_aimass.training.data import read_classification_csv
from stream_aimass.training.multitask import (
    ClassifierTask,
    MultitaskConfig,
    NerTask,
    train_multitask,
)

CONLL = (
    "John I-PER\nSmith I-PER\nvisited O\nParis I-LOC\n. O\n\n"
    "Acme I-ORG\nhired O\nMary I-PER\n. O\n\n"
)


def test_the_heads_bench_counts_passes_and_writes_its_report(
    tmp_path: Path, tiny_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ner.conll").write_text(CONLL * 4)
    rows = [f"card {i} lost,card" for i in range(6)] + [f"send {i},transfer" for i in range(6)]
    (tmp_path / "intents.csv").write_text("text,category\n" + "\n".join(rows) + "\n")
    model = train_multitask(
        [NerTask("names", read_conll(tmp_path / "ner.conll")),
         ClassifierTask("intents", read_classification_csv(tmp_path / "intents.csv"))],
        tmp_path / "models" / "mt", name="mt", encoder_dir=tiny_encoder_dir,
        encoder_name="tiny", config=MultitaskConfig(epochs=1, dtype="fp32"),
    )  # fmt: skip
    monkeypatch.setenv("AIMASS_MODEL_DIR", str(tiny_encoder_dir))  # the base encoder
    out = tmp_path / "bench"
    code = heads.main(
        ["--model", str(model.path), "--ner-head", "names", "--classifier-head", "intents",
         "--documents", "40", "--rounds", "2", "--dtype", "fp32", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    report = json.loads((out / "heads.json").read_text())
    assert report["encoder_passes_per_document"] == {
        "encoder_alone": 1, "multitask_one_pass": 1, "same_heads_own_passes": 3,
    }  # fmt: skip
    assert [len(v) for v in report["model_docs_per_s_rounds"].values()] == [2, 2, 2]
    assert report["ratio_to_encoder_alone"]["encoder_alone"] == 1.0
    assert all(v > 0 for v in report["model_docs_per_s"].values())
    assert (out / "heads.png").read_bytes()[:4] == b"\x89PNG"
