"""BIO tags from a token tagger's scores: the best sequence that is valid BIO.

Per-word argmax can give sequences no annotator would write (``O I-PER`` or ``B-ORG
I-LOC``); the lenient span decoding (:mod:`stream_aimass.entities.spans`) still turns them
into spans, but often the wrong ones. Constrained decoding picks, over the words of a
sentence, the sequence with the highest total log-probability among those where ``I-X``
only follows ``B-X`` or ``I-X`` (Viterbi over the allowed transitions). When the argmax
sequence is already valid it is that optimum, so the search runs only for the sequences
that break a rule: on most documents the cost is one vectorised check.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

_OUTSIDE = "O"


@lru_cache(maxsize=64)
def _rules(labels: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(may start, may follow): ``start[j]`` label j may open a sentence; ``follow[i, j]``
    label j may come right after label i."""
    n = len(labels)
    inside = [label[2:] if label.startswith("I-") else None for label in labels]
    kind = [label[2:] if label[:2] in ("B-", "I-") else None for label in labels]
    start = np.array([inside[j] is None for j in range(n)])
    follow = np.ones((n, n), dtype=bool)
    for j in range(n):
        if inside[j] is not None:
            follow[:, j] = [kind[i] == inside[j] for i in range(n)]
    return start, follow


def _log_softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    out: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return out


def best_valid_sequence(scores: np.ndarray, labels: Sequence[str]) -> list[int]:
    """Label indices, one per row of ``scores`` (n, labels): the valid BIO sequence with
    the highest sum of log-softmax scores."""
    if len(scores) == 0:
        return []
    start, follow = _rules(tuple(labels))
    best = np.argmax(scores, axis=1)
    if start[best[0]] and bool(np.all(follow[best[:-1], best[1:]])):
        return [int(x) for x in best]
    logp = _log_softmax(scores.astype(np.float64, copy=False))
    blocked = np.where(follow, 0.0, -np.inf)
    total = np.where(start, logp[0], -np.inf)
    back = np.zeros((len(scores), len(labels)), dtype=np.int64)
    for row in range(1, len(scores)):
        candidates = total[:, None] + blocked  # (from, to)
        back[row] = np.argmax(candidates, axis=0)
        total = candidates[back[row], np.arange(len(labels))] + logp[row]
    path = [int(np.argmax(total))]
    for row in range(len(scores) - 1, 0, -1):
        path.append(int(back[row, path[-1]]))
    return path[::-1]


def word_tags(
    logits: np.ndarray, firsts: Sequence[int], labels: Sequence[str], constrained: bool = True
) -> list[str]:
    """Tags per word from piece logits, read at each word's first piece (``firsts``; a
    word cut off by truncation, -1 or past the end, is ``O``)."""
    kept = [w for w, p in enumerate(firsts) if 0 <= p < len(logits)]
    tags = [_OUTSIDE] * len(firsts)
    rows = logits[[firsts[w] for w in kept]] if kept else np.zeros((0, len(labels)))
    picked = best_valid_sequence(rows, labels) if constrained else np.argmax(rows, axis=1)
    for w, index in zip(kept, picked, strict=True):
        tags[w] = labels[int(index)]
    return tags


def piece_tags(
    logits: np.ndarray,
    labels: Sequence[str],
    word_ids: Sequence[int | None],
    constrained: bool = True,
) -> list[str]:
    """One tag per piece for :func:`~stream_aimass.entities.spans.char_spans`: a word's
    decoded tag on its first piece, ``O`` on the rest (read only from first pieces)."""
    firsts: list[int] = []
    seen: set[int] = set()
    for piece, word in enumerate(word_ids):
        if word is not None and word not in seen:
            seen.add(word)
            firsts.append(piece)
    out = [_OUTSIDE] * len(word_ids)
    for piece, tag in zip(firsts, word_tags(logits, firsts, labels, constrained), strict=True):
        out[piece] = tag
    return out
