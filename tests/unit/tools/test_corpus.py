"""Unit tests for stream_aimass.tools.corpus: deterministic, schema-valid synthetic streams."""

from __future__ import annotations

import inspect
import itertools
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from stream_aimass.tools.corpus import (
    CATEGORIES,
    DEFAULT_START_TS_MS,
    bad_messages,
    generate_documents,
    generate_events,
    write_jsonl,
)
from stream_aimass.tools.corpus import vocabulary as corpus  # the templates and fillers


def validator(name: str) -> jsonschema.protocols.Validator:
    path = resources.files("stream_aimass") / "resources" / "topics" / f"{name}.schema.json"
    spec: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(spec)
    cls.check_schema(spec)
    return cls(spec, format_checker=cls.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def documents() -> list[dict[str, object]]:
    return generate_documents(300)


@pytest.fixture(scope="module")
def events(documents: list[dict[str, object]]) -> list[dict[str, object]]:
    return generate_events(documents, 1000)


# --------------------------------------------------------------------------- documents


def test_documents_are_deterministic_per_seed() -> None:
    assert generate_documents(50, seed=3) == generate_documents(50, seed=3)
    assert generate_documents(50) == generate_documents(50, seed=7)
    assert generate_documents(50, seed=3) != generate_documents(50, seed=4)


def test_documents_prefix_is_stable() -> None:
    assert generate_documents(20, seed=5) == generate_documents(40, seed=5)[:20]


def test_document_ids_are_unique(documents: list[dict[str, object]]) -> None:
    ids = [d["id"] for d in documents]
    assert len(ids) == len(set(ids)) == 300
    other = {d["id"] for d in generate_documents(300, seed=8)}
    assert not other & set(ids)


def test_documents_validate_against_schema(documents: list[dict[str, object]]) -> None:
    check = validator("aimass.documents")
    for document in documents:
        check.validate(document)


def test_document_shape(documents: list[dict[str, object]]) -> None:
    tenants = {"acme", "globex", "initech"}
    stamps = [d["ts"] for d in documents]
    assert stamps[0] == DEFAULT_START_TS_MS
    assert all(b > a for a, b in itertools.pairwise(stamps))
    for document in documents:
        assert document["tenant"] in tenants
        assert isinstance(document["text"], str) and document["text"].strip()
        assert isinstance(document["title"], str) and document["title"]
        meta = document["meta"]
        assert isinstance(meta, dict)
        assert meta["category_hint"] in CATEGORIES
        assert isinstance(meta["entity_hints"], list)
    assert {d["tenant"] for d in documents} == tenants
    assert len({d["meta"]["category_hint"] for d in documents}) == len(CATEGORIES)  # type: ignore[index]


def test_documents_options() -> None:
    docs = generate_documents(10, tenants=("solo",), start_ts_ms=5)
    assert {d["tenant"] for d in docs} == {"solo"}
    assert docs[0]["ts"] == 5
    assert generate_documents(0) == []


def test_documents_reject_bad_arguments() -> None:
    with pytest.raises(ValueError):
        generate_documents(-1)
    with pytest.raises(ValueError):
        generate_documents(3, tenants=())


# --------------------------------------------------------------------------- entity hints


@pytest.fixture(scope="module")
def kb_forms() -> dict[str, set[str]]:
    """Demo KB id -> its lowercased name and aliases (read with plain json)."""
    path = resources.files("stream_aimass") / "resources" / "kb" / "demo-kb.jsonl"
    forms: dict[str, set[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            entity = json.loads(line)
            forms[entity["id"]] = {f.lower() for f in (entity["name"], *entity["aliases"])}
    return forms


def hints_of(document: dict[str, object]) -> list[dict[str, Any]]:
    meta = document["meta"]
    assert isinstance(meta, dict)
    hints = meta["entity_hints"]
    assert isinstance(hints, list)
    return hints


def test_entity_hint_offsets_are_exact(documents: list[dict[str, object]]) -> None:
    for document in documents:
        text = document["text"]
        assert isinstance(text, str)
        assert "[[" not in text and "]]" not in text
        assert "[[" not in str(document["title"])
        end = 0
        for hint in hints_of(document):
            assert set(hint) == {"id", "start", "end"}
            assert isinstance(hint["start"], int) and isinstance(hint["end"], int)
            assert end <= hint["start"] < hint["end"] <= len(text), (document["id"], hint)
            surface = text[hint["start"] : hint["end"]]
            assert surface == surface.strip() and surface, (document["id"], hint)
            end = hint["end"]


def test_entity_hints_name_kb_entities(
    documents: list[dict[str, object]], kb_forms: dict[str, set[str]]
) -> None:
    for document in documents:
        text = str(document["text"])
        for hint in hints_of(document):
            assert hint["id"] in kb_forms, hint
            surface = text[hint["start"] : hint["end"]].lower()
            assert surface in kb_forms[hint["id"]], (surface, hint["id"])


def test_every_entity_written_in_the_templates_is_in_the_kb(kb_forms: dict[str, set[str]]) -> None:
    """All ``[[surface|kb-id]]`` marks in the module, not only those a sample happens to draw."""
    # KB ids have a kind prefix ("city/milan"); the docstrings' "[[surface|kb-id]]" has none.
    marks = re.findall(r"\[\[([^\[\]|]+)\|([a-z]+/[^\[\]]+)\]\]", inspect.getsource(corpus))
    assert len(marks) > 150
    for surface, entity_id in marks:
        assert entity_id in kb_forms, entity_id
        assert surface.lower() in kb_forms[entity_id], (surface, entity_id)


def test_every_category_mentions_entities(documents: list[dict[str, object]]) -> None:
    with_hints: dict[str, list[bool]] = {}
    for document in documents:
        category = document["meta"]["category_hint"]  # type: ignore[index]
        with_hints.setdefault(category, []).append(bool(hints_of(document)))
    for category, flags in with_hints.items():
        assert sum(flags) / len(flags) >= 0.5, category


def test_entity_mentions_stay_a_minority_of_the_words(documents: list[dict[str, object]]) -> None:
    words = sum(len(str(d["text"]).split()) for d in documents)
    hinted = sum(
        len(str(d["text"])[h["start"] : h["end"]].split()) for d in documents for h in hints_of(d)
    )
    assert 0.02 < hinted / words < 0.2


def test_ambiguous_aliases_get_the_sense_their_slot_decides(
    kb_forms: dict[str, set[str]],
) -> None:
    owners: dict[str, set[str]] = {}
    for entity_id, forms in kb_forms.items():
        for form in forms:
            owners.setdefault(form, set()).add(entity_id)
    senses: dict[str, set[str]] = {}
    for document in generate_documents(1000, seed=13):
        text = str(document["text"])
        for hint in hints_of(document):
            surface = text[hint["start"] : hint["end"]].lower()
            if len(owners[surface]) > 1:
                senses.setdefault(surface, set()).add(hint["id"])
    assert len(senses) >= 15, sorted(senses)
    assert senses["milan"] == {"city/milan", "club/ac-milan"}
    assert senses["liverpool"] == {"city/liverpool", "club/liverpool"}
    assert "country/jordan" in senses["jordan"] and "person/michael-jordan" in senses["jordan"]


# --------------------------------------------------------------------------- events


def test_events_are_deterministic(
    documents: list[dict[str, object]], events: list[dict[str, object]]
) -> None:
    assert generate_events(documents, 1000) == events
    assert generate_events(documents, 1000, seed=12) != events


def test_events_validate_against_schema(events: list[dict[str, object]]) -> None:
    check = validator("aimass.events")
    assert len(events) == 1000
    for event in events:
        check.validate(event)


def test_event_ids_are_unique(events: list[dict[str, object]]) -> None:
    ids = [e["event_id"] for e in events]
    assert len(set(ids)) == len(ids)


def test_events_reference_same_tenant_documents_and_follow_them(
    documents: list[dict[str, object]], events: list[dict[str, object]]
) -> None:
    by_key = {(d["tenant"], d["id"]): d for d in documents}
    for event in events:
        document = by_key.get((event["tenant"], event["item_id"]))
        assert document is not None, event
        assert event["ts"] >= document["ts"]  # type: ignore[operator]


def test_events_are_sorted_by_ts(events: list[dict[str, object]]) -> None:
    stamps = [e["ts"] for e in events]
    assert stamps == sorted(stamps)  # type: ignore[type-var]


def test_events_edge_cases(documents: list[dict[str, object]]) -> None:
    assert generate_events(documents, 0) == []
    assert generate_events([], 0) == []
    with pytest.raises(ValueError):
        generate_events([], 5)
    with pytest.raises(ValueError):
        generate_events(documents, -1)
    with pytest.raises(ValueError):
        generate_events(documents, 5, users_per_tenant=0)


def test_users_per_tenant_bounds_user_ids(documents: list[dict[str, object]]) -> None:
    events = generate_events(documents, 300, users_per_tenant=3)
    assert {e["user_id"] for e in events} <= {"u-0001", "u-0002", "u-0003"}


# --------------------------------------------------------------------------- bad messages


def test_bad_messages_fail_the_documents_schema() -> None:
    check = validator("aimass.documents")
    messages = bad_messages()
    assert len(messages) >= 10
    for raw, what in messages:
        assert isinstance(raw, bytes)
        assert what
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            continue  # not JSON at all
        if what.startswith("oversize"):
            assert len(raw) > 262_144
            continue  # schema-valid, too big for the pipeline
        assert not check.is_valid(obj), what


# --------------------------------------------------------------------------- write_jsonl


def test_write_jsonl_round_trip(tmp_path: Path) -> None:
    docs = generate_documents(5)
    path = tmp_path / "nested" / "docs.jsonl"
    assert write_jsonl(docs, path) == 5
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == docs
