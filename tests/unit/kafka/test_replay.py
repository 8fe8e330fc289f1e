"""Which dead letters `dlq replay` selects, and which it can send back (and why not)."""

from __future__ import annotations

import json
from typing import Any

from stream_aimass.kafka.replay import ReplayFilter, replayable
from stream_aimass.records import DeadLetter, Source

INPUTS = {"aimass.documents", "aimass.events", "aimass.items"}


def dead(
    stage: str = "validate", topic: str = "aimass.documents", raw: bytes = b'{"id": 1}',
    failed: int = 1_000, reason: str = "missing required field 'ts'",
) -> dict[str, Any]:  # fmt: skip
    letter = DeadLetter(stage, reason, raw, Source(topic, 2, 7, 5), failed, "X", b"acme:d-1")
    loaded: dict[str, Any] = json.loads(letter.to_json())
    return loaded


def test_filters() -> None:
    assert ReplayFilter()(dead())
    assert ReplayFilter(stage="validate", source_topic="aimass.documents")(dead())
    assert not ReplayFilter(stage="decode")(dead())
    assert not ReplayFilter(source_topic="aimass.events")(dead())
    assert ReplayFilter(since_ms=1_000, until_ms=1_001)(dead())
    assert not ReplayFilter(since_ms=1_001)(dead()) and not ReplayFilter(until_ms=1_000)(dead())
    assert ReplayFilter(reason_contains="'ts'")(dead()) and not ReplayFilter(reason_contains="x")(
        dead()
    )


def test_what_goes_back_and_what_cannot() -> None:
    assert replayable(dead(), INPUTS) == ("aimass.documents", b'{"id": 1}', b"acme:d-1")
    assert "deleted" in str(replayable(dead(stage="retention"), INPUTS))
    assert "not an input topic" in str(replayable(dead(topic="aimass.enriched"), INPUTS))
    assert "truncated" in str(replayable(dead(raw=b"x" * 2_000_000), INPUTS))


def test_a_dead_letter_kept_under_a_pii_policy_is_not_sent_back() -> None:
    """Its bytes are a redacted copy or nothing: sending them would replace the document
    with the copy. The reason says where the message itself is."""
    for kind in ("redacted", "hash"):
        letter = {**dead(), "raw_kind": kind, "raw_sha256": "ab" * 32}
        reason = str(replayable(letter, INPUTS))
        assert f"raw_kind {kind}" in reason and "source.offset" in reason
    assert isinstance(replayable({**dead(), "raw_kind": "raw"}, INPUTS), tuple)
