"""Alias normalisation, exact and prefix lookup, and scanning text for mentions."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_aimass.entities.aliases import (
    AliasIndex,
    AliasMatch,
    _case_ok,
    normalize,
    normalize_token,
    tokens,
)
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


MENTIONS = [
    "apple",
    "Apple",
    "zurich",
    "New York Sta",
    "New York",
    "new york",
    "NYC",
    "the World Health Organization's",
    "Nothing Here",
    "US",
    "us",
    "U.S.",
    "Zürich",
]


def test_remembered_candidates_are_the_looked_up_ones_whatever_came_before() -> None:
    data = "\n".join(json.dumps(e) for e in ENTITIES).encode()
    fresh = [AliasIndex(parse_kb(data, "test")).candidates_and_match(m) for m in MENTIONS]
    warm = AliasIndex(parse_kb(data, "test"))
    for _ in range(3):  # in reversed order, then twice more: each answer as fresh
        for mention, expected in reversed(list(zip(MENTIONS, fresh, strict=True))):
            assert warm.candidates_and_match(mention) == expected


def test_remembered_mentions_are_bounded(
    index: AliasIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("stream_aimass.entities.aliases._MENTIONS_REMEMBERED", 4)
    for n in range(50):
        index.candidates_and_match(f"Mention {n}")
    assert len(index._mentions) <= 4
    assert ids(index, index.candidates("Zurich")) == {"city/zurich"}


def test_ambiguous_aliases(index: AliasIndex) -> None:
    assert set(index.ambiguous()) == {"apple", "new york"}


# -- the fast paths agree with the plain definitions ------------------------------------------


def reference_normalize_token(token: str) -> str:
    decomposed = unicodedata.normalize("NFKD", token.replace("’", "'"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@given(st.one_of(st.text(st.characters(max_codepoint=0x7F), max_size=12), st.text(max_size=12)))
def test_normalize_token_matches_its_definition(token: str) -> None:
    assert normalize_token(token) == reference_normalize_token(token)


def reference_scan(index: AliasIndex, text: str) -> list[AliasMatch]:
    """Every alias length tried at every token, longest first (the plain algorithm)."""
    toks = tokens(text)
    out: list[AliasMatch] = []
    i = 0
    while i < len(toks):
        matched = None
        for n in range(min(index.max_tokens, len(toks) - i), 0, -1):
            key = index.by_tokens.get(tuple(t for _, _, t in toks[i : i + n]))
            if key is None:
                continue
            start, end = toks[i][0], toks[i + n - 1][1]
            surface = text[start:end]
            cands = tuple(dict.fromkeys(e for e, f in index.forms[key] if _case_ok(surface, f)))
            if cands:
                matched = AliasMatch(start, end, surface, cands)
                i += n
                break
        if matched is None:
            i += 1
        else:
            out.append(matched)
    return out


# Aliases that share prefixes and tokens ("New York" / "New York City" / "York"), acronyms,
# and words that are no alias, in several cases, with punctuation between them.
WORDS = ["New", "new", "York", "york", "City", "State", "US", "us", "U.S.", "WHO", "who",
         "apple", "Apple", "Zürich", "zurich", "the", "of", ",", ".", "'s", "’s", "Bank",
         "bank", "England", "York's", "New York", "new york", "New York City", "NEW YORK CITY",
         "New York State", "Bank of", "Bank of England", "the Bank",
         "New York City Bank of the",
         # where tokens join or split without a space: inner dots, apostrophes, a word
         # after a dot or an apostrophe, aliases that begin with punctuation
         "s", "S.", "us.", "U.S.A", "'", "'s.York", ".NET", ".net", "x.NET", "'Ndrangheta",
         "'ndrangheta's", "New.York", "York.", "a'York", "'York"]  # fmt: skip
SCAN_ENTITIES = [
    *ENTITIES,
    {"id": "city/york", "name": "York", "type": "LOC"},
    {"id": "org/boe", "name": "Bank of England", "type": "ORG", "aliases": ["the Bank"]},
    {"id": "org/nyc-bank", "name": "New York City Bank of the US", "type": "ORG"},
    {"id": "tech/dotnet", "name": ".NET", "type": "PRODUCT", "aliases": [".net framework"]},
    {"id": "org/ndrangheta", "name": "'Ndrangheta", "type": "ORG"},
    {"id": "letter/s", "name": "S", "type": "MISC", "aliases": ["s."]},
]


@pytest.fixture(scope="module")
def scan_index() -> AliasIndex:
    data = "\n".join(json.dumps(e) for e in SCAN_ENTITIES).encode()
    return AliasIndex(parse_kb(data, "test"))


@settings(max_examples=300, deadline=None)
@given(words=st.lists(st.sampled_from(WORDS), max_size=25), glue=st.sampled_from([" ", "  ", ""]))
def test_scan_matches_the_plain_algorithm(
    scan_index: AliasIndex, words: list[str], glue: str
) -> None:
    text = glue.join(words)
    assert scan_index.scan(text) == reference_scan(scan_index, text)


@settings(max_examples=600, deadline=None)
@given(
    words=st.lists(
        st.sampled_from([w for w in WORDS if w.isascii()])
        | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=8),
        max_size=25,
    ),
    glue=st.sampled_from([" ", "  ", "", "\n", ", "]),
)
def test_the_ascii_fast_path_matches_the_plain_algorithm(
    scan_index: AliasIndex, words: list[str], glue: str
) -> None:
    """ASCII texts are lowered and split in C: the same matches as token by token."""
    text = glue.join(words)
    assert text.isascii()
    assert scan_index.scan(text) == reference_scan(scan_index, text)
