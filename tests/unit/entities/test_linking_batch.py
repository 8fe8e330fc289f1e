"""Linking a batch's mentions at once gives what linking them one by one gives (the plain
per-mention formulas are kept here as the reference)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_aimass.entities.kb import parse_kb
from stream_aimass.entities.linking import (
    EntityLinker,
    LinkWeights,
    Mention,
    label_type,
    mention_vectors,
)

DIM = 8
TYPES = ["PER", "ORG", "LOC"]


def _kb(n: int):  # type: ignore[no-untyped-def]
    import json

    rows = [
        {"id": f"e/{i}", "name": f"E{i}", "type": TYPES[i % 3], "popularity": 1 + (i * 7) % 11}
        for i in range(n)
    ]
    return parse_kb("\n".join(json.dumps(r) for r in rows).encode(), "t")


def reference_scores(linker: EntityLinker, m: Mention, mv, cv) -> np.ndarray:  # type: ignore[no-untyped-def]
    w = linker.weights
    cands = list(m.candidates)
    ev = linker.vectors[cands]
    total = np.zeros(len(cands))
    if mv is not None and w.mention:
        total += w.mention * (ev @ mv)
    if cv is not None and w.context:
        total += w.context * (ev @ cv)
    pop = linker.popularity[cands]
    total += w.prior * np.log(pop / pop.sum())
    wanted = label_type(m.label)
    if wanted is not None and w.type:
        total += w.type * np.array([1.0 if linker.types[c] == wanted else -1.0 for c in cands])
    if m.exact:
        total += w.exact
    return total


def reference_vectors(states, offsets, spans):  # type: ignore[no-untyped-def]
    starts = np.array([a for a, _ in offsets])
    ends = np.array([b for _, b in offsets])
    real = ends > starts
    out = []
    for start, end in spans:
        inside = real & (starts < end) & (ends > start)
        if not inside.any():
            out.append(None)
            continue
        vec = states[: len(offsets)][inside].mean(axis=0)
        norm = float(np.linalg.norm(vec))
        out.append(vec / norm if norm > 0 else None)
    return out


mention = st.builds(
    lambda cands, label, exact, has_mv: (cands, label, exact, has_mv),
    st.lists(st.integers(0, 19), max_size=5, unique=True),
    st.sampled_from(["", "PER", "ORG", "misc", "gpe"]),
    st.booleans(),
    st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(mentions=st.lists(mention, max_size=12), seed=st.integers(0, 2**16), context=st.booleans())
def test_link_many_is_linking_one_by_one(mentions, seed, context) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((20, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    linker = EntityLinker(_kb(20), vectors, weights=LinkWeights(nil_threshold=0.1))
    ms, mvs, cvs = [], [], []
    for n, (cands, label, exact, has_mv) in enumerate(mentions):
        ms.append(Mention(n, n + 1, f"m{n}", label, tuple(cands), exact))
        mvs.append(rng.standard_normal(DIM).astype(np.float32) if has_mv else None)
        cvs.append(rng.standard_normal(DIM).astype(np.float32) if context else None)
    got = linker.link_many(ms, mvs, cvs)
    for m, mv, cv, linked in zip(ms, mvs, cvs, got, strict=True):
        if not m.candidates:
            assert linked.entity_id is None and linked.score == 0.0
            continue
        s = reference_scores(linker, m, mv, cv)
        np.testing.assert_allclose(linker.scores(m, mv, cv), s, rtol=1e-5, atol=1e-6)
        best = int(np.argmax(s))
        margin = float(s[best]) - linker.weights.nil_threshold
        assert abs(linked.score - round(1 / (1 + math.exp(-4 * margin)), 4)) <= 1e-4
        top2 = np.sort(s)[-2:]
        if len(s) < 2 or top2[1] - top2[0] > 1e-5:  # no near tie: the same entity
            want = None if margin < 0 else linker.kb.entities[m.candidates[best]].id
            if abs(margin) > 1e-5:
                assert linked.entity_id == want


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8)), min_size=1, max_size=20),
    spans=st.lists(st.tuples(st.integers(0, 70), st.integers(0, 12)), max_size=6),
    seed=st.integers(0, 2**16),
)
def test_mention_vectors_are_the_mean_of_the_pieces_inside(pieces, spans, seed) -> None:  # type: ignore[no-untyped-def]
    offsets = [(a, a + n) for a, n in pieces]  # n == 0: a special token
    char_spans = [(a, a + n) for a, n in spans]
    states = np.random.default_rng(seed).standard_normal((len(offsets) + 2, DIM)).astype(np.float32)
    got = mention_vectors(states, offsets, char_spans)
    want = reference_vectors(states, offsets, char_spans)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert (g is None) == (w is None)
        if g is not None:
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
