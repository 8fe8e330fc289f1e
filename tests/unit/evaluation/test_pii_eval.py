"""The PII labelled set and its scoring: marks become exact spans, the shipped set is what
issue 19 asks for (300+ spans, every type, hard negatives), and the scores are right."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import orjson
import pytest

from stream_aimass.evaluation.pii import (
    Example,
    PiiSetError,
    parse_marked,
    read_pii_set,
    score,
)
from stream_aimass.privacy.policy import TYPES

SHIPPED = Path(str(resources.files("stream_aimass") / "resources" / "privacy" / "pii-eval.txt"))


def test_marks_become_exact_spans() -> None:
    ex = parse_marked("Mail [[EMAIL|a@b.co]] or [[PERSON|Jane Roe]], order 12.")
    assert ex.text == "Mail a@b.co or Jane Roe, order 12."
    assert [(ex.text[s:e], t) for s, e, t in ex.spans] == [
        ("a@b.co", "EMAIL"),
        ("Jane Roe", "PERSON"),
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [("[[NAME|x]]", "'NAME' is not a type"), ("[[EMAIL|a@b.co", "unclosed")],
)
def test_bad_marks_are_refused(line: str, reason: str) -> None:
    with pytest.raises(PiiSetError, match=reason):
        parse_marked(line)


def test_the_shipped_set_has_300_spans_of_every_type_and_hard_negatives() -> None:
    examples = read_pii_set(SHIPPED)
    spans = [t for ex in examples for _, _, t in ex.spans]
    assert len(spans) >= 300
    assert set(spans) == set(TYPES)
    negatives = [ex.text for ex in examples if not ex.spans]
    assert len(negatives) >= 40
    for word in ("order", "$", "version", "ISBN", "Tracking", "UUID", "SHA-256", "v3.2"):
        assert any(word in text for text in negatives), word


def test_jsonl_sets_are_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    rows = [{"text": "call 415-555-0132", "spans": [{"start": 5, "end": 17, "type": "phone"}]}]
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
    assert read_pii_set(path) == [Example("call 415-555-0132", ((5, 17, "PHONE"),))]
    path.write_bytes(
        orjson.dumps({"text": "x", "spans": [{"start": 0, "end": 9, "type": "EMAIL"}]})
    )
    with pytest.raises(PiiSetError, match=r"set\.jsonl:1: bad span"):
        read_pii_set(path)


def test_scores_are_exact_span_matches_per_type() -> None:
    examples = [
        Example("a", ((0, 5, "EMAIL"), (10, 20, "PHONE"))),
        Example("b", ((3, 8, "EMAIL"),)),
    ]
    predicted = [[(0, 5, "EMAIL"), (10, 19, "PHONE")], [(3, 8, "EMAIL"), (30, 40, "CARD")]]
    report = score(examples, predicted)
    assert report["per_type"]["EMAIL"]["f1"] == 1.0
    phone = report["per_type"]["PHONE"]
    assert (phone["precision"], phone["recall"], phone["overlap_recall"]) == (0.0, 0.0, 1.0)
    assert report["per_type"]["CARD"]["precision"] == 0.0
    assert report["micro"] == {"precision": 0.5, "recall": 0.6667, "f1": 0.5714}
