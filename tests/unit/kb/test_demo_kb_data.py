"""The shipped demo KB and the entity-linking evaluation set, checked with plain ``json``.

The KB loader has its own tests; these check the data itself: well-formed entities, enough
of them, many deliberately ambiguous aliases, and gold mentions whose offsets and entity ids
are right.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from importlib import resources
from typing import Any

import pytest

KB_DIR = resources.files("stream_aimass") / "resources" / "kb"
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_./-]*$")
TYPES = {"PER", "ORG", "LOC", "PRODUCT", "MISC"}
KEYS = {"id", "name", "type", "aliases", "description", "popularity", "external_ids"}


def read_jsonl(name: str) -> list[dict[str, Any]]:
    text = (KB_DIR / name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def kb() -> list[dict[str, Any]]:
    return read_jsonl("demo-kb.jsonl")


@pytest.fixture(scope="module")
def kb_by_id(kb: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {entity["id"]: entity for entity in kb}


@pytest.fixture(scope="module")
def surface_index(kb: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Lowercased name or alias -> ids of the entities that have it."""
    index: dict[str, set[str]] = defaultdict(set)
    for entity in kb:
        for form in (entity["name"], *entity["aliases"]):
            index[form.lower()].add(entity["id"])
    return index


LINKING_SETS = ("linking-eval.jsonl", "linking-eval-2.jsonl")


@pytest.fixture(scope="module", params=LINKING_SETS)
def examples(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """Each linking set: the one the weights were fitted on, and the independent one."""
    return read_jsonl(request.param)


@pytest.fixture(scope="module")
def mentions(examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [mention for example in examples for mention in example["mentions"]]


# --------------------------------------------------------------------------- KB


def test_kb_is_large_enough_and_covers_every_type(kb: list[dict[str, Any]]) -> None:
    assert len(kb) >= 320
    counts = Counter(entity["type"] for entity in kb)
    assert set(counts) == TYPES
    assert min(counts.values()) >= 30, counts


def test_kb_ids_are_unique_slugs(kb: list[dict[str, Any]]) -> None:
    ids = [entity["id"] for entity in kb]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
    bad = [i for i in ids if not isinstance(i, str) or not ID_PATTERN.match(i) or "/" not in i]
    assert not bad


def test_kb_entities_are_well_formed(kb: list[dict[str, Any]]) -> None:
    for entity in kb:
        where = entity.get("id")
        assert set(entity) <= KEYS, where
        assert entity["type"] in TYPES, where
        assert isinstance(entity["name"], str) and entity["name"].strip(), where
        description = entity["description"]
        assert isinstance(description, str) and len(description.split()) >= 3, where
        popularity = entity["popularity"]
        assert isinstance(popularity, int | float) and not isinstance(popularity, bool), where
        assert popularity > 0, where
        aliases = entity["aliases"]
        assert isinstance(aliases, list), where
        assert all(isinstance(a, str) and a.strip() == a and a for a in aliases), where
        assert entity["name"] not in aliases, where
        assert len(aliases) == len(set(aliases)), where
        external = entity.get("external_ids", {})
        assert isinstance(external, dict), where
        assert all(isinstance(v, str) for v in external.values()), where
        if "wikidata" in external:
            assert re.fullmatch(r"Q[1-9][0-9]*", external["wikidata"]), where


def test_kb_has_many_ambiguous_surface_forms(surface_index: dict[str, set[str]]) -> None:
    ambiguous = {form for form, ids in surface_index.items() if len(ids) > 1}
    assert len(ambiguous) >= 25, sorted(ambiguous)
    for form in ("apple", "amazon", "jordan", "paris", "washington", "mercury", "java"):
        assert form in ambiguous, form


def test_news_priors_favour_the_prominent_sense(kb_by_id: dict[str, dict[str, Any]]) -> None:
    def popularity(entity_id: str) -> float:
        return float(kb_by_id[entity_id]["popularity"])

    assert popularity("company/apple") > popularity("food/apple")
    assert popularity("company/amazon") > popularity("river/amazon")
    assert popularity("city/paris") > popularity("person/paris-hilton")
    assert popularity("country/turkey") > popularity("animal/turkey")


# --------------------------------------------------------------------------- linking set


def test_linking_examples_are_well_formed(examples: list[dict[str, Any]]) -> None:
    ids = [example["id"] for example in examples]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"le2?-\d{3,}", i) for i in ids)
    for example in examples:
        assert set(example) == {"id", "text", "mentions"}, example["id"]
        assert isinstance(example["text"], str) and example["text"].strip(), example["id"]
        assert example["mentions"], example["id"]


def test_mention_offsets_match_the_text(examples: list[dict[str, Any]]) -> None:
    for example in examples:
        text = example["text"]
        previous_end = 0
        for mention in sorted(example["mentions"], key=lambda m: m["start"]):
            start, end = mention["start"], mention["end"]
            assert isinstance(start, int) and isinstance(end, int), example["id"]
            assert previous_end <= start < end <= len(text), (example["id"], mention)
            assert text[start:end] == mention["text"], (example["id"], mention)
            assert mention["text"] == mention["text"].strip(), (example["id"], mention)
            previous_end = end


def test_gold_entities_exist_in_the_kb(
    mentions: list[dict[str, Any]], kb_by_id: dict[str, dict[str, Any]]
) -> None:
    missing = [m for m in mentions if m["entity_id"] is not None and m["entity_id"] not in kb_by_id]
    assert not missing


def test_linked_mentions_use_a_name_or_alias_of_their_entity(
    mentions: list[dict[str, Any]], kb_by_id: dict[str, dict[str, Any]]
) -> None:
    for mention in mentions:
        if mention["entity_id"] is None:
            continue
        entity = kb_by_id[mention["entity_id"]]
        forms = {form.lower() for form in (entity["name"], *entity["aliases"])}
        assert mention["text"].lower() in forms, mention


def test_linking_set_size_nil_share_and_ambiguity(
    mentions: list[dict[str, Any]], surface_index: dict[str, set[str]]
) -> None:
    assert len(mentions) >= 170
    assert sum(m["entity_id"] is None for m in mentions) >= 20
    ambiguous = [m for m in mentions if len(surface_index.get(m["text"].lower(), ())) > 1]
    assert len(ambiguous) >= 60
    # Context must decide: the same ambiguous surface is gold for different entities.
    senses: dict[str, set[str | None]] = defaultdict(set)
    for mention in ambiguous:
        senses[mention["text"].lower()].add(mention["entity_id"])
    assert sum(len(ids) > 1 for ids in senses.values()) >= 25


def test_the_second_set_is_new_and_hard_where_the_linker_is_weak(
    surface_index: dict[str, set[str]],
) -> None:
    first, second = read_jsonl(LINKING_SETS[0]), read_jsonl(LINKING_SETS[1])
    assert not {e["text"] for e in first} & {e["text"] for e in second}  # new texts
    mentions = [m for e in second for m in e["mentions"]]
    assert len(mentions) >= 150
    # NIL mentions whose words are a KB alias: candidates the linker must turn down.
    hard_nil = [
        m for m in mentions
        if m["entity_id"] is None
        and any(w.lower() in surface_index for w in m["text"].split())
    ]  # fmt: skip
    assert len(hard_nil) >= 15
    ambiguous = [m for m in mentions if len(surface_index.get(m["text"].lower(), ())) > 1]
    assert len(ambiguous) >= 100
