"""Strict entity-level precision, recall and F1, and the per-type F1 chart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream_aimass.entities.spans import bio_spans
from stream_aimass.evaluation.ner import ner_report
from stream_aimass.evaluation.plots import per_class_f1_png

KEYS = {
    "precision",
    "recall",
    "f1",
    "per_type",
    "macro_f1",
    "gold_entities",
    "predicted_entities",
    "sentences",
}
TYPE_KEYS = {"precision", "recall", "f1", "support", "predicted"}

GOLD = [[(0, 2, "PER"), (3, 4, "LOC")], [(1, 2, "ORG")], []]
PREDICTED = [
    # right; one token too long (a partial overlap is wrong)
    [(0, 2, "PER"), (3, 5, "LOC")],
    # right boundaries, wrong type; and an entity that is not gold
    [(1, 2, "PER"), (4, 5, "MISC")],
    [],
]


def test_hand_computed_example() -> None:
    report = ner_report(GOLD, PREDICTED)
    assert set(report) == KEYS
    # 1 right of 4 predicted and 3 gold
    assert report["precision"] == pytest.approx(1 / 4)
    assert report["recall"] == pytest.approx(1 / 3)
    assert report["f1"] == pytest.approx(2 / 7)
    assert report["gold_entities"] == 3
    assert report["predicted_entities"] == 4
    assert report["sentences"] == 3

    per_type = report["per_type"]
    assert list(per_type) == ["LOC", "MISC", "ORG", "PER"]
    assert all(set(scores) == TYPE_KEYS for scores in per_type.values())
    assert per_type["PER"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1, "predicted": 2}
    )
    assert per_type["LOC"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 1,
        "predicted": 1,
    }
    assert per_type["ORG"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 1,
        "predicted": 0,
    }
    assert per_type["MISC"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 0,
        "predicted": 1,
    }
    # MISC has no gold entity, so it is left out of the macro average
    assert report["macro_f1"] == pytest.approx((2 / 3 + 0 + 0) / 3)


def test_perfect_predictions() -> None:
    report = ner_report(GOLD, GOLD)
    assert report["precision"] == report["recall"] == report["f1"] == 1.0
    assert report["macro_f1"] == 1.0
    assert {kind: scores["f1"] for kind, scores in report["per_type"].items()} == {
        "LOC": 1.0,
        "ORG": 1.0,
        "PER": 1.0,
    }


@pytest.mark.parametrize(
    "predicted",
    [
        [(0, 1, "PER")],  # starts right, ends early
        [(1, 2, "PER")],  # ends right, starts late
        [(0, 3, "PER")],  # covers it and more
        [(0, 1, "PER"), (1, 2, "PER")],  # split in two
    ],
)
def test_partial_overlaps_are_wrong(predicted: list[tuple[int, int, str]]) -> None:
    report = ner_report([[(0, 2, "PER")]], [predicted])
    assert report["precision"] == report["recall"] == report["f1"] == 0.0
    assert report["predicted_entities"] == len(predicted)


def test_spans_match_only_within_their_sentence() -> None:
    report = ner_report([[(0, 1, "PER")], []], [[], [(0, 1, "PER")]])
    assert report["f1"] == 0.0


def test_a_repeated_prediction_is_right_once() -> None:
    report = ner_report([[(0, 1, "PER")]], [[(0, 1, "PER"), (0, 1, "PER")]])
    assert report["precision"] == 0.5
    assert report["recall"] == 1.0
    assert report["predicted_entities"] == 2


def test_zero_division_gives_zero() -> None:
    report = ner_report([[], []], [[], []])
    assert report == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "per_type": {},
        "macro_f1": 0.0,
        "gold_entities": 0,
        "predicted_entities": 0,
        "sentences": 2,
    }
    nothing_predicted = ner_report([[(0, 1, "X")]], [[]])
    assert nothing_predicted["precision"] == 0.0
    assert nothing_predicted["recall"] == 0.0
    assert nothing_predicted["f1"] == 0.0


def test_sentence_counts_must_match() -> None:
    with pytest.raises(ValueError, match="2 gold sentences but 1 predicted sentences"):
        ner_report([[], []], [[]])


def test_spans_read_back_from_json_compare_equal() -> None:
    from_json = json.loads(json.dumps(PREDICTED))
    assert ner_report(GOLD, from_json) == ner_report(GOLD, PREDICTED)


def test_conlleval_style_example_from_tags() -> None:
    gold_tags = ["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "I-ORG"]
    # the LOC is right, PER is split by a broken I- tag, ORG is cut short
    predicted_tags = ["B-PER", "I-LOC", "O", "I-LOC", "O", "B-ORG", "O"]
    report = ner_report([bio_spans(gold_tags)], [bio_spans(predicted_tags)])
    assert report["gold_entities"] == 3
    assert report["predicted_entities"] == 4
    assert report["precision"] == pytest.approx(1 / 4)
    assert report["recall"] == pytest.approx(1 / 3)
    assert report["per_type"]["LOC"]["precision"] == 0.5


def test_report_is_json_ready_and_charts_per_type_f1(tmp_path: Path) -> None:
    report = ner_report(GOLD, PREDICTED)
    assert json.loads(json.dumps(report)) == report
    path = per_class_f1_png(report["per_type"], tmp_path / "ner" / "per_type_f1.png", "NER F1")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
