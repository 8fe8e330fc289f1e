"""Classifier training on a tiny encoder built from a config: runs in seconds."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from stream_aimass.models.classify import HeadInput, TrainedClassifier
from stream_aimass.models.encoder import Encoder
from stream_aimass.training.classifier import TrainConfig, evaluate_classifier, train_classifier
from stream_aimass.training.data import DataError, LabelledTexts

WORDS = {
    "card": ["card", "visa", "pin", "atm"],
    "transfer": ["transfer", "iban", "wire", "send"],
    "refund": ["refund", "return", "money back", "reimburse"],
}


def dataset(n: int, seed: int, multi_label: bool = False) -> LabelledTexts:
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = list(WORDS)[i % 3]
        words = rng.sample(WORDS[label], 2)
        texts.append(f"{words[0]} {words[1]} please")
        if multi_label:
            extra = list(WORDS)[(i + 1) % 3] if i % 2 else None
            if extra:
                texts[-1] += " " + rng.choice(WORDS[extra])
            labels.append((label, extra) if extra else (label,))
        else:
            labels.append((label,))
    return LabelledTexts(texts, labels, multi_label)


def test_head_training_learns_writes_a_version_and_evaluates(
    tmp_path: Path, tiny_encoder_dir: Path, tiny_encoder: Encoder
) -> None:
    train, dev = dataset(90, seed=1), dataset(30, seed=2)
    config = TrainConfig(mode="head", epochs=60, lr=0.05, dtype="fp32", device="cpu")
    info = train_classifier(
        train, dev, tmp_path / "intent", name="intent",
        encoder_dir=tiny_encoder_dir, encoder_name="tiny", config=config,
    )  # fmt: skip
    assert info.path.parent == tmp_path / "intent"
    assert info.version == info.path.name
    meta = json.loads((info.path / "model.json").read_text())
    assert meta["mode"] == "head" and meta["own_encoder_pass"] is False
    assert meta["labels"] == ["card", "refund", "transfer"]
    assert meta["base_encoder"]["version"] == tiny_encoder.version
    assert meta["data"]["train_examples"] == 90 and len(meta["data"]["train_sha256"]) == 64
    assert len(meta["training"]["history"]) == 60
    assert meta["training"]["seconds"] >= 0
    assert meta["metrics"]["accuracy"] >= 0.8  # keyword classes: separable even by a random encoder
    report = evaluate_classifier(info.path, dev, tiny_encoder)
    assert report["accuracy"] == pytest.approx(meta["metrics"]["accuracy"])
    assert report["model"]["version"] == info.version
    assert set(report["per_class"]) == {"card", "refund", "transfer"}


def test_finetune_writes_its_own_encoder_and_the_worker_runs_it(
    tmp_path: Path, tiny_encoder_dir: Path, tiny_encoder: Encoder
) -> None:
    train, dev = dataset(60, seed=3), dataset(15, seed=4)
    config = TrainConfig(mode="finetune", epochs=2, batch_size=16, dtype="fp32", device="cpu")
    info = train_classifier(
        train, dev, tmp_path / "intent-ft", name="intent-ft",
        encoder_dir=tiny_encoder_dir, encoder_name="tiny", config=config,
    )  # fmt: skip
    assert (info.path / "encoder" / "model.safetensors").is_file()
    assert (info.path / "encoder" / "tokenizer.json").is_file()
    assert info.meta["own_encoder_pass"] is True
    clf = TrainedClassifier("intent", info.path, tiny_encoder)
    assert not clf.shared_pass and clf.reuse_ids
    texts = list(dev.texts)
    ids = tiny_encoder.tokenize(texts)
    # Its own pass: the shared embeddings are ignored.
    zeros = np.zeros((len(texts), tiny_encoder.dim), dtype=np.float32)
    scores = clf.scores(HeadInput(zeros, ids, texts))
    assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    report = evaluate_classifier(info.path, dev, tiny_encoder)
    assert report["accuracy"] == pytest.approx(info.meta["metrics"]["accuracy"])


def test_multi_label_training_tunes_thresholds(
    tmp_path: Path, tiny_encoder_dir: Path, tiny_encoder: Encoder
) -> None:
    train, dev = dataset(90, seed=5, multi_label=True), dataset(30, seed=6, multi_label=True)
    config = TrainConfig(mode="head", epochs=40, lr=0.05, dtype="fp32", device="cpu")
    info = train_classifier(
        train, dev, tmp_path / "tags", name="tags",
        encoder_dir=tiny_encoder_dir, encoder_name="tiny", config=config,
    )  # fmt: skip
    assert info.meta["multi_label"] is True
    assert set(info.meta["thresholds"]) == {"card", "refund", "transfer"}
    clf = TrainedClassifier("tags", info.path, tiny_encoder)
    assert clf.multi_label and clf.thresholds is not None
    assert clf.thresholds.tolist() == pytest.approx(list(info.meta["thresholds"].values()))
    # The reported dev scores come from thresholds that never saw the rows they score.
    metrics = info.meta["metrics"]
    assert "cross-fitting" in metrics["thresholds"]
    assert 0.0 <= metrics["macro_f1"] <= 1.0
    assert "macro_f1_thresholds_tuned_on_same_rows" in metrics


def test_a_label_with_one_example_is_refused(tmp_path: Path, tiny_encoder_dir: Path) -> None:
    data = LabelledTexts(["a", "b", "c"], [("x",), ("x",), ("y",)], False)
    with pytest.raises(DataError, match="'y' has 1 example"):
        train_classifier(
            data, None, tmp_path / "m", name="m",
            encoder_dir=tiny_encoder_dir, encoder_name="tiny", config=TrainConfig(),
        )  # fmt: skip
