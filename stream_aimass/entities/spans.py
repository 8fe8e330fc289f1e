"""Entity spans from BIO tags: over units (words or word pieces) and over characters of a text.

Decoding is lenient, like conlleval: an ``I-TYPE`` that does not continue an entity of the
same type starts a new one, so a model's broken tag sequences still give whole spans and
IOB1 tags decode the same as BIO2. The same functions serve inference (spans written on a
document) and evaluation (spans compared with gold), so both see identical entities.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

__all__ = ["bio_spans", "char_spans", "word_labels_to_piece_labels"]

_OUTSIDE = "O"


def _split_tag(tag: str, position: int) -> tuple[str, str]:
    """(prefix, type) of a tag: ("O", "") for ``O``, ("B", "PER") for ``B-PER``."""
    if tag == _OUTSIDE:
        return _OUTSIDE, ""
    if len(tag) > 2 and tag[1] == "-" and tag[0] in "BI":
        return tag[0], tag[2:]
    raise ValueError(f"tag {tag!r} at position {position} is not O, B-TYPE or I-TYPE")


def bio_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """``(start, end, type)`` spans, ``end`` exclusive, of the entities in BIO2 or IOB1 tags.

    ``B-TYPE`` always starts a span; ``I-TYPE`` continues the open span of the same type and
    otherwise (at the start, after ``O`` or after another type) starts one. Raises ValueError
    for a tag that is not ``O``, ``B-TYPE`` or ``I-TYPE``.
    """
    spans: list[tuple[int, int, str]] = []
    start = -1
    current = ""
    for position, tag in enumerate(tags):
        prefix, kind = _split_tag(tag, position)
        if prefix == "I" and kind == current:
            continue
        if current:
            spans.append((start, position, current))
        start, current = (position, kind) if prefix != _OUTSIDE else (-1, "")
    if current:
        spans.append((start, len(tags), current))
    return spans


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _check_offsets(text: str, offsets: Sequence[tuple[int, int]]) -> None:
    for i, (start, end) in enumerate(offsets):
        if not 0 <= start <= end <= len(text):
            raise ValueError(
                f"offset {i} ({start}, {end}) is not a range in the text of {len(text)} characters"
            )


def _words(
    offsets: Sequence[tuple[int, int]], labels: Sequence[str], word_ids: Sequence[int | None]
) -> tuple[list[tuple[int, int] | None], list[str]]:
    """Character range (None when it has none) and tag of each run of pieces of one word.

    A piece without a word (a special token) is kept as a unit tagged ``O`` without range, so
    that an entity never runs across a separator between two segments.
    """
    ranges: list[tuple[int, int] | None] = []
    tags: list[str] = []
    previous: int | None = None
    for (start, end), label, word in zip(offsets, labels, word_ids, strict=True):
        piece = (start, end) if start < end else None
        if word is None:
            ranges.append(None)
            tags.append(_OUTSIDE)
        elif word != previous:
            # the tag of a word is the tag of its first piece
            ranges.append(piece)
            tags.append(label)
        elif piece is not None:
            first = ranges[-1]
            ranges[-1] = piece if first is None else (min(first[0], start), max(first[1], end))
        previous = word
    return ranges, tags


def char_spans(
    text: str,
    offsets: Sequence[tuple[int, int]],
    labels: Sequence[str],
    *,
    word_ids: Sequence[int | None] | None = None,
) -> list[tuple[int, int, str]]:
    """``(start, end, type)`` character spans of ``text`` from one tag per word piece.

    ``offsets`` are the tokenizer's (start, end) character offsets of each piece in ``text``;
    empty ones, such as the (0, 0) of special tokens, mark pieces that are skipped (and end
    an open entity). ``labels`` is the predicted tag of each piece. With ``word_ids`` (the
    tokenizer's ``word_ids()``; pieces of one word share an id, special tokens have None) a
    word's tag is its first piece's tag and spans always cover whole words; without them the
    pieces are decoded as they are. Spans are trimmed of surrounding whitespace, and come back
    sorted and non-overlapping.
    """
    if len(offsets) != len(labels):
        raise ValueError(f"{len(offsets)} offsets but {len(labels)} labels")
    if word_ids is not None and len(word_ids) != len(labels):
        raise ValueError(f"{len(word_ids)} word ids but {len(labels)} labels")
    _check_offsets(text, offsets)

    ranges: list[tuple[int, int] | None]
    tags: list[str]
    if word_ids is None:
        ranges = [(start, end) if start < end else None for start, end in offsets]
        tags = list(labels)
    else:
        ranges, tags = _words(offsets, labels, word_ids)
    tags = [tag if r is not None else _OUTSIDE for r, tag in zip(ranges, tags, strict=True)]

    found: list[tuple[int, int, str]] = []
    for first, last, kind in bio_spans(tags):
        # every unit of a decoded span has a range: units without one are tagged O above
        covered = [r for r in ranges[first:last] if r is not None]
        start, end = _trimmed(text, min(r[0] for r in covered), max(r[1] for r in covered))
        if start < end:
            found.append((start, end, kind))

    spans: list[tuple[int, int, str]] = []
    for span in sorted(found):
        # offsets of odd tokenizers may overlap; the earlier span wins
        if not spans or span[0] >= spans[-1][1]:
            spans.append(span)
    return spans


def word_labels_to_piece_labels(
    word_tags: Sequence[str],
    word_ids: Sequence[int | None],
    label_all_pieces: bool = False,
) -> list[str | None]:
    """The training target of each word piece from the tags of the words.

    The first piece of a word gets the word's tag; special tokens (word id None) get None, and
    so do later pieces of a word (None is ignored by the loss), unless ``label_all_pieces``:
    then a later piece of an entity word gets ``I-TYPE`` and one of an ``O`` word gets ``O``.
    """
    pieces: list[str | None] = []
    previous: int | None = None
    for position, word in enumerate(word_ids):
        if word is None:
            pieces.append(None)
        elif not 0 <= word < len(word_tags):
            raise ValueError(
                f"word id {word} of piece {position} is out of range for {len(word_tags)} words"
            )
        elif word != previous:
            pieces.append(word_tags[word])
        elif not label_all_pieces:
            pieces.append(None)
        else:
            prefix, kind = _split_tag(word_tags[word], word)
            pieces.append(_OUTSIDE if prefix == _OUTSIDE else f"I-{kind}")
        previous = word
    return pieces


# Word shape: the casing signal an uncased encoder (MiniLM) never sees, given to NER heads
# next to each piece's hidden state: title case, all capitals, lower case, has a digit.
SHAPE_FEATURES = 4


def word_shape(word: str) -> list[float]:
    return list(_shape(word))


@lru_cache(maxsize=1 << 16)
def _shape(word: str) -> tuple[float, float, float, float]:
    """Cached: a document's words repeat across documents, and this runs per piece."""
    letters = [c for c in word if c.isalpha()]
    upper = bool(letters) and all(c.isupper() for c in letters) and len(letters) > 1
    title = bool(letters) and letters[0].isupper() and not upper
    lower = bool(letters) and all(c.islower() for c in letters)
    digit = any(c.isdigit() for c in word)
    return (float(title), float(upper), float(lower), float(digit))


def piece_shapes(words: Sequence[str], word_ids: Sequence[int | None]) -> np.ndarray:
    """(pieces, SHAPE_FEATURES): each piece gets its word's shape; special pieces zeros."""
    table = np.zeros((len(words) + 1, SHAPE_FEATURES), dtype=np.float32)  # last row: none
    if words:
        table[:-1] = [_shape(w) for w in words]
    index = [w if w is not None and 0 <= w < len(words) else len(words) for w in word_ids]
    return table[index] if index else np.zeros((0, SHAPE_FEATURES), dtype=np.float32)


def text_piece_shapes(
    text: str, offsets: Sequence[tuple[int, int]], word_ids: Sequence[int | None]
) -> np.ndarray:
    """:func:`piece_shapes` for raw text: a word's characters are its pieces' offsets."""
    spans: dict[int, list[int]] = {}
    for (start, end), word in zip(offsets, word_ids, strict=True):
        if word is None or end <= start:
            continue
        span = spans.setdefault(word, [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
    words = {w: text[a:b] for w, (a, b) in spans.items()}
    count = max(words, default=-1) + 1
    return piece_shapes([words.get(w, "") for w in range(count)], word_ids)
