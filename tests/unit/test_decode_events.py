"""Events decoding: valid events become records, every bad one a dead letter with a reason."""

from __future__ import annotations

import orjson
import pytest

from stream_aimass.decode import EventDecoder
from stream_aimass.records import DeadLetter, Event, Source
from stream_aimass.sink.rows import EVENT_COLUMNS, event_row
from stream_aimass.tools.corpus import generate_documents, generate_events

SOURCE = Source("aimass.events", 1, 42, 1_700_000_000_000)
GOOD = {
    "event_id": "e-1",
    "tenant": "acme",
    "user_id": "u-1",
    "item_id": "doc-1",
    "type": "click",
    "ts": 1_700_000_000_000,
}


def decode(raw: bytes) -> Event | DeadLetter:
    return EventDecoder(max_bytes=1024, clock=lambda: 7).decode(raw, SOURCE)


def test_valid_event() -> None:
    event = decode(orjson.dumps(GOOD))
    assert isinstance(event, Event)
    assert (event.tenant, event.user_id, event.type, event.ts_ms) == (
        "acme", "u-1", "click", 1_700_000_000_000,
    )  # fmt: skip
    row = event_row(event)
    assert len(row) == len(EVENT_COLUMNS)
    assert row[EVENT_COLUMNS.index("source_offset")] == 42


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"type": "teleport"}, "field 'type' must be one of"),
        ({"user_id": None}, "missing required field 'user_id'"),
        ({"item_id": 5}, "field 'item_id' must be a string"),
        ({"tenant": "a b"}, "field 'tenant' must match"),
        ({"ts": "soon"}, "field 'ts'"),
        ({"event_id": ""}, "field 'event_id' is empty"),
    ],
)
def test_bad_events_become_dead_letters(change: dict[str, object], reason: str) -> None:
    raw = orjson.dumps({**GOOD, **change})
    dead = decode(raw)
    assert isinstance(dead, DeadLetter)
    assert dead.stage == "validate" and reason in dead.reason
    assert dead.raw == raw and dead.source == SOURCE and dead.failed_at_ms == 7


def test_oversize_and_broken_events() -> None:
    assert isinstance(decode(b"x" * 2000), DeadLetter)
    dead = decode(b'{"event_id": ')
    assert isinstance(dead, DeadLetter) and dead.stage == "decode"


def test_generated_events_are_valid() -> None:
    docs = generate_documents(50)
    for event in generate_events(docs, 200):
        assert isinstance(decode(orjson.dumps(event)), Event)
