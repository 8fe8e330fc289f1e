"""Entity-level scores for named-entity recognition, in plain Python.

Matching is strict, as in conlleval and seqeval: a predicted entity is right only when its
start, end and type all equal a gold entity's in the same sentence; a partial overlap counts
as one false positive and one false negative. Conventions follow
:mod:`stream_aimass.evaluation.classifier`: a zero denominator gives 0.0, and the macro F1
averages only the types that have gold entities.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

__all__ = ["Span", "ner_report"]

Span = tuple[int, int, str]
"""(start, end exclusive, type) of one entity, over tokens, word pieces or characters."""


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def _scores(correct: int, gold: int, predicted: int) -> dict[str, float]:
    return {
        "precision": _ratio(correct, predicted),
        "recall": _ratio(correct, gold),
        "f1": _ratio(2 * correct, gold + predicted),
    }


def _counted(spans: Sequence[Span]) -> Counter[Span]:
    # rebuilt as tuples so that spans read back from JSON (lists) compare equal to tuples
    return Counter((int(start), int(end), str(kind)) for start, end, kind in spans)


def ner_report(
    gold: Sequence[Sequence[Span]], predicted: Sequence[Sequence[Span]]
) -> dict[str, Any]:
    """Strict entity-level precision, recall and F1 over parallel per-sentence span lists.

    Returns a JSON-ready dict with ``precision``, ``recall`` and ``f1`` (micro, over all
    entities), ``per_type`` (type -> precision, recall, f1, support, predicted; every type
    that is gold or predicted, sorted), ``macro_f1`` (mean F1 of the types with support),
    ``gold_entities``, ``predicted_entities`` and ``sentences``. A span that occurs twice in
    one sentence's predictions is right at most as often as it is gold.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted sentences")
    gold_per_type: Counter[str] = Counter()
    predicted_per_type: Counter[str] = Counter()
    correct_per_type: Counter[str] = Counter()
    for gold_spans, predicted_spans in zip(gold, predicted, strict=True):
        gold_counts = _counted(gold_spans)
        predicted_counts = _counted(predicted_spans)
        for (_, _, kind), count in gold_counts.items():
            gold_per_type[kind] += count
        for (_, _, kind), count in predicted_counts.items():
            predicted_per_type[kind] += count
        for (_, _, kind), count in (gold_counts & predicted_counts).items():
            correct_per_type[kind] += count

    per_type: dict[str, dict[str, Any]] = {}
    for kind in sorted(gold_per_type.keys() | predicted_per_type.keys()):
        per_type[kind] = {
            **_scores(correct_per_type[kind], gold_per_type[kind], predicted_per_type[kind]),
            "support": gold_per_type[kind],
            "predicted": predicted_per_type[kind],
        }
    supported = [scores["f1"] for scores in per_type.values() if scores["support"] > 0]
    gold_total = sum(gold_per_type.values())
    predicted_total = sum(predicted_per_type.values())
    return {
        **_scores(sum(correct_per_type.values()), gold_total, predicted_total),
        "per_type": per_type,
        "macro_f1": sum(supported) / len(supported) if supported else 0.0,
        "gold_entities": gold_total,
        "predicted_entities": predicted_total,
        "sentences": len(gold),
    }
