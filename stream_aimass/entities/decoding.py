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
    return best_valid_sequences([scores], labels)[0]


def best_valid_sequences(rows: Sequence[np.ndarray], labels: Sequence[str]) -> list[list[int]]:
    """:func:`best_valid_sequence` of each score matrix; the searches of all those whose
    argmax breaks a rule run together, one step per position over the whole batch."""
    start, follow = _rules(tuple(labels))
    out: list[list[int]] = []
    todo: list[int] = []
    for i, scores in enumerate(rows):
        best = np.argmax(scores, axis=1) if len(scores) else np.zeros(0, dtype=np.int64)
        if not len(best) or (start[best[0]] and bool(np.all(follow[best[:-1], best[1:]]))):
            out.append([int(x) for x in best])
        else:
            out.append([])
            todo.append(i)
    if not todo:
        return out
    n = len(labels)
    lengths = np.array([len(rows[i]) for i in todo])
    width = int(lengths.max())
    logp = np.zeros((len(todo), width, n))
    for k, i in enumerate(todo):
        logp[k, : lengths[k]] = _log_softmax(rows[i].astype(np.float64, copy=False))
    blocked = np.where(follow, 0.0, -np.inf)
    total = np.where(start, logp[:, 0], -np.inf)  # (docs, labels)
    # Back pointers; past a document's end they point at the same label, so that every
    # document is traced back from the last position together.
    back = np.broadcast_to(np.arange(n), (len(todo), width, n)).copy()
    for t in range(1, width):
        candidates = total[:, :, None] + blocked  # (docs, from, to)
        came = np.argmax(candidates, axis=1)
        reached = np.take_along_axis(candidates, came[:, None, :], axis=1)[:, 0] + logp[:, t]
        live = (t < lengths)[:, None]
        total = np.where(live, reached, total)
        back[:, t] = np.where(live, came, back[:, t])
    current = np.argmax(total, axis=1)
    paths = np.zeros((len(todo), width), dtype=np.int64)
    docs = np.arange(len(todo))
    for t in range(width - 1, -1, -1):
        paths[:, t] = current
        current = back[docs, t, current]
    for k, i in enumerate(todo):
        out[i] = [int(x) for x in paths[k, : lengths[k]]]
    return out


def word_tags(
    logits: np.ndarray, firsts: Sequence[int], labels: Sequence[str], constrained: bool = True
) -> list[str]:
    """Tags per word from piece logits, read at each word's first piece (``firsts``; a
    word cut off by truncation, -1 or past the end, is ``O``)."""
    return word_tags_batch([logits], [firsts], labels, constrained)[0]


def word_tags_batch(
    logits: Sequence[np.ndarray],
    firsts: Sequence[Sequence[int]],
    labels: Sequence[str],
    constrained: bool = True,
) -> list[list[str]]:
    """:func:`word_tags` of each document of a batch (the searches run together)."""
    kept = [
        [w for w, p in enumerate(f) if 0 <= p < len(lg)]
        for lg, f in zip(logits, firsts, strict=True)
    ]
    rows = [
        lg[[f[w] for w in k]] if k else np.zeros((0, len(labels)))
        for lg, f, k in zip(logits, firsts, kept, strict=True)
    ]
    picked = (
        best_valid_sequences(rows, labels)
        if constrained
        else [np.argmax(r, axis=1).tolist() for r in rows]
    )
    out = []
    for f, k, p in zip(firsts, kept, picked, strict=True):
        tags = [_OUTSIDE] * len(f)
        for w, index in zip(k, p, strict=True):
            tags[w] = labels[int(index)]
        out.append(tags)
    return out


def first_pieces(word_ids: Sequence[int | None]) -> list[int]:
    """The first piece of each word, in word order of appearance."""
    firsts: list[int] = []
    seen: set[int] = set()
    for piece, word in enumerate(word_ids):
        if word is not None and word not in seen:
            seen.add(word)
            firsts.append(piece)
    return firsts


def piece_tags(
    logits: np.ndarray,
    labels: Sequence[str],
    word_ids: Sequence[int | None],
    constrained: bool = True,
) -> list[str]:
    """One tag per piece for :func:`~stream_aimass.entities.spans.char_spans`: a word's
    decoded tag on its first piece, ``O`` on the rest (read only from first pieces)."""
    return piece_tags_batch([logits], labels, [word_ids], constrained)[0]


def piece_tags_batch(
    logits: Sequence[np.ndarray],
    labels: Sequence[str],
    word_ids: Sequence[Sequence[int | None]],
    constrained: bool = True,
) -> list[list[str]]:
    """:func:`piece_tags` of each document of a batch."""
    firsts = [first_pieces(ids) for ids in word_ids]
    out = []
    for ids, f, tags in zip(word_ids, firsts, word_tags_batch(logits, firsts, labels, constrained),
                            strict=True):  # fmt: skip
        row = [_OUTSIDE] * len(ids)
        for piece, tag in zip(f, tags, strict=True):
            row[piece] = tag
        out.append(row)
    return out
