"""Classification metrics, per-label thresholds and score-to-label decisions, in plain numpy.

Conventions, fixed so that reports from different runs compare:

- precision, recall or F1 with a zero denominator is 0.0;
- a class with no gold examples and no predictions ("absent") reports 0.0 everywhere and is
  left out of the macro average, so evaluating on a subset of the classes does not drag the
  macro F1 down for classes the subset never mentions; a class that is predicted but never
  gold counts, with F1 0.0;
- multi-label accuracy is exact-match (subset) accuracy: every label of a row must be right.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_THRESHOLD_GRID",
    "classification_report",
    "cross_fitted_predictions",
    "predict_labels",
    "tune_thresholds",
]

DEFAULT_THRESHOLD_GRID: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))
"""Thresholds tried by :func:`tune_thresholds`: 0.05, 0.10, ..., 0.95."""

_DEFAULT_THRESHOLD = 0.5


def _indicator(
    rows: Sequence[tuple[str, ...]], index: dict[str, int], what: str
) -> npt.NDArray[np.bool_]:
    matrix = np.zeros((len(rows), len(index)), dtype=bool)
    for i, row in enumerate(rows):
        for label in row:
            if label not in index:
                raise ValueError(f"{what} row {i} has label {label!r}, which is not in labels")
            matrix[i, index[label]] = True
    return matrix


def _ratio(numerator: npt.NDArray[Any], denominator: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Element-wise division that gives 0.0 where the denominator is 0."""
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def classification_report(
    gold: Sequence[tuple[str, ...]],
    predicted: Sequence[tuple[str, ...]],
    labels: list[str],
    multi_label: bool,
) -> dict[str, Any]:
    """Accuracy, macro / micro / weighted F1, per-class scores and (single-label) confusion.

    Returns a JSON-ready dict with keys ``accuracy``, ``macro_f1``, ``micro_f1``,
    ``weighted_f1``, ``per_class`` (label -> precision, recall, f1, support), ``examples``
    and, for single-label data, ``confusion`` (rows gold, columns predicted, ``labels`` order).
    See the module docstring for how empty classes are scored.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold rows but {len(predicted)} predicted rows")
    if not gold:
        raise ValueError("classification_report needs at least one example")
    if len(set(labels)) != len(labels):
        raise ValueError("labels has duplicates")
    if not multi_label:
        for what, rows in (("gold", gold), ("predicted", predicted)):
            bad = next((i for i, row in enumerate(rows) if len(row) != 1), None)
            if bad is not None:
                raise ValueError(
                    f"single-label {what} row {bad} has {len(rows[bad])} labels, expected 1"
                )
    index = {label: i for i, label in enumerate(labels)}
    y = _indicator(gold, index, "gold")
    p = _indicator(predicted, index, "predicted")

    tp = (y & p).sum(axis=0)
    fp = (~y & p).sum(axis=0)
    fn = (y & ~p).sum(axis=0)
    support = y.sum(axis=0)
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    present = (support + p.sum(axis=0)) > 0

    micro_denominator = int(2 * tp.sum() + fp.sum() + fn.sum())
    micro_f1 = 2 * int(tp.sum()) / micro_denominator if micro_denominator else 0.0
    weighted_f1 = float((f1 * support).sum() / support.sum()) if support.sum() > 0 else 0.0
    report: dict[str, Any] = {
        "accuracy": float((y == p).all(axis=1).mean()),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "micro_f1": float(micro_f1),
        "weighted_f1": weighted_f1,
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "examples": len(gold),
    }
    if not multi_label:
        confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
        np.add.at(confusion, (y.argmax(axis=1), p.argmax(axis=1)), 1)
        report["confusion"] = confusion.tolist()
    return report


def tune_thresholds(
    probs: npt.NDArray[np.floating[Any]],
    gold: npt.NDArray[Any],
    grid: Sequence[float] | npt.NDArray[np.floating[Any]] = DEFAULT_THRESHOLD_GRID,
) -> npt.NDArray[np.float64]:
    """Per-label threshold from ``grid`` that maximises that label's F1 on dev data.

    ``probs`` and ``gold`` are (n, L); ``gold`` is 0/1. A label counts as predicted when its
    probability is >= the threshold. Labels with no positives in ``gold``, or whose best F1 is
    0, keep 0.5. Ties go to the threshold closest to 0.5, then to the higher one.
    """
    probs = np.asarray(probs, dtype=float)
    gold_arr = np.asarray(gold)
    candidates = np.asarray(grid, dtype=float).ravel()
    if probs.ndim != 2 or probs.shape != gold_arr.shape:
        raise ValueError(f"probs {probs.shape} and gold {gold_arr.shape} must be the same (n, L)")
    if not np.isin(gold_arr, (0, 1)).all():
        raise ValueError("gold must hold only 0 and 1")
    if candidates.size == 0 or not ((candidates >= 0) & (candidates <= 1)).all():
        raise ValueError("grid must be a non-empty list of thresholds in [0, 1]")
    positive = gold_arr.astype(bool)

    # (G, n, L) would be large for many labels; one grid point at a time keeps memory at (n, L)
    f1 = np.empty((candidates.size, probs.shape[1]), dtype=float)
    for g, threshold in enumerate(candidates):
        predicted = probs >= threshold
        tp = (predicted & positive).sum(axis=0)
        wrong = (predicted != positive).sum(axis=0)
        f1[g] = _ratio(2 * tp, 2 * tp + wrong)

    # preference order for ties: nearest 0.5 first, then higher; rounding makes 0.45 and 0.55
    # equally near, which they are not in binary floating point
    distance = np.round(np.abs(candidates - _DEFAULT_THRESHOLD), 9)
    preference = np.lexsort((-candidates, distance))
    best = preference[np.argmax(f1[preference], axis=0)]
    thresholds = np.array(candidates[best], dtype=np.float64)
    keep_default = (positive.sum(axis=0) == 0) | (f1.max(axis=0) == 0.0)
    thresholds[keep_default] = _DEFAULT_THRESHOLD
    return thresholds


def predict_labels(
    scores: npt.NDArray[np.floating[Any]],
    labels: list[str],
    multi_label: bool,
    thresholds: npt.NDArray[np.floating[Any]] | None = None,
) -> list[tuple[str, ...]]:
    """Turn (n, L) scores into label tuples, one per row.

    Single-label: the highest-scoring label (the first on a tie); ``thresholds`` is unused.
    Multi-label: every label whose score is >= its threshold (0.5 by default), in ``labels``
    order; a row where none passes gets an empty tuple.
    """
    scores = np.asarray(scores, dtype=float)
    if not labels:
        raise ValueError("labels is empty")
    if scores.ndim != 2 or scores.shape[1] != len(labels):
        raise ValueError(f"scores {scores.shape} must be (n, {len(labels)}), one column per label")
    if not multi_label:
        return [(labels[i],) for i in scores.argmax(axis=1)]
    cut = (
        np.full(len(labels), _DEFAULT_THRESHOLD)
        if thresholds is None
        else np.asarray(thresholds, dtype=float)
    )
    if cut.shape != (len(labels),):
        raise ValueError(f"thresholds {cut.shape} must be ({len(labels)},)")
    chosen = scores >= cut
    return [tuple(labels[j] for j in np.flatnonzero(row)) for row in chosen]


def cross_fitted_predictions(
    probs: npt.NDArray[np.floating[Any]],
    gold: npt.NDArray[Any],
    labels: list[str],
    folds: int = 5,
    seed: int = 0,
) -> list[tuple[str, ...]]:
    """Multi-label predictions for rows whose thresholds never saw them.

    Rows are dealt into ``folds`` folds (shuffled by ``seed``); each fold is predicted with
    the thresholds :func:`tune_thresholds` picks on the other folds. Scoring these
    predictions estimates how tuned thresholds do on new data; scoring the thresholds tuned
    on all rows against those same rows reads high. Fewer than two rows: the default 0.5.
    """
    probs = np.asarray(probs, dtype=float)
    n = probs.shape[0]
    k = min(folds, n)
    if k < 2:
        return predict_labels(probs, labels, True)
    order = np.random.default_rng(seed).permutation(n)
    out: list[tuple[str, ...]] = [() for _ in range(n)]
    gold_arr = np.asarray(gold)
    for fold in range(k):
        held = order[fold::k]
        rest = np.setdiff1d(order, held)
        thresholds = tune_thresholds(probs[rest], gold_arr[rest])
        predicted = predict_labels(probs[held], labels, True, thresholds)
        for row, labelled in zip(held, predicted, strict=True):
            out[int(row)] = labelled
    return out
