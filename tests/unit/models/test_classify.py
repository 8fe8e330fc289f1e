"""Classifiers on the shared pass: trained heads, zero-shot, fine-tuned, and sets of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stream_aimass.models.classify import (
    ClassifierSet,
    HeadInput,
    TrainedClassifier,
    ZeroShotClassifier,
    load_classifier,
    load_classifier_set,
)
from stream_aimass.models.encoder import Encoder, ModelLoadError
from stream_aimass.testing import make_head_model as head_model


def batch_of(encoder: Encoder, texts: list[str]) -> HeadInput:
    ids = encoder.tokenize(texts)
    return HeadInput(encoder.encode_ids(ids).embeddings, ids, texts)


TEXTS = ["my card has not arrived", "how do I top up", "refund please", "exchange rate today"]


def test_trained_head_gives_probabilities_and_its_version(
    tmp_path: Path, tiny_encoder: Encoder
) -> None:
    path = head_model(tmp_path / "intent", tiny_encoder, ["a", "b", "c"])
    clf = TrainedClassifier("intent", path, tiny_encoder)
    scores = clf.scores(batch_of(tiny_encoder, TEXTS))
    assert scores.shape == (4, 3)
    assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    results = clf.classify(batch_of(tiny_encoder, TEXTS))
    assert [r.top for r in results] == [clf.labels[i] for i in scores.argmax(axis=1)]
    assert results[0].model.version == path.name
    assert results[0].predicted == (results[0].top,)


def test_multi_label_uses_per_label_thresholds(tmp_path: Path, tiny_encoder: Encoder) -> None:
    labels = ["a", "b", "c"]
    path = head_model(
        tmp_path / "tags", tiny_encoder, labels, multi_label=True,
        thresholds={"a": 0.0, "b": 1.01, "c": 0.5},
    )  # fmt: skip
    clf = TrainedClassifier("tags", path, tiny_encoder)
    scores = clf.scores(batch_of(tiny_encoder, TEXTS))
    assert ((scores > 0) & (scores < 1)).all()  # sigmoid, not softmax
    predicted = clf.predict(scores)
    for row, labels_row in zip(scores, predicted, strict=True):
        assert "a" in labels_row  # threshold 0 always passes
        assert "b" not in labels_row  # threshold above 1 never does
        assert ("c" in labels_row) == (row[2] >= 0.5)
    # A global override from settings replaces every saved threshold.
    strict = TrainedClassifier("tags", path, tiny_encoder, threshold=1.01)
    assert strict.predict(scores) == [(), (), (), ()]


def test_several_heads_in_one_pass_equal_each_alone(tmp_path: Path, tiny_encoder: Encoder) -> None:
    models = tmp_path / "models"
    head_model(models / "intent", tiny_encoder, ["a", "b", "c"], seed=1)
    head_model(models / "tags", tiny_encoder, ["x", "y"], seed=2, multi_label=True, name="tags")
    specs: dict[str, Any] = {
        "intent": "intent",
        "tags": {"model": "tags"},
        "topic": {"labels": {"sports": "a football match", "money": "banks and markets"}},
    }
    together = load_classifier_set(specs, tiny_encoder, models)
    batch = batch_of(tiny_encoder, TEXTS)
    rows = together.classify(batch)
    assert [c.classifier for c in rows[0]] == ["intent", "tags", "topic"]
    for index, name in enumerate(specs):
        alone = load_classifier_set({name: specs[name]}, tiny_encoder, models).classify(batch)
        for doc in range(len(TEXTS)):
            assert rows[doc][index] == alone[doc][0]
    assert set(together.models()) == {"intent", "tags", "zero-shot:topic"}


def test_zero_shot_multi_label_and_version_follows_descriptions(tiny_encoder: Encoder) -> None:
    a = ZeroShotClassifier(tiny_encoder, {"x": "football", "y": "banking"}, name="t")
    b = ZeroShotClassifier(tiny_encoder, {"x": "football", "y": "bank accounts"}, name="t")
    assert a.model.version != b.model.version
    multi = ZeroShotClassifier(
        tiny_encoder, {"x": "football", "y": "banking"}, name="t", multi_label=True, threshold=-2
    )
    assert all(
        set(p) == {"x", "y"} for p in multi.predict(multi.scores(batch_of(tiny_encoder, TEXTS)))
    )


def test_empty_set_classifies_nothing(tiny_encoder: Encoder) -> None:
    assert ClassifierSet(()).classify(batch_of(tiny_encoder, TEXTS)) == [[], [], [], []]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (42, "expected a model reference"),
        ({"labels": {}}, "non-empty"),
        ({"labels": ["a"], "colour": "red"}, "unknown keys"),
        ({"path": "x"}, "expected"),
        ("missing-model", "no model"),
    ],
)
def test_bad_specs_are_clear_errors(
    tmp_path: Path, tiny_encoder: Encoder, spec: Any, message: str
) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load_classifier("c", spec, tiny_encoder, tmp_path)


def test_head_from_another_encoder_is_refused(tmp_path: Path, tiny_encoder: Encoder) -> None:
    path = head_model(tmp_path / "intent", tiny_encoder, ["a", "b"])
    meta_file = path / "model.json"
    meta_file.write_text(meta_file.read_text().replace(tiny_encoder.version, "0123456789ab"))
    with pytest.raises(ModelLoadError, match="trained on encoder version 0123456789ab"):
        TrainedClassifier("intent", path, tiny_encoder)


def test_a_non_classifier_model_is_refused(tmp_path: Path, tiny_encoder: Encoder) -> None:
    path = head_model(tmp_path / "intent", tiny_encoder, ["a", "b"])
    meta_file = path / "model.json"
    meta_file.write_text(meta_file.read_text().replace('"classifier"', '"ner"'))
    with pytest.raises(ModelLoadError, match="not a classifier"):
        TrainedClassifier("intent", path, tiny_encoder)
