"""Entity linking: each mention to a KB entity, or to NIL.

Candidates come from the alias index. Each candidate ``e`` of a mention ``m`` gets

    s(m, e) = w_mention * cos(mention vector, entity vector)
            + w_context * cos(document vector, entity vector)
            + w_prior   * log P(e | alias)
            + w_type    * type agreement (+1 same type, 0 unknown, -1 different)
            + w_exact   * (the mention is exactly one of the entity's aliases)

The mention vector is the mean of the encoder's token states over the mention's word
pieces, from the document's one forward pass; the document vector is that pass's pooled
embedding; entity vectors embed "name: description" once per KB and model version (cached
on disk). The best candidate is linked when ``s`` reaches ``nil_threshold``; otherwise the
mention is NIL. The reported score is ``sigmoid(4 * (s - nil_threshold))``: 0.5 at the
threshold.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from stream_aimass.entities.aliases import AliasIndex
from stream_aimass.entities.kb import KnowledgeBase

log = logging.getLogger("stream_aimass.entities")

# NER labels of common schemes -> KB types (WikiGold/CoNLL, WNUT17, OntoNotes-style).
LABEL_TYPES: dict[str, str] = {
    "per": "PER", "person": "PER",
    "org": "ORG", "organization": "ORG", "organisation": "ORG", "corporation": "ORG",
    "group": "ORG", "norp": "ORG",
    "loc": "LOC", "location": "LOC", "gpe": "LOC", "fac": "LOC",
    "product": "PRODUCT", "work_of_art": "MISC", "creative-work": "MISC",
    "misc": "MISC", "event": "MISC", "language": "MISC",
}  # fmt: skip


def label_type(label: str) -> str | None:
    return LABEL_TYPES.get(label.lower())


FEATURES = ("mention", "context", "prior", "type", "exact")
"""The terms of s(m, e), in the order of :meth:`EntityLinker.candidate_features`' columns
(and of :class:`LinkWeights`' fields)."""


@dataclass(frozen=True, slots=True)
class LinkWeights:
    """The documented combination; see the module docstring."""

    mention: float = 1.0
    context: float = 1.0
    prior: float = 0.15
    type: float = 0.2
    exact: float = 0.3
    nil_threshold: float = 0.55


SHIPPED_WEIGHTS = Path(__file__).resolve().parents[1] / "resources" / "kb" / "link-weights.json"


def load_link_weights(path: Path | None = None, nil_threshold: float | None = None) -> LinkWeights:
    """The weights in ``path`` (as ``stream-aimass train linking`` writes them), else the
    ones fitted for the demo KB and MiniLM that ship with the package, else the defaults;
    ``nil_threshold``, when given, replaces the file's."""
    import json

    source = path or (SHIPPED_WEIGHTS if SHIPPED_WEIGHTS.exists() else None)
    weights = LinkWeights()
    if source is not None:
        try:
            data = json.loads(source.read_text())
            fields = {k: float(data[k]) for k in LinkWeights.__dataclass_fields__ if k in data}
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"{source}: not a linking weights file ({exc})") from None
        weights = LinkWeights(**fields)
    if nil_threshold is not None:
        weights = LinkWeights(**{**asdict(weights), "nil_threshold": nil_threshold})
    return weights


@dataclass(frozen=True, slots=True)
class Mention:
    """A detected mention: character span, NER label, and its candidates."""

    start: int
    end: int
    text: str
    label: str
    candidates: tuple[int, ...]
    exact: bool = True  # candidates from an exact alias match (not a prefix or inner match)


@dataclass(frozen=True, slots=True)
class LinkedEntity:
    text: str
    start: int
    end: int
    label: str
    entity_id: str | None
    name: str | None
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "label": self.label,
            "entity_id": self.entity_id,
            "name": self.name,
            "score": self.score,
        }


def entity_vectors(kb: KnowledgeBase, encoder: Any, cache_dir: Path | None) -> np.ndarray:
    """Unit vectors of "name: description" per entity, cached by KB and model version."""
    cache = None
    if cache_dir is not None:
        cache = cache_dir / f"kb-{kb.name}-{kb.version}-{encoder.version}.npy"
        if cache.exists():
            cached: np.ndarray = np.load(cache)
            if cached.shape == (len(kb), encoder.dim):
                return cached
    texts = [e.text_for_embedding for e in kb.entities]
    chunks = [encoder.encode_texts(texts[i : i + 64]) for i in range(0, len(texts), 64)]
    vectors = np.vstack(chunks).astype(np.float32)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        # Several enrich processes may embed the KB at once: each writes its own file.
        tmp = cache.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(cache)
        log.info("embedded %d KB entities -> %s", len(kb), cache)
    return vectors


@dataclass(frozen=True, slots=True)
class Stacked:
    """A vector per mention as one (mentions, dim) array, and which mentions have one (the
    rows of those without are zeros). ``vectors`` is None when none has one."""

    vectors: np.ndarray | None
    have: np.ndarray  # bool, one per mention

    @classmethod
    def of(cls, vecs: Sequence[np.ndarray | None], dim: int) -> Stacked:
        have = np.array([v is not None for v in vecs], dtype=bool)
        if not have.any():
            return cls(None, have)
        return cls(np.stack([v if v is not None else np.zeros(dim) for v in vecs]), have)


class EntityLinker:
    def __init__(
        self,
        kb: KnowledgeBase,
        vectors: np.ndarray,
        index: AliasIndex | None = None,
        weights: LinkWeights | None = None,
    ) -> None:
        self.kb = kb
        self.vectors = vectors
        self.index = index or AliasIndex(kb)
        self.weights = weights or LinkWeights()
        self.popularity = np.array([e.popularity for e in kb.entities], dtype=np.float64)
        self.types = [e.type for e in kb.entities]

    def scores(
        self, mention: Mention, mention_vec: np.ndarray | None, context_vec: np.ndarray | None
    ) -> np.ndarray:
        """s(m, e) for each candidate of ``mention`` (in candidate order)."""
        return self._scores([mention], [mention_vec], [context_vec])[0]

    def _scores(
        self,
        mentions: Sequence[Mention],
        mention_vecs: Sequence[np.ndarray | None],
        context_vecs: Sequence[np.ndarray | None],
    ) -> list[np.ndarray]:
        """s(m, e) for every candidate of every mention (see :meth:`_batch_scores`)."""
        dim = self.vectors.shape[1]
        total, sizes = self._batch_scores(
            mentions, Stacked.of(mention_vecs, dim), Stacked.of(context_vecs, dim)
        )
        return (
            np.split(total, np.cumsum(sizes)[:-1])
            if len(total)
            else [np.zeros(0) for _ in mentions]
        )

    def _batch_scores(
        self,
        mentions: Sequence[Mention],
        mention_vecs: Stacked,
        context_vecs: Stacked,
    ) -> tuple[np.ndarray, list[int]]:
        """s(m, e) for every candidate of every mention, flat in mention then candidate order,
        and each mention's candidate count: the weighted sum of :meth:`candidate_features`."""
        w = self.weights
        features, sizes = self.candidate_features(mentions, mention_vecs, context_vecs)
        weights = np.array([w.mention, w.context, w.prior, w.type, w.exact], dtype=np.float64)
        return features @ weights, sizes

    def candidate_features(
        self,
        mentions: Sequence[Mention],
        mention_vecs: Stacked,
        context_vecs: Stacked,
    ) -> tuple[np.ndarray, list[int]]:
        """The terms of s(m, e), one row per candidate of every mention (mention then
        candidate order), columns :data:`FEATURES`; and each mention's candidate count. One
        gather of entity vectors and one product per term for a whole batch (a row of each
        :class:`Stacked` per mention). A missing vector gives its cosine 0."""
        sizes = [len(m.candidates) for m in mentions]
        cands = np.fromiter((c for m in mentions for c in m.candidates), dtype=np.int64)
        features = np.zeros((len(cands), len(FEATURES)), dtype=np.float64)
        if not len(cands):
            return features, sizes
        owner = np.repeat(np.arange(len(mentions)), sizes)
        ev = self.vectors[cands]
        for column, stacked in enumerate((mention_vecs, context_vecs)):
            if stacked.vectors is None:
                continue
            dots = np.einsum("ij,ij->i", ev, stacked.vectors[owner], dtype=np.float64)
            features[:, column] = np.where(stacked.have[owner], dots, 0.0)
        pop = self.popularity[cands]
        group_sum = np.bincount(owner, weights=pop, minlength=len(mentions))[owner]
        features[:, 2] = np.log(pop / group_sum)
        wanted = [label_type(m.label) for m in mentions]
        features[:, 3] = np.fromiter(
            (
                0.0 if wanted[o] is None else (1.0 if self.types[c] == wanted[o] else -1.0)
                for o, c in zip(owner.tolist(), cands.tolist(), strict=True)
            ),
            dtype=np.float64,
            count=len(cands),
        )
        features[:, 4] = np.array([m.exact for m in mentions], dtype=np.float64)[owner]
        return features, sizes

    def link(
        self, mention: Mention, mention_vec: np.ndarray | None, context_vec: np.ndarray | None
    ) -> LinkedEntity:
        return self.link_many([mention], [mention_vec], [context_vec])[0]

    def link_many(
        self,
        mentions: Sequence[Mention],
        mention_vecs: Sequence[np.ndarray | None],
        context_vecs: Sequence[np.ndarray | None],
    ) -> list[LinkedEntity]:
        """Each mention to its best candidate, or NIL (see the module docstring), scored
        all at once."""
        dim = self.vectors.shape[1]
        return self.link_batch(
            mentions, Stacked.of(mention_vecs, dim), Stacked.of(context_vecs, dim)
        )

    def link_batch(
        self,
        mentions: Sequence[Mention],
        mention_vecs: Stacked,
        context_vecs: Stacked,
    ) -> list[LinkedEntity]:
        """:meth:`link_many` over vectors already stacked, a row per mention, as the entity
        stage builds them for a batch."""
        total, sizes = self._batch_scores(mentions, mention_vecs, context_vecs)
        # Each mention's best candidate (the first of a tie, as argmax), for all at once.
        best = np.zeros(len(mentions), dtype=np.int64)
        top = np.zeros(len(mentions), dtype=np.float64)
        if len(total):
            size = np.asarray(sizes, dtype=np.int64)
            owner = np.repeat(np.arange(len(mentions)), size)
            first = np.cumsum(size) - size
            some = np.flatnonzero(size > 0)
            top[some] = np.maximum.reduceat(total, first[some])
            at_top = np.flatnonzero(total == top[owner])
            owners, where = np.unique(owner[at_top], return_index=True)
            best[owners] = at_top[where] - first[owners]
        return [
            self._decide(m, int(b), float(t))
            for m, b, t in zip(mentions, best.tolist(), top.tolist(), strict=True)
        ]

    def _decide(self, mention: Mention, best: int, top: float) -> LinkedEntity:
        """The link of ``mention`` whose ``best`` candidate scored ``top``."""
        label = mention.label
        if not mention.candidates:
            return LinkedEntity(mention.text, mention.start, mention.end, label, None, None, 0.0)
        margin = top - self.weights.nil_threshold
        confidence = round(1.0 / (1.0 + math.exp(-4.0 * margin)), 4)
        entity = self.kb.entities[mention.candidates[best]]
        if not label:
            label = entity.type  # dictionary matching: the type of the linked entity
        if margin < 0:
            return LinkedEntity(
                mention.text, mention.start, mention.end, label, None, None, confidence
            )
        return LinkedEntity(
            mention.text, mention.start, mention.end, label, entity.id, entity.name, confidence
        )

    def prior_only(self, mention: Mention) -> str | None:
        """The baseline: the most popular candidate, never NIL when there is one."""
        if not mention.candidates:
            return None
        best = max(mention.candidates, key=lambda c: self.popularity[c])
        return self.kb.entities[best].id


def mention_vectors(
    token_states: np.ndarray, offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]
) -> list[np.ndarray | None]:
    """Unit mean of the token states of the pieces inside each character span (all spans of
    a document in one product)."""
    if not spans:
        return []
    piece = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    span = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    real = piece[:, 1] > piece[:, 0]  # special tokens have (0, 0)
    inside = real[None, :] & (piece[None, :, 0] < span[:, 1:2]) & (piece[None, :, 1] > span[:, 0:1])
    counts = inside.sum(axis=1)
    states = token_states[: len(piece)]
    means = (inside.astype(states.dtype) @ states) / np.maximum(counts, 1)[:, None]
    norms = np.linalg.norm(means, axis=1)
    return [means[i] / norms[i] if counts[i] and norms[i] > 0 else None for i in range(len(span))]


def batch_mention_vectors(
    token_states: Sequence[np.ndarray],
    offsets: Sequence[Sequence[tuple[int, int]]],
    spans: Sequence[Sequence[tuple[int, int]]],
) -> Stacked:
    """:func:`mention_vectors` for a batch: a row per span (documents in order, each one's
    spans in order), computed for the whole batch at once.

    The pieces inside a span are found by binary search over the batch's pieces, keyed by
    document, when every document's real pieces have offsets that never go backwards (a
    Hugging Face fast tokenizer's over one sequence); the sums are one ``reduceat`` over the
    gathered states. Otherwise it is :func:`mention_vectors` per document.
    """
    counts_per_doc = [len(doc) for doc in spans]
    total_spans = sum(counts_per_doc)
    if not total_spans or not token_states:
        return Stacked(None, np.zeros(total_spans, dtype=bool))
    docs = [d for d, n in enumerate(counts_per_doc) if n]
    sizes = [len(offsets[d]) for d in docs]
    flat = np.fromiter(
        chain.from_iterable(chain.from_iterable(offsets[d] for d in docs)),
        dtype=np.int64,
        count=2 * sum(sizes),
    ).reshape(-1, 2)
    span = np.fromiter(
        chain.from_iterable(chain.from_iterable(spans[d] for d in docs)),
        dtype=np.int64,
        count=2 * total_spans,
    ).reshape(-1, 2)
    piece_doc = np.repeat(np.arange(len(docs)), sizes)
    span_doc = np.repeat(np.arange(len(docs)), [counts_per_doc[d] for d in docs])
    real = np.flatnonzero(flat[:, 1] > flat[:, 0])  # special tokens have (0, 0)
    stride = int(max(flat.max(initial=0), span.max(initial=0))) + 1
    key_start = piece_doc[real] * stride + flat[real, 0]
    key_end = piece_doc[real] * stride + flat[real, 1]
    if np.any(np.diff(key_start) < 0) or np.any(np.diff(key_end) < 0):
        return _per_document(token_states, offsets, spans)
    # Within its document, a span holds the real pieces from the first that ends after its
    # start to the last that starts before its end.
    first = np.searchsorted(key_end, span_doc * stride + span[:, 0], side="right")
    last = np.searchsorted(key_start, span_doc * stride + span[:, 1], side="left")
    counts = np.maximum(last - first, 0)
    have = counts > 0
    if not have.any():
        return Stacked(None, have)
    dim = token_states[docs[0]].shape[1]
    out = np.zeros((total_spans, dim), dtype=np.float32)
    span_first = np.cumsum(counts) - counts  # each span's first row in `gathered`
    within = np.arange(int(counts.sum())) - np.repeat(span_first, counts)
    pieces = real[np.repeat(first, counts) + within]  # rows of `flat`, span by span
    doc_first = np.cumsum(sizes) - sizes
    owner = piece_doc[pieces]
    position = pieces - doc_first[owner]
    bounds = np.searchsorted(owner, np.arange(len(docs) + 1))
    gathered = np.concatenate(
        [
            token_states[d][position[bounds[i] : bounds[i + 1]]]
            for i, d in enumerate(docs)
            if bounds[i + 1] > bounds[i]
        ]
    )
    rows = np.flatnonzero(have)
    means = np.add.reduceat(gathered, span_first[rows], axis=0) / counts[rows][:, None]
    norms = np.linalg.norm(means, axis=1)
    out[rows] = means / np.where(norms > 0, norms, 1.0)[:, None]
    have[rows[norms <= 0]] = False
    return Stacked(out, have)


def _per_document(
    token_states: Sequence[np.ndarray],
    offsets: Sequence[Sequence[tuple[int, int]]],
    spans: Sequence[Sequence[tuple[int, int]]],
) -> Stacked:
    vectors = [
        v
        for d, doc_spans in enumerate(spans)
        if doc_spans
        for v in mention_vectors(token_states[d], offsets[d], doc_spans)
    ]
    return Stacked.of(vectors, token_states[0].shape[1])
