"""Linking on ambiguous fixtures with the real encoder: context decides, NIL when unsure."""
# ruff: noqa: E501

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stream_aimass.entities.aliases import AliasIndex
from stream_aimass.entities.extract import EntityExtractor
from stream_aimass.entities.kb import parse_kb
from stream_aimass.entities.linking import (
    EntityLinker,
    LinkWeights,
    Mention,
    entity_vectors,
    mention_vectors,
)
from stream_aimass.entities.ner import DictionaryDetector
from stream_aimass.models.encoder import Encoder
from stream_aimass.settings import default_model_dir

pytestmark = pytest.mark.model

# fmt: off
ENTITIES = [
    ("company/apple", "Apple Inc.", "ORG", ["Apple"], "American technology company that makes the iPhone, iPad and Mac computers.", 90),
    ("fruit/apple", "apple", "MISC", [], "Round edible fruit of the apple tree, eaten raw or in pies and juice.", 10),
    ("country/jordan", "Jordan", "LOC", ["Hashemite Kingdom of Jordan"], "Arab kingdom in Western Asia whose capital is Amman, ruled by King Abdullah II.", 40),
    ("person/michael-jordan", "Michael Jordan", "PER", ["Jordan", "MJ"], "American basketball player who won six NBA championships with the Chicago Bulls.", 60),
    ("river/amazon", "Amazon River", "LOC", ["Amazon"], "Largest river in South America, flowing through the Brazilian rainforest.", 20),
    ("company/amazon", "Amazon.com", "ORG", ["Amazon"], "American e-commerce and cloud computing company founded by Jeff Bezos.", 90),
]
# fmt: on


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder(default_model_dir(), device="cpu", dtype="fp32")


@pytest.fixture(scope="module")
def extractor(encoder: Encoder, tmp_path_factory: pytest.TempPathFactory) -> EntityExtractor:
    lines = [
        json.dumps({"id": i, "name": n, "type": t, "aliases": a, "description": d, "popularity": p})
        for i, n, t, a, d, p in ENTITIES
    ]
    kb = parse_kb("\n".join(lines).encode(), "fixture")
    index = AliasIndex(kb)
    cache = tmp_path_factory.mktemp("cache")
    vectors = entity_vectors(kb, encoder, cache)
    assert list(cache.iterdir())  # cached on disk, keyed by KB and model version
    assert np.allclose(entity_vectors(kb, encoder, cache), vectors)
    return EntityExtractor(kb, index, EntityLinker(kb, vectors, index), DictionaryDetector(index))


def run(extractor: EntityExtractor, encoder: Encoder, text: str) -> list[tuple[str, str | None]]:
    tokenized = encoder.tokenize_with_offsets([text])
    encoded = encoder.encode_ids(tokenized.ids, token_states=True)
    (linked,) = extractor.extract([text], tokenized, encoded)
    assert all(text[e.start : e.end] == e.text for e in linked)
    return [(e.text, e.entity_id) for e in linked]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Apple shares rose after the new iPhone and Mac sales beat forecasts.",
            [("Apple", "company/apple")],
        ),
        ("For breakfast I ate an apple and a banana with yogurt.", [("apple", "fruit/apple")]),
        (
            "Jordan scored 40 points as the Bulls won the NBA game in Chicago.",
            [("Jordan", "person/michael-jordan")],
        ),
        (
            "King Abdullah said Jordan will host refugees near its border with Syria and Iraq.",
            [("Jordan", "country/jordan")],
        ),
        (
            "Deforestation along the Amazon threatens fish and rainforest villages in Brazil.",
            [("Amazon", "river/amazon")],
        ),
        (
            "Amazon reported record cloud revenue and online shopping sales this quarter.",
            [("Amazon", "company/amazon")],
        ),
    ],
)
def test_context_decides_ambiguous_aliases(
    extractor: EntityExtractor, encoder: Encoder, text: str, expected: list[tuple[str, str]]
) -> None:
    assert run(extractor, encoder, text) == expected


def test_mention_vectors_cover_the_pieces_of_the_span(encoder: Encoder) -> None:
    text = "Michael Jordan played in Chicago."
    tokenized = encoder.tokenize_with_offsets([text])
    states = encoder.encode_ids(tokenized.ids, token_states=True).token_states
    assert states is not None and states[0].shape == (len(tokenized.ids[0]), encoder.dim)
    (jordan, nothing) = mention_vectors(states[0], tokenized.offsets[0], [(0, 14), (40, 45)])
    assert jordan is not None and abs(float(np.linalg.norm(jordan)) - 1) < 1e-5
    assert nothing is None


def test_a_high_threshold_makes_nil_and_type_agreement_counts(extractor: EntityExtractor) -> None:
    kb = extractor.kb
    both = tuple(kb.ids[i] for i in ("country/jordan", "person/michael-jordan"))
    strict = EntityLinker(
        kb, extractor.linker.vectors, extractor.index, LinkWeights(nil_threshold=9)
    )
    mention = Mention(0, 6, "Jordan", "", both)
    assert strict.link(mention, None, None).entity_id is None
    assert strict.link(mention, None, None).score < 0.5
    # Without vectors the prior decides; a PER label from a NER model overrides it.
    plain = EntityLinker(
        kb, extractor.linker.vectors, extractor.index, LinkWeights(nil_threshold=-9)
    )
    assert plain.link(mention, None, None).entity_id == "person/michael-jordan"
    as_loc = Mention(0, 6, "Jordan", "LOC", both)
    assert plain.link(as_loc, None, None).entity_id == "country/jordan"
    assert plain.prior_only(mention) == "person/michael-jordan"


def test_mentions_without_candidates_are_nil(extractor: EntityExtractor) -> None:
    linked = extractor.linker.link(Mention(0, 5, "Zorbl", "ORG", ()), None, None)
    assert linked.entity_id is None and linked.name is None and linked.label == "ORG"


def test_cache_path_is_keyed_by_kb_and_model_version(
    extractor: EntityExtractor, encoder: Encoder, tmp_path: Path
) -> None:
    entity_vectors(extractor.kb, encoder, tmp_path)
    (cached,) = tmp_path.iterdir()
    assert extractor.kb.version in cached.name and encoder.version in cached.name
