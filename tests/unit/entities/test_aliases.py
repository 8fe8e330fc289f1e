"""Alias normalisation, exact and prefix lookup, and scanning text for mentions."""

from __future__ import annotations

import json

import pytest

from stream_aimass.entities.aliases import AliasIndex, normalize
from stream_aimass.entities.kb import KnowledgeBase, parse_kb

ENTITIES = [
    {"id": "company/apple", "name": "Apple Inc.", "type": "ORG", "aliases": ["Apple"],
     "popularity": 90},
    {"id": "fruit/apple", "name": "apple", "type": "MISC", "popularity": 5},
    {"id": "city/zurich", "name": "Zürich", "type": "LOC", "aliases": ["Zurich"]},
    {"id": "city/nyc", "name": "New York City", "type": "LOC", "aliases": ["New York", "NYC"]},
    {"id": "state/ny", "name": "New York", "type": "LOC", "aliases": ["New York State"]},
    {"id": "country/us", "name": "United States", "type": "LOC", "aliases": ["US", "U.S."]},
    {"id": "org/who", "name": "World Health Organization", "type": "ORG", "aliases": ["WHO"]},
]  # fmt: skip


@pytest.fixture(scope="module")
def index() -> AliasIndex:
    data = "\n".join(json.dumps(e) for e in ENTITIES).encode()
    return AliasIndex(parse_kb(data, "test"))


def ids(index: AliasIndex, found: tuple[int, ...]) -> set[str]:
    kb: KnowledgeBase = index.kb
    return {kb.entities[i].id for i in found}


def test_normalisation_folds_case_diacritics_and_spacing() -> None:
    assert normalize("  ZÜRICH ") == normalize("zurich") == "zurich"
    assert normalize("New   York") == "new york"
    assert normalize("Apple’s") == normalize("apple's")


def test_exact_lookup_respects_meaningful_case(index: AliasIndex) -> None:
    assert ids(index, index.lookup("Apple")) == {"company/apple", "fruit/apple"}
    assert ids(index, index.lookup("apple")) == {"fruit/apple"}  # lowercase: not the company
    assert ids(index, index.lookup("US")) == {"country/us"}
    assert index.lookup("us") == ()  # acronyms match their exact case only
    assert ids(index, index.lookup("zurich")) == set()  # capitalised alias, lowercase text
    assert ids(index, index.lookup("Zurich")) == {"city/zurich"}
    assert ids(index, index.lookup("New York")) == {"city/nyc", "state/ny"}


def test_prefix_lookup(index: AliasIndex) -> None:
    assert index.prefix("new y") == ["new york", "new york city", "new york state"]
    assert index.prefix("zzz") == []


def test_scan_finds_longest_leftmost_matches_with_offsets(index: AliasIndex) -> None:
    text = "Apple opened a store in New York City; the WHO and who? Zürich too. I ate an apple."
    found = index.scan(text)
    assert [(m.text, text[m.start : m.end]) for m in found] == [
        ("Apple", "Apple"), ("New York City", "New York City"), ("WHO", "WHO"),
        ("Zürich", "Zürich"), ("apple", "apple"),
    ]  # fmt: skip
    assert ids(index, found[1].candidates) == {"city/nyc"}  # longest alias wins
    assert ids(index, found[-1].candidates) == {"fruit/apple"}


def test_candidates_for_ner_mentions(index: AliasIndex) -> None:
    assert ids(index, index.candidates("apple")) == {"fruit/apple"}  # case rules first
    assert ids(index, index.candidates("zurich")) == {"city/zurich"}  # then any case
    assert ids(index, index.candidates("New York Sta")) == {"state/ny"}  # prefix
    assert ids(index, index.candidates("the World Health Organization's")) == {"org/who"}
    assert index.candidates("Nothing Here") == ()


def test_ambiguous_aliases(index: AliasIndex) -> None:
    assert set(index.ambiguous()) == {"apple", "new york"}
