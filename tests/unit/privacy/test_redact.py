"""Rewriting one string: each action's output, spans in the new text, positions of other
spans moved onto it, and the keyed hash (equal values join, other keys do not)."""

from __future__ import annotations

import pytest

from stream_aimass.privacy.detectors import Finding
from stream_aimass.privacy.redact import Edits, Hasher, mask, normalise, rewrite

TEXT = "Mail jane@example.com or call 415-555-0132 today."
EMAIL = Finding("EMAIL", 5, 21, "email", 0.95)
PHONE = Finding("PHONE", 30, 42, "phonenumbers", 0.8)


def test_redact_puts_placeholders_and_reports_their_spans() -> None:
    text, applied, _ = rewrite(TEXT, [EMAIL, PHONE], "text", lambda _: "redact", None)
    assert text == "Mail [EMAIL] or call [PHONE] today."
    assert [(a.type, text[a.start : a.end], a.action) for a in applied] == [
        ("EMAIL", "[EMAIL]", "redact"),
        ("PHONE", "[PHONE]", "redact"),
    ]


def test_mask_keeps_the_length_and_the_last_digits_of_numbers() -> None:
    assert mask("EMAIL", "jane@example.com") == "****@*******.***"
    assert mask("CARD", "4111 1111 1111 1234") == "**** **** **** 1234"
    assert mask("PHONE", "415-555-0132") == "***-***-**32"
    text, applied, edits = rewrite(TEXT, [EMAIL, PHONE], "text", lambda _: "mask", None)
    assert len(text) == len(TEXT)
    assert edits.span(30, 42) == (30, 42)
    assert [a.action for a in applied] == ["mask", "mask"]


def test_detect_reports_and_leaves_the_text() -> None:
    text, applied, _ = rewrite(TEXT, [EMAIL], "title", lambda _: "detect", None)
    assert text == TEXT
    assert [(a.field, a.start, a.end) for a in applied] == [("title", 5, 21)]


def test_keep_is_not_even_reported() -> None:
    text, applied, _ = rewrite(TEXT, [EMAIL], "text", lambda _: "keep", None)
    assert (text, applied) == (TEXT, [])


def test_hash_is_keyed_and_equal_values_join() -> None:
    hasher = Hasher(b"secret-1")
    a = rewrite("jane@example.com", [Finding("EMAIL", 0, 16, "email", 1)], "t",
                lambda _: "hash", hasher)[0]  # fmt: skip
    b = rewrite(" JANE@Example.com", [Finding("EMAIL", 1, 17, "email", 1)], "t",
                lambda _: "hash", hasher)[0]  # fmt: skip
    assert a.startswith("[EMAIL:") and a == b.strip()
    assert "jane" not in a
    other = Hasher(b"secret-2")("EMAIL", "jane@example.com")
    assert other not in a
    with pytest.raises(ValueError, match="needs a key"):
        rewrite(TEXT, [EMAIL], "text", lambda _: "hash", None)


def test_normalise_makes_equal_numbers_equal() -> None:
    assert normalise("PHONE", "(415) 555-0132") == normalise("PHONE", "415.555.0132")
    assert normalise("IBAN", "de89 3704 0044 0532 0130 00") == "DE89370400440532013000"


@pytest.mark.parametrize(
    ("span", "moved"),
    [
        ((0, 4), (0, 4)),  # before every edit
        ((22, 29), (13, 20)),  # between edits: shifted by the first
        ((43, 48), (29, 34)),  # after both
        ((5, 21), (5, 12)),  # exactly a replaced span
        ((10, 25), (5, 16)),  # from inside a replacement: covers all of it
        ((0, 50), (0, 36)),  # the whole text
    ],
)
def test_other_spans_move_onto_the_new_text(span: tuple[int, int], moved: tuple[int, int]) -> None:
    text, _, edits = rewrite(TEXT, [EMAIL, PHONE], "text", lambda _: "redact", None)
    assert edits.span(*span) == moved
    assert isinstance(edits, Edits)
    assert text[moved[0] : moved[1]] or span == (0, 0)
