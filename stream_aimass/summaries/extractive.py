"""Extractive summaries from the encoder's one forward pass.

Each sentence's vector is the mean of the token states (the last hidden layer, the same
states the entity stage reads) of the pieces inside it; its relevance is its cosine with the
document embedding (centrality) plus a small bonus for coming early (news puts what matters
first, but not always). Sentences are then picked by maximal marginal relevance, so a
sentence that repeats one already picked loses to one that adds something, and the summary
keeps the picked sentences in document order.

A document of at most ``sentences`` sentences is its own summary (``passthrough``: its text
as it is, without surrounding white space). Sentences
past the encoder's token window (truncated away) have no states and are never picked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream_aimass.summaries.sentences import split_sentences

METHOD = "extractive"


@dataclass(frozen=True, slots=True)
class Picked:
    """One sentence of a summary: where it is in the document and how it scored."""

    index: int  # the sentence's place in the document, from 0
    start: int
    end: int
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "start": self.start, "end": self.end,
                "score": round(self.score, 4)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Summary:
    """The summary of one document (``sentences`` on the stored text, in document order)."""

    text: str  # the picked sentences joined by a space (passthrough: the whole text)
    sentences: tuple[Picked, ...]
    sentences_total: int
    passthrough: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": METHOD,
            "text": self.text,
            "sentences": [p.to_dict() for p in self.sentences],
            "sentences_total": self.sentences_total,
            "passthrough": self.passthrough,
        }

    def moved(self, text: str, span: Any) -> Summary:
        """This summary on a rewritten ``text`` (the PII stage's), ``span(start, end)`` giving
        each sentence's new span."""
        picked = []
        for p in self.sentences:
            s, e = span(p.start, p.end)
            picked.append(Picked(p.index, s, e, p.score))
        if self.passthrough:  # the whole text, as stored
            return Summary(text.strip(), tuple(picked), self.sentences_total, True)
        joined = " ".join(text[p.start : p.end] for p in picked)
        return Summary(joined, tuple(picked), self.sentences_total, False)


def sentence_vectors(
    spans: Sequence[tuple[int, int]],
    offsets: Sequence[tuple[int, int]],
    states: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per sentence, the L2-normalised mean state of its pieces, and whether it had any.

    ``offsets``: each piece's characters (special tokens are ``(0, 0)`` and count for no
    sentence); ``states``: (pieces, dim), row for row.
    """
    n = len(spans)
    dim = states.shape[1]
    if n == 0:
        return np.zeros((0, dim), np.float32), np.zeros(0, bool)
    starts = np.fromiter((s for s, _ in spans), np.int64, n)
    ends = np.fromiter((e for _, e in spans), np.int64, n)
    count = min(len(offsets), len(states))
    piece = np.asarray(offsets[:count], dtype=np.int64).reshape(-1, 2)
    real = piece[:, 1] > piece[:, 0]
    owner = np.searchsorted(starts, piece[:, 0], side="right") - 1
    inside = real & (owner >= 0)
    inside[inside] &= piece[inside, 0] < ends[owner[inside]]
    rows = np.flatnonzero(inside)
    sums = np.zeros((n, dim), np.float32)
    if len(rows):
        # Pieces come in text order, so each sentence's pieces are one run of ``rows``.
        owners = owner[rows]
        first = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
        sums[owners[first]] = np.add.reduceat(states[rows], first, axis=0)
    covered = np.zeros(n, bool)
    covered[owner[rows]] = True
    norms = np.linalg.norm(sums, axis=1)
    vectors = sums / np.maximum(norms, 1e-12)[:, None]
    return vectors, covered


def mmr(
    relevance: np.ndarray, vectors: np.ndarray, candidates: np.ndarray, k: int, weight: float
) -> list[int]:
    """Pick ``k`` of ``candidates`` by maximal marginal relevance: each time the one with
    the most ``weight`` * relevance - (1 - weight) * (its highest cosine with those picked)."""
    picked: list[int] = []
    open_ = np.zeros(len(relevance), bool)
    open_[candidates] = True
    redundancy = np.zeros(len(relevance), np.float32)
    while open_.any() and len(picked) < k:
        score = weight * relevance - (1.0 - weight) * redundancy
        best = int(np.argmax(np.where(open_, score, -np.inf)))
        picked.append(best)
        open_[best] = False
        similarity = vectors @ vectors[best]
        redundancy = similarity if len(picked) == 1 else np.maximum(redundancy, similarity)
    return picked


class ExtractiveSummarizer:
    """Top sentences by centrality and position, redundancy removed (see the module)."""

    def __init__(
        self, sentences: int = 3, mmr_weight: float = 0.65, position_weight: float = 0.05
    ) -> None:
        if sentences < 1:
            raise ValueError("a summary needs at least one sentence")
        self.sentences = sentences
        self.mmr_weight = mmr_weight
        self.position_weight = position_weight

    def describe(self) -> dict[str, Any]:
        return {"method": METHOD, "sentences": self.sentences, "mmr_weight": self.mmr_weight,
                "position_weight": self.position_weight}  # fmt: skip

    def relevance(self, vectors: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        """Centrality (cosine with the document embedding) plus the position bonus, which
        falls from ``position_weight`` for the first sentence to 0 for the last."""
        n = len(vectors)
        centrality = vectors @ embedding.astype(np.float32)
        position = 1.0 - np.arange(n, dtype=np.float32) / max(1, n - 1) if n > 1 else np.ones(1)
        return np.asarray(centrality + self.position_weight * position, np.float32)

    def summarize(
        self,
        text: str,
        offsets: Sequence[tuple[int, int]],
        states: np.ndarray,
        embedding: np.ndarray,
    ) -> Summary:
        """The summary of ``text`` from its pieces' ``offsets`` and token ``states`` and
        its pooled ``embedding``, all from the one forward pass."""
        spans = split_sentences(text)
        total = len(spans)
        if total <= self.sentences:
            whole = tuple(Picked(i, s, e, 1.0) for i, (s, e) in enumerate(spans))
            return Summary(text.strip(), whole, total, True)  # passes through as it is
        vectors, covered = sentence_vectors(spans, offsets, states)
        relevance = self.relevance(vectors, embedding)
        chosen = sorted(
            mmr(relevance, vectors, np.flatnonzero(covered), self.sentences, self.mmr_weight)
        )
        picked = tuple(Picked(i, spans[i][0], spans[i][1], float(relevance[i])) for i in chosen)
        joined = " ".join(text[p.start : p.end] for p in picked)
        return Summary(joined, picked, total, False)


def lead(text: str, sentences: int = 3) -> str:
    """The lead baseline: the first ``sentences`` sentences."""
    return " ".join(text[s:e] for s, e in split_sentences(text)[:sentences])
