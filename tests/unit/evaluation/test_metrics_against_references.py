"""The project's metrics against the reference implementations users compare with:
seqeval for entity-level NER scores, scikit-learn for classification (dev dependencies)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import classification_report as seqeval_report
from seqeval.scheme import IOB2
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.metrics import precision_recall_fscore_support as prfs

from stream_aimass.entities.spans import bio_spans
from stream_aimass.evaluation.classifier import classification_report
from stream_aimass.evaluation.ner import ner_report

TYPES = ("PER", "ORG", "LOC")
ANY_TAG = st.sampled_from(["O", *(f"{p}-{t}" for p in "BI" for t in TYPES)])


def _well_formed(tags: list[str]) -> list[str]:
    """BIO2: an I- only continues an entity of its type (else it becomes B-)."""
    out: list[str] = []
    for tag in tags:
        previous = out[-1] if out else "O"
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
    return out


def _sentences(well_formed: bool) -> st.SearchStrategy[tuple[list[list[str]], list[list[str]]]]:
    """Parallel gold and predicted tag sentences of equal lengths."""
    lengths = st.lists(st.integers(1, 12), min_size=1, max_size=8)

    def tags_for(sizes: list[int]) -> st.SearchStrategy[list[list[str]]]:
        sentence = [st.lists(ANY_TAG, min_size=n, max_size=n) for n in sizes]
        made = st.tuples(*sentence).map(list)
        return made.map(lambda s: [_well_formed(t) for t in s]) if well_formed else made

    return lengths.flatmap(lambda sizes: st.tuples(tags_for(sizes), tags_for(sizes)))


def _check_ner(gold: list[list[str]], predicted: list[list[str]], **mode: object) -> None:
    ours = ner_report([bio_spans(t) for t in gold], [bio_spans(t) for t in predicted])
    if not ours["gold_entities"] and not ours["predicted_entities"]:
        return  # seqeval has nothing to score (and warns); ours says 0.0
    ref = seqeval_report(gold, predicted, output_dict=True, zero_division=0, **mode)
    names = {"precision": "precision", "recall": "recall", "f1": "f1-score"}
    for key, name in names.items():
        assert ours[key] == pytest.approx(ref["micro avg"][name], abs=1e-9), key
    for kind, scores in ours["per_type"].items():
        if scores["support"] == 0:
            continue  # seqeval lists only gold types... or predicted ones, by version
        for key, name in names.items():
            assert scores[key] == pytest.approx(ref[kind][name], abs=1e-9), (kind, key)
        assert scores["support"] == ref[kind]["support"]


@settings(max_examples=300, deadline=None)
@given(_sentences(well_formed=False))
def test_ner_scores_equal_seqeval_default_mode_on_any_tags(
    data: tuple[list[list[str]], list[list[str]]],
) -> None:
    # Lenient decoding on both sides (conlleval's): a stray I- opens an entity.
    _check_ner(*data)


@settings(max_examples=300, deadline=None)
@given(_sentences(well_formed=True))
def test_ner_scores_equal_seqeval_strict_iob2_on_well_formed_tags(
    data: tuple[list[list[str]], list[list[str]]],
) -> None:
    _check_ner(*data, mode="strict", scheme=IOB2)


LABELS = ["a", "b", "c", "d", "e"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(LABELS[:4]), st.sampled_from(LABELS)), min_size=1, max_size=40
    )
)
def test_single_label_scores_equal_scikit_learn(pairs: list[tuple[str, str]]) -> None:
    gold = [g for g, _ in pairs]
    predicted = [p for _, p in pairs]
    ours = classification_report([(g,) for g in gold], [(p,) for p in predicted], LABELS, False)
    # Classes neither gold nor predicted are left out of the macro average (scikit-learn's
    # default label set: those seen in either).
    assert ours["accuracy"] == pytest.approx(accuracy_score(gold, predicted))
    for average in ("macro", "micro", "weighted"):
        ref = f1_score(gold, predicted, average=average, zero_division=0)
        assert ours[f"{average}_f1"] == pytest.approx(ref), average
    precision, recall, f1, support = prfs(gold, predicted, labels=LABELS, zero_division=0)
    for i, label in enumerate(LABELS):
        got = ours["per_class"][label]
        assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx(
            (precision[i], recall[i], f1[i], support[i])
        )
    assert ours["confusion"] == confusion_matrix(gold, predicted, labels=LABELS).tolist()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.frozensets(st.sampled_from(LABELS[:4]), max_size=3),
            st.frozensets(st.sampled_from(LABELS), max_size=3),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_multi_label_scores_equal_scikit_learn(
    rows: list[tuple[frozenset[str], frozenset[str]]],
) -> None:
    gold = [tuple(sorted(g)) for g, _ in rows]
    predicted = [tuple(sorted(p)) for _, p in rows]
    ours = classification_report(gold, predicted, LABELS, True)
    y = np.array([[label in row for label in LABELS] for row in gold], dtype=int)
    p = np.array([[label in row for label in LABELS] for row in predicted], dtype=int)
    present = [i for i in range(len(LABELS)) if y[:, i].any() or p[:, i].any()]
    assert ours["accuracy"] == pytest.approx(accuracy_score(y, p))  # subset accuracy
    if present:
        macro = f1_score(y, p, average="macro", labels=present, zero_division=0)
        assert ours["macro_f1"] == pytest.approx(macro)
    else:
        assert ours["macro_f1"] == 0.0
    assert ours["micro_f1"] == pytest.approx(f1_score(y, p, average="micro", zero_division=0))
    if y.sum():
        weighted = f1_score(y, p, average="weighted", zero_division=0)
        assert ours["weighted_f1"] == pytest.approx(weighted)
