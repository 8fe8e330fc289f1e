"""Rewrite one string under a policy, and map positions from the old text to the new.

:func:`rewrite` applies each finding's action (``mask`` keeps the length; ``redact`` and
``hash`` put a placeholder in) and returns the new text, the findings as records keep them
(spans in the NEW text: where the placeholder is) and an :class:`Edits` that moves any
other span of the old text (an entity mention) onto the new one.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from stream_aimass.privacy.detectors import Finding

_DIGITS_KEPT = {"CARD": 4, "IBAN": 4, "PHONE": 2}
_NOT_DIGIT = re.compile(r"\D")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Applied:
    """A finding as the record and ``pii_findings`` keep it: no value, only where and what
    was done (``start``/``end``: in the text as stored)."""

    field: str
    type: str
    start: int
    end: int
    action: str
    detector: str
    score: float

    def to_dict(self) -> dict[str, object]:
        return {"field": self.field, "type": self.type, "start": self.start, "end": self.end,
                "action": self.action, "detector": self.detector,
                "score": round(self.score, 4)}  # fmt: skip


def normalise(pii_type: str, value: str) -> str:
    """The form equal values share: digits only for numbers, lower case for addresses."""
    if pii_type in ("PHONE", "CARD", "US_SSN"):
        return _NOT_DIGIT.sub("", value)
    if pii_type == "IBAN":
        return _SPACE.sub("", value).upper()
    if pii_type in ("EMAIL", "IP_ADDRESS"):
        return value.strip().lower()
    if pii_type == "PERSON":
        return _SPACE.sub(" ", value).strip().lower()
    return value


class Hasher:
    """Keyed HMAC-SHA256 of normalised values, cut to 16 hex digits (64 bits)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, pii_type: str, value: str) -> str:
        message = f"{pii_type}:{normalise(pii_type, value)}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:16]


def mask(pii_type: str, value: str) -> str:
    """Letters and digits become ``*`` (the length stays); a card or IBAN keeps its last
    four digits, a phone number its last two."""
    kept = _DIGITS_KEPT.get(pii_type, 0)
    out = []
    for ch in reversed(value):
        if ch.isdigit() and kept > 0:
            out.append(ch)
            kept -= 1
        elif ch.isalnum():
            out.append("*")
        else:
            out.append(ch)
    return "".join(reversed(out))


def replacement(action: str, pii_type: str, value: str, hasher: Hasher | None) -> str:
    if action == "mask":
        return mask(pii_type, value)
    if action == "redact":
        return f"[{pii_type}]"
    if action == "hash":
        if hasher is None:
            raise ValueError("the hash action needs a key (pii_hash_key)")
        return f"[{pii_type}:{hasher(pii_type, value)}]"
    return value  # detect: reported, the text stays


class Edits:
    """Where replaced spans went: ``(old_start, old_end, new_start, new_end)`` in order."""

    def __init__(self, spans: list[tuple[int, int, int, int]]) -> None:
        self.spans = spans
        self._starts = [s[0] for s in spans]

    def position(self, old: int, *, end: bool) -> int:
        """Where ``old`` is in the new text; inside a replaced span, the replacement's edge
        (its end for an ``end``, its start otherwise), so a span covering part of a
        replacement covers all of it."""
        i = bisect.bisect_right(self._starts, old) - 1
        if i < 0:
            return old
        o_start, o_end, n_start, n_end = self.spans[i]
        if old >= o_end:
            return n_end + (old - o_end)
        if old == o_start:
            return n_start
        return n_end if end else n_start

    def span(self, start: int, end: int) -> tuple[int, int]:
        return self.position(start, end=False), self.position(end, end=True)


def rewrite(
    text: str,
    findings: Sequence[Finding],
    field: str,
    action_of: Callable[[str], str],
    hasher: Hasher | None,
) -> tuple[str, list[Applied], Edits]:
    """``text`` with each finding's action applied (findings: sorted, not overlapping)."""
    parts: list[str] = []
    applied: list[Applied] = []
    spans: list[tuple[int, int, int, int]] = []
    at = 0
    length = 0  # of the new text so far
    for f in findings:
        action = action_of(f.type)
        if action == "keep":
            continue
        parts.append(text[at : f.start])
        length += f.start - at
        new = replacement(action, f.type, text[f.start : f.end], hasher)
        parts.append(new)
        spans.append((f.start, f.end, length, length + len(new)))
        applied.append(
            Applied(field, f.type, length, length + len(new), action, f.detector, f.score)
        )
        length += len(new)
        at = f.end
    if all(a.action == "detect" for a in applied):  # nothing rewritten: the same string
        return text, applied, Edits([])
    parts.append(text[at:])
    return "".join(parts), applied, Edits(spans)
