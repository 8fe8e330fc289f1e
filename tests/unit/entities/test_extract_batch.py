"""The entity stage over a whole batch gives what the per-document stage gave: mention
vectors found by binary search over the batch's pieces, links decided for every mention at
once (the per-document formulas are kept here as the reference)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_aimass.entities.extract import EntityExtractor
from stream_aimass.entities.linking import (
    LinkedEntity,
    Mention,
    batch_mention_vectors,
    mention_vectors,
)
from stream_aimass.entities.ner import DetectorInput
from stream_aimass.models.encoder import EncodedBatch, Encoder, Tokenized
from stream_aimass.settings import default_model_dir
from stream_aimass.tools.corpus import generate_documents

DIM = 6


def _document(
    draw: st.DrawFn, monotone: bool
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """A document's piece offsets, (0, 0) around them as a tokenizer's specials, and spans."""
    lengths = draw(st.lists(st.integers(0, 6), max_size=14))
    gaps = draw(st.lists(st.integers(0, 2), min_size=len(lengths), max_size=len(lengths)))
    pieces, at = [], 0
    for length, gap in zip(lengths, gaps, strict=True):
        at += gap
        pieces.append((at, at + length))  # a length 0 piece: a special token in between
        at += length
    if not monotone:
        pieces = draw(st.permutations(pieces))
    spans = draw(st.lists(st.tuples(st.integers(0, at + 3), st.integers(0, 5)), max_size=5))
    return [(0, 0), *pieces, (0, 0)], sorted((a, a + n) for a, n in spans)


@st.composite
def batches(draw: st.DrawFn) -> list[tuple[list[tuple[int, int]], list[tuple[int, int]]]]:
    """Documents whose offsets all go forward (the binary search) or not (per document)."""
    monotone = draw(st.booleans())
    return [_document(draw, monotone) for _ in range(draw(st.integers(1, 6)))]


@settings(max_examples=300, deadline=None)
@given(docs=batches(), seed=st.integers(0, 2**16))
def test_batch_mention_vectors_are_each_documents_own(docs, seed) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    states = [rng.standard_normal((len(o) + 1, DIM)).astype(np.float32) for o, _ in docs]
    offsets = [o for o, _ in docs]
    spans = [s for _, s in docs]
    stacked = batch_mention_vectors(states, offsets, spans)
    got, have = stacked.vectors, stacked.have
    want = [v for d, (o, s) in enumerate(docs) for v in mention_vectors(states[d], o, s)]
    assert have.tolist() == [w is not None for w in want]
    for row, w in enumerate(want):
        if w is not None:
            assert got is not None
            np.testing.assert_allclose(got[row], w, rtol=1e-5, atol=1e-6)


def test_no_spans_or_no_states_give_no_vectors() -> None:
    assert batch_mention_vectors([], [[(0, 0)]], [[(0, 1)]]).have.tolist() == [False]
    none = batch_mention_vectors([np.ones((2, DIM), np.float32)], [[(0, 0)]], [[]])
    assert none.vectors is None and none.have.tolist() == []


def reference_extract(
    extractor: EntityExtractor, texts: list[str], tokenized: Tokenized, encoded: EncodedBatch
) -> list[list[LinkedEntity]]:
    """The per-document entity stage: each document's mention vectors on their own, every
    mention linked from lists of vectors."""
    states = encoded.token_states or []
    spans = extractor.detector.detect(DetectorInput(texts, tokenized, states))
    out = []
    for row, doc_spans in enumerate(spans):
        vectors = mention_vectors(
            states[row], tokenized.offsets[row], [(s.start, s.end) for s in doc_spans]
        )
        mentions = []
        for span in doc_spans:
            surface = texts[row][span.start : span.end]
            if span.candidates is not None:
                candidates, exact = span.candidates, True
            else:
                candidates, exact = extractor.index.candidates_and_match(surface)
            mentions.append(Mention(span.start, span.end, surface, span.label, candidates, exact))
        context = [encoded.embeddings[row]] * len(mentions)
        out.append(extractor.linker.link_many(mentions, vectors, context))
    return out


@pytest.mark.model
def test_the_batch_entity_stage_gives_the_per_document_links(tmp_path: Path) -> None:
    encoder = Encoder(default_model_dir(), device="cpu", dtype="fp32")
    extractor = EntityExtractor.build(
        encoder, kb_path=None, ner_model="", models_dir=tmp_path, cache_dir=tmp_path
    )
    texts = [d["text"] for d in generate_documents(192, seed=11)]
    texts += ["", "No entity here at all.", "Zürich und São Paulo, then U.S. and Apple's"]
    mentions = 0
    for start in range(0, len(texts), 64):
        batch = texts[start : start + 64]
        tokenized = encoder.tokenize_with_offsets(batch)
        encoded = encoder.encode_ids(tokenized.ids, token_states=True)
        got = extractor.extract(batch, tokenized, encoded)
        want = reference_extract(extractor, batch, tokenized, encoded)
        assert [[(e.text, e.start, e.end, e.label) for e in d] for d in got] == [
            [(e.text, e.start, e.end, e.label) for e in d] for d in want
        ]
        for g, w in zip((e for d in got for e in d), (e for d in want for e in d), strict=True):
            mentions += 1
            # Sums in another order: a score may differ in its last rounded digit.
            assert abs(g.score - w.score) <= 1e-4
            if abs(w.score - 0.5) > 1e-3:  # not at the NIL threshold: the same decision
                assert (g.entity_id, g.name) == (w.entity_id, w.name)
    assert mentions > 300
