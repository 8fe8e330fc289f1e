"""Classification metrics checked against small hand-computed examples."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stream_aimass.evaluation.classifier import (
    DEFAULT_THRESHOLD_GRID,
    classification_report,
    cross_fitted_predictions,
    predict_labels,
    tune_thresholds,
)

REPORT_KEYS = {"accuracy", "macro_f1", "micro_f1", "weighted_f1", "per_class", "examples"}

# gold a a b b c a / predicted a b b b a a:
#   a: tp 2, fp 1, fn 1 -> p 2/3, r 2/3, f1 2/3
#   b: tp 2, fp 1, fn 0 -> p 2/3, r 1,   f1 0.8
#   c: tp 0, fp 0, fn 1 -> p 0,   r 0,   f1 0
GOLD = [("a",), ("a",), ("b",), ("b",), ("c",), ("a",)]
PREDICTED = [("a",), ("b",), ("b",), ("b",), ("a",), ("a",)]


def test_single_label_report_matches_hand_computation() -> None:
    report = classification_report(GOLD, PREDICTED, ["a", "b", "c"], multi_label=False)
    assert set(report) == REPORT_KEYS | {"confusion"}
    assert report["examples"] == 6
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["micro_f1"] == pytest.approx(4 / 6)
    assert report["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0.0) / 3)
    assert report["weighted_f1"] == pytest.approx((3 * 2 / 3 + 2 * 0.8 + 0.0) / 6)
    assert report["per_class"]["a"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3}
    )
    assert report["per_class"]["b"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    )
    assert report["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report["confusion"] == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_report_is_plain_json() -> None:
    report = classification_report(GOLD, PREDICTED, ["a", "b", "c"], multi_label=False)
    assert json.loads(json.dumps(report)) == report
    assert type(report["per_class"]["a"]["support"]) is int
    assert type(report["accuracy"]) is float


def test_confusion_follows_the_labels_order() -> None:
    report = classification_report(GOLD, PREDICTED, ["c", "b", "a"], multi_label=False)
    assert report["confusion"] == [[0, 0, 1], [0, 2, 0], [0, 1, 2]]


def test_absent_classes_score_zero_and_leave_the_macro_average_alone() -> None:
    report = classification_report(GOLD, PREDICTED, ["a", "b", "c", "d"], multi_label=False)
    assert report["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0.0) / 3)
    assert report["confusion"][3] == [0, 0, 0, 0]


def test_a_class_predicted_but_never_gold_counts_in_the_macro_average() -> None:
    gold = [("a",), ("a",)]
    predicted = [("a",), ("b",)]
    report = classification_report(gold, predicted, ["a", "b"], multi_label=False)
    # a: p 1, r 1/2, f1 2/3; b: p 0 (1 false positive), f1 0
    assert report["per_class"]["b"]["f1"] == 0.0
    assert report["macro_f1"] == pytest.approx((2 / 3 + 0.0) / 2)
    assert report["weighted_f1"] == pytest.approx(2 / 3)


def test_multi_label_report_uses_subset_accuracy() -> None:
    gold = [("x", "y"), ("x",), ("z",)]
    predicted = [("x", "y"), ("x", "z"), ()]
    report = classification_report(gold, predicted, ["x", "y", "z"], multi_label=True)
    assert set(report) == REPORT_KEYS
    assert report["accuracy"] == pytest.approx(1 / 3)
    # x: tp 2; y: tp 1; z: fp 1, fn 1
    assert report["per_class"]["x"]["f1"] == 1.0
    assert report["per_class"]["y"]["f1"] == 1.0
    assert report["per_class"]["z"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report["macro_f1"] == pytest.approx(2 / 3)
    assert report["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    assert report["weighted_f1"] == pytest.approx((2 * 1.0 + 1 * 1.0 + 0.0) / 4)


@pytest.mark.parametrize(
    ("gold", "predicted", "message"),
    [
        ([("a",)], [("a",), ("b",)], "1 gold rows but 2 predicted"),
        ([], [], "at least one example"),
        ([("a",)], [("zzz",)], "'zzz'"),
        ([("a", "b")], [("a",)], "has 2 labels, expected 1"),
    ],
)
def test_report_rejects_inconsistent_input(
    gold: list[tuple[str, ...]], predicted: list[tuple[str, ...]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        classification_report(gold, predicted, ["a", "b"], multi_label=False)


def test_tune_thresholds_finds_separating_thresholds() -> None:
    probs = np.array(
        [
            [0.30, 0.10, 0.90],
            [0.35, 0.20, 0.60],
            [0.10, 0.70, 0.95],
            [0.20, 0.40, 0.55],
        ]
    )
    gold = np.array([[1, 0, 1], [1, 0, 0], [0, 0, 1], [0, 0, 0]])
    thresholds = tune_thresholds(probs, gold)
    # label 0 separates anywhere in (0.20, 0.30]; 0.30 is the grid point closest to 0.5
    # label 1 has no positives; label 2 separates in (0.60, 0.90], nearest 0.5 is 0.65
    assert thresholds.tolist() == pytest.approx([0.30, 0.5, 0.65])
    predicted = predict_labels(probs, ["p", "q", "r"], multi_label=True, thresholds=thresholds)
    # q keeps 0.5, so its 0.70 on row 2 is a (wrong) prediction that dev could not tune away
    assert predicted == [("p", "r"), ("p",), ("q", "r"), ()]


def test_tune_thresholds_breaks_ties_towards_half_then_higher() -> None:
    probs = np.array([[0.9], [0.1]])
    gold = np.array([[1], [0]])
    assert tune_thresholds(probs, gold, grid=[0.2, 0.4, 0.6, 0.8]).tolist() == [0.6]
    assert tune_thresholds(probs, gold, grid=[0.2, 0.3, 0.8]).tolist() == [0.3]
    assert tune_thresholds(probs, gold, grid=[0.5, 0.6]).tolist() == [0.5]
    assert tune_thresholds(probs, gold, grid=[0.45, 0.55]).tolist() == [0.55]


def test_tune_thresholds_keeps_half_when_no_threshold_helps() -> None:
    probs = np.array([[0.0], [0.9]])
    gold = np.array([[1], [0]])
    assert tune_thresholds(probs, gold).tolist() == [0.5]


def test_tune_thresholds_is_deterministic_on_noisy_data() -> None:
    rng = np.random.default_rng(3)
    gold = rng.integers(0, 2, size=(200, 5))
    probs = np.clip(gold * 0.3 + rng.random((200, 5)) * 0.7, 0, 1)
    first = tune_thresholds(probs, gold.astype(np.float32))
    assert np.array_equal(first, tune_thresholds(probs, gold))
    assert set(first.tolist()) <= set(DEFAULT_THRESHOLD_GRID) | {0.5}


@pytest.mark.parametrize(
    ("probs", "gold", "grid", "message"),
    [
        (np.zeros((2, 3)), np.zeros((2, 2)), DEFAULT_THRESHOLD_GRID, "same"),
        (np.zeros(3), np.zeros(3), DEFAULT_THRESHOLD_GRID, "same"),
        (np.zeros((1, 1)), np.array([[2]]), DEFAULT_THRESHOLD_GRID, "0 and 1"),
        (np.zeros((1, 1)), np.zeros((1, 1)), [], "grid"),
        (np.zeros((1, 1)), np.zeros((1, 1)), [1.5], "grid"),
    ],
)
def test_tune_thresholds_rejects_bad_input(
    probs: np.ndarray, gold: np.ndarray, grid: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        tune_thresholds(probs, gold, grid=grid)


def test_predict_single_label_takes_the_argmax() -> None:
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.5, 0.0], [0.0, 0.1, 0.2]])
    # a tie goes to the first label; thresholds do not matter for single-label
    assert predict_labels(scores, ["a", "b", "c"], multi_label=False, thresholds=None) == [
        ("b",),
        ("a",),
        ("c",),
    ]
    assert predict_labels(scores, ["a", "b", "c"], False, np.full(3, 0.99)) == [
        ("b",),
        ("a",),
        ("c",),
    ]


def test_predict_multi_label_uses_thresholds_and_may_return_nothing() -> None:
    scores = np.array([[0.5, 0.49, 0.9], [0.1, 0.2, 0.3]])
    labels = ["a", "b", "c"]
    assert predict_labels(scores, labels, multi_label=True, thresholds=None) == [("a", "c"), ()]
    thresholds = np.array([0.6, 0.2, 0.95])
    assert predict_labels(scores, labels, True, thresholds) == [("b",), ("b",)]


def test_predict_labels_checks_shapes() -> None:
    with pytest.raises(ValueError, match="one column per label"):
        predict_labels(np.zeros((2, 3)), ["a", "b"], multi_label=False, thresholds=None)
    with pytest.raises(ValueError, match="thresholds"):
        predict_labels(np.zeros((2, 2)), ["a", "b"], multi_label=True, thresholds=np.zeros(3))


def test_predictions_feed_the_report() -> None:
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    predicted = predict_labels(scores, ["a", "b"], multi_label=False, thresholds=None)
    report = classification_report([("a",), ("b",), ("b",)], predicted, ["a", "b"], False)
    assert report["accuracy"] == pytest.approx(2 / 3)
    assert report["confusion"] == [[1, 0], [1, 1]]


def test_cross_fitted_thresholds_never_see_the_rows_they_score() -> None:
    # Pure noise: scores carry no information about the labels. Thresholds tuned on the same
    # rows still find cuts that fit them; cross-fitted ones cannot.
    rng = np.random.default_rng(3)
    labels = [f"l{i}" for i in range(6)]
    probs = rng.random((200, 6))
    gold = (rng.random((200, 6)) < 0.3).astype(int)
    names = [tuple(labels[j] for j in np.flatnonzero(row)) for row in gold]
    tuned = predict_labels(probs, labels, True, tune_thresholds(probs, gold))
    in_sample = classification_report(names, tuned, labels, True)["macro_f1"]
    held = cross_fitted_predictions(probs, gold, labels, folds=5, seed=0)
    held_out = classification_report(names, held, labels, True)["macro_f1"]
    assert held_out < in_sample


def test_cross_fitted_predictions_use_the_other_folds_only() -> None:
    # Separable scores: the thresholds tuned on either fold cut the other fold right.
    labels = ["x"]
    probs = np.array([[0.9], [0.2], [0.8], [0.3]])
    gold = np.array([[1], [0], [1], [0]])
    out = cross_fitted_predictions(probs, gold, labels, folds=2, seed=0)
    assert out == predict_labels(probs, labels, True, np.array([0.5]))  # both folds agree
    assert cross_fitted_predictions(probs[:1], gold[:1], labels) == [("x",)]  # 1 row: 0.5
    assert len(cross_fitted_predictions(probs, gold, labels, folds=10)) == 4
