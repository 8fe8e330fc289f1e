"""The PII stage on documents (text, title, meta; names from the entity stage; mentions
moved onto the new text) and on dead letters (redacted copy, structure, or hash only)."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from stream_aimass.entities.linking import LinkedEntity
from stream_aimass.privacy.policy import PolicySource
from stream_aimass.privacy.redact import Hasher
from stream_aimass.privacy.stage import PiiStage
from stream_aimass.records import DeadLetter, Document, Source

SOURCE = Source("aimass.documents", 0, 7, 1_700_000_000_000)
TEXT = (
    "Contact Jane Roe at jane.roe@example.com or +1 415 555 0132, card 4111 1111 1111 1111. "
    "Apple Inc agreed; order 4111111111111111 shipped."
)


def stage(policy: str) -> PiiStage:
    return PiiStage(PolicySource(policy, None, 0), Hasher(b"test-key"))


def mention(text: str, label: str, entity_id: str | None = None) -> LinkedEntity:
    start = TEXT.index(text)
    return LinkedEntity(text, start, start + len(text), label, entity_id, None, 0.9)


DOC = Document(
    "d1", "acme", 0, TEXT, SOURCE, title="Re: jane.roe@example.com",
    meta={"customer": {"phone": "+44 20 7946 0958"}, "tags": ["vip", 42], "ip": "10.1.2.3"},
)  # fmt: skip
ENTITIES = [
    mention("Jane Roe", "PER", "person/jane-roe"),
    mention("Apple Inc", "ORG", "company/apple"),
]
VALUES = ("Jane Roe", "jane.roe@example.com", "415 555 0132", "4111 1111 1111 1111",
          "7946 0958", "10.1.2.3")  # fmt: skip


def test_redact_leaves_no_value_anywhere_and_keeps_mentions_right() -> None:
    s = stage("redact")
    out = s.protect(DOC, ENTITIES, s.policy())
    doc = out.document
    stored = orjson.dumps([doc.text, doc.title, doc.meta]).decode()
    assert not [v for v in VALUES if v in stored]
    assert doc.text.startswith("Contact [PERSON] at [EMAIL] or [PHONE], card [CARD]. Apple Inc")
    assert "order 4111111111111111" in doc.text  # an order number is not a card
    assert doc.meta["tags"] == ["vip", 42]
    for e in out.entities:
        assert doc.text[e.start : e.end] == e.text
    assert [e.text for e in out.entities] == ["[PERSON]", "Apple Inc"]
    assert out.entities[1].entity_id == "company/apple"
    assert (out.entities[0].entity_id, out.entities[0].name) == (None, None)  # who it was
    fields = sorted({(f.field, f.type) for f in out.findings})
    assert fields == [
        ("meta.customer.phone", "PHONE"), ("meta.ip", "IP_ADDRESS"), ("text", "CARD"),
        ("text", "EMAIL"), ("text", "PERSON"), ("text", "PHONE"), ("title", "EMAIL"),
    ]  # fmt: skip
    for f in out.findings:
        if f.field == "text":
            assert doc.text[f.start : f.end] == f"[{f.type}]"


def test_detect_reports_and_keeps_the_document() -> None:
    s = stage("detect")
    out = s.protect(DOC, ENTITIES, s.policy())
    assert out.document is DOC
    assert out.entities == tuple(ENTITIES)  # links kept: nothing was rewritten
    assert {f.action for f in out.findings} == {"detect"}
    email = next(f for f in out.findings if f.type == "EMAIL" and f.field == "text")
    assert TEXT[email.start : email.end] == "jane.roe@example.com"


def test_keep_costs_nothing_and_finds_nothing() -> None:
    s = stage('{"*": "redact", "acme": "keep"}')
    out = s.protect(DOC, ENTITIES, s.policy())
    assert out.document is DOC and out.findings == ()


def test_types_follow_the_tenant_policy() -> None:
    s = stage('{"acme": {"EMAIL": "hash", "PERSON": "keep", "PHONE": "mask"}}')
    out = s.protect(DOC, ENTITIES, s.policy())
    text = out.document.text
    assert "Jane Roe" in text  # names kept
    assert "4111 1111 1111 1111" in text  # cards: the * tenant (absent) keeps
    assert "[EMAIL:" in text and "jane.roe" not in text
    assert "+* *** *** **32" in text
    assert {f.type for f in out.findings} == {"EMAIL", "PHONE"}


def test_a_mention_inside_a_replaced_value_goes() -> None:
    text = "Write to support@apple.com about Apple."
    doc = Document("d2", "acme", 0, text, SOURCE)
    inside = LinkedEntity("apple", 17, 22, "ORG", "company/apple", None, 0.5)
    after = LinkedEntity("Apple", 33, 38, "ORG", "company/apple", None, 0.5)
    s = stage("redact")
    out = s.protect(doc, [inside, after], s.policy())
    assert out.document.text == "Write to [EMAIL] about Apple."
    assert [(e.text, e.start) for e in out.entities] == [("Apple", 23)]


RAW_JSON = orjson.dumps({"id": "x1", "tenant": "acme", "text": "Jane Roe, jane.roe@example.com",
                         "meta": {"card": 4111111111111111, "n": 3}})  # fmt: skip


def dead(raw: bytes, reason: str = "missing required field 'ts'") -> DeadLetter:
    return DeadLetter("validate", reason, raw, SOURCE, 1, "InvalidDocument", b"acme:x1")


def test_a_json_dead_letter_keeps_its_structure_when_names_are_protected() -> None:
    kept = stage("redact").protect_dead_letter(dead(RAW_JSON))
    assert kept.raw_kind == "redacted"
    assert kept.raw_sha256 == hashlib.sha256(RAW_JSON).hexdigest()
    assert orjson.loads(kept.raw) == {
        "id": "x1", "tenant": "acme", "text": "[REDACTED]",
        "meta": {"card": "[REDACTED]", "n": 3},
    }  # fmt: skip
    assert kept.reason == "missing required field 'ts'" and kept.key == b"acme:x1"


def test_a_dead_letter_gets_a_pattern_redacted_copy_when_names_are_kept() -> None:
    kept = stage('{"*": "redact", "acme": {"PERSON": "keep"}}').protect_dead_letter(
        dead(RAW_JSON, reason="bad: jane.roe@example.com")
    )
    assert kept.raw_kind == "redacted"
    assert b"Jane Roe, [EMAIL]" in kept.raw and b"example.com" not in kept.raw
    assert kept.reason == "bad: [EMAIL]"


@pytest.mark.parametrize(
    "raw", [b"Jane Roe called from 415-555-0132 (not JSON)", b"\xff\xfe binary \x00 Jane Roe"]
)
def test_free_text_or_binary_keeps_only_the_hash(raw: bytes) -> None:
    kept = stage("redact").protect_dead_letter(dead(raw))
    assert (kept.raw, kept.raw_kind) == (b"", "hash")
    assert kept.raw_sha256 == hashlib.sha256(raw).hexdigest()
    record = orjson.loads(kept.to_json())
    assert record["raw_kind"] == "hash" and record["raw_b64"] == ""
    assert record["source"]["offset"] == 7  # where the message itself still is


def test_keep_leaves_dead_letters_whole_and_protection_is_done_once() -> None:
    letter = dead(RAW_JSON)
    assert stage("keep").protect_dead_letter(letter) is letter
    once = stage("redact").protect_dead_letter(letter)
    assert stage("redact").protect_dead_letter(once) is once
    lab = stage('{"*": "redact", "acme": "keep"}').protect_dead_letter(letter)
    assert lab is letter  # the tenant the message names keeps everything
