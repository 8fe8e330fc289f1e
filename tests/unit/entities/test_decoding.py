"""Constrained BIO decoding: always valid, and the best valid sequence (checked by brute force)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from stream_aimass.entities.decoding import best_valid_sequence, piece_tags, word_tags

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _valid(tags: list[str]) -> bool:
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


def _log_softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    out: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_the_decoded_sequence_is_the_best_valid_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 6))
    scores = rng.normal(size=(n, len(LABELS))) * 3
    scores[:, 2] += 2.0  # I-PER often wins the argmax: many invalid argmax sequences
    decoded = best_valid_sequence(scores, LABELS)
    assert _valid([LABELS[i] for i in decoded])
    logp = _log_softmax(scores)
    best = max(
        (seq for seq in itertools.product(range(len(LABELS)), repeat=n)
         if _valid([LABELS[i] for i in seq])),
        key=lambda seq: sum(logp[row, j] for row, j in enumerate(seq)),
    )  # fmt: skip
    total = sum(logp[row, j] for row, j in enumerate(decoded))
    assert total == pytest.approx(sum(logp[row, j] for row, j in enumerate(best)))


def test_a_valid_argmax_is_kept_and_a_broken_one_repaired() -> None:
    one_hot = np.eye(len(LABELS))
    valid = one_hot[[1, 2, 0, 3, 4]] * 5
    assert best_valid_sequence(valid, LABELS) == [1, 2, 0, 3, 4]
    # O I-PER I-PER: the argmax is broken; B-PER is the runner-up of the first I-PER
    broken = np.array([[5, 0, 0, 0, 0], [0, 3, 4, 0, 0], [0, 0, 5, 0, 0]], dtype=float)
    assert [LABELS[i] for i in best_valid_sequence(broken, LABELS)] == ["O", "B-PER", "I-PER"]
    assert best_valid_sequence(np.zeros((0, len(LABELS))), LABELS) == []


def test_word_and_piece_tags_read_first_pieces() -> None:
    logits = np.eye(len(LABELS))[[0, 2, 2, 4, 0]] * 5  # [CLS] I-PER (I-PER) I-LOC [SEP]
    logits[1, 1] = logits[3, 3] = 4.0  # each B- the runner-up of its I-
    word_ids = [None, 0, 0, 1, None]
    assert piece_tags(logits, LABELS, word_ids) == ["O", "B-PER", "O", "B-LOC", "O"]
    assert piece_tags(logits, LABELS, word_ids, constrained=False) == [
        "O", "I-PER", "O", "I-LOC", "O",
    ]  # fmt: skip
    assert word_tags(logits, [1, 3, -1, 9], LABELS) == ["B-PER", "B-LOC", "O", "O"]


def test_a_batch_decodes_as_each_document_alone() -> None:
    from stream_aimass.entities.decoding import best_valid_sequences

    rng = np.random.default_rng(7)
    rows = [rng.normal(size=(int(n), len(LABELS))) * 3 for n in rng.integers(0, 40, size=25)]
    for r in rows:
        if len(r):
            r[:, 2] += 2.0  # many broken argmax sequences, of many lengths, and empty ones
    batch = best_valid_sequences(rows, LABELS)
    assert batch == [best_valid_sequences([r], LABELS)[0] for r in rows]
    for r, seq in zip(rows, batch, strict=True):
        assert len(seq) == len(r) and _valid([LABELS[i] for i in seq])
