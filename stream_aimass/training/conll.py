"""Named-entity data in CoNLL format: read sentences of tagged tokens and normalise their tags.

A CoNLL file holds one token per line, the token in the first column and its tag in the
last; a blank line or a ``-DOCSTART-`` line ends a sentence. Columns are separated by tabs
when a line has a tab (a token never contains one) and by whitespace otherwise, so both
``token tag`` and ``token<TAB>tag`` files, and four-column CoNLL-2003 files, are read.
Tags are ``O``, ``B-TYPE`` or ``I-TYPE`` in IOB1 or BIO2; IOB1 is turned into BIO2 with
:func:`to_bio2`. Every problem a user can fix in the file is raised as
:class:`~stream_aimass.training.data.DataError` with the file and the line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stream_aimass.training.data import DataError

__all__ = [
    "DOCSTART",
    "Sentence",
    "detect_scheme",
    "entity_types",
    "read_conll",
    "to_bio2",
]

DOCSTART = "-DOCSTART-"
"""First column of a document-boundary line; such a line ends a sentence and is skipped."""

_OUTSIDE = "O"
_PREFIXES = ("B-", "I-")


@dataclass(frozen=True)
class Sentence:
    """The tokens of one sentence, one tag each; ``line`` is the 1-based line of its first token;
    ``document`` the index of its ``-DOCSTART-`` document in the file (-1: none marked)."""

    tokens: list[str]
    tags: list[str]
    line: int
    document: int = -1

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.tags):
            raise ValueError(f"{len(self.tokens)} tokens but {len(self.tags)} tags")

    def __len__(self) -> int:
        return len(self.tokens)


def _tag_problem(tag: str) -> str | None:
    """Why ``tag`` is not ``O``, ``B-TYPE`` or ``I-TYPE``, or None when it is."""
    if tag == _OUTSIDE or (tag.startswith(_PREFIXES) and len(tag) > 2):
        return None
    if tag in _PREFIXES:
        return f"tag {tag!r} has no entity type; expected e.g. {tag}PER"
    if len(tag) > 2 and tag[1] == "-" and tag[0] in "ESLU":
        return (
            f"tag {tag!r} is IOBES/BILOU; only IOB1 and BIO2 tags (O, B-TYPE, I-TYPE) are supported"
        )
    return f"tag {tag!r} is not O, B-TYPE or I-TYPE; only IOB1 and BIO2 tags are supported"


def _columns(line: str) -> list[str]:
    # a token never contains a tab, so a line with one is tab-separated and a token may hold
    # spaces; otherwise any whitespace separates columns
    if "\t" in line:
        return [column.strip() for column in line.strip().split("\t")]
    return line.split()


def read_conll(path: str | os.PathLike[str]) -> list[Sentence]:
    """Read a UTF-8 CoNLL file (a BOM, CRLF line ends and a missing final newline are fine).

    The token is the first column and the tag the last. Blank lines (one or several) and
    ``-DOCSTART-`` lines end a sentence. Tags are kept as written; see :func:`detect_scheme`
    and :func:`to_bio2`. Raises :class:`DataError` for a missing file, a file that is not
    UTF-8, a line with a single column, a tag that is not ``O``/``B-TYPE``/``I-TYPE`` and a
    file without sentences.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        what = "is a directory, not a CoNLL file" if path.is_dir() else "does not exist"
        raise DataError(f"{source} {what}")
    try:
        content = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{source} is not UTF-8 text ({exc.reason}); save it as UTF-8") from exc

    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    first_line = 0

    document = -1

    def end_sentence() -> None:
        if tokens:
            sentences.append(Sentence(list(tokens), list(tags), first_line, document))
            tokens.clear()
            tags.clear()

    # split on "\n" only: str.splitlines would also break at characters such as U+2028 or
    # U+0085 that can occur inside tokens of web text
    for number, raw in enumerate(content.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if not line.strip():
            end_sentence()
            continue
        columns = _columns(line)
        if columns[0] == DOCSTART:
            end_sentence()
            document += 1
            continue
        if len(columns) < 2 or not columns[0] or not columns[-1]:
            raise DataError(
                f"{source}, line {number}: expected a token and a tag separated by a space "
                f"or a tab, got {line.strip()!r}"
            )
        tag = columns[-1]
        problem = _tag_problem(tag)
        if problem is not None:
            raise DataError(f"{source}, line {number}: {problem}")
        if not tokens:
            first_line = number
        tokens.append(columns[0])
        tags.append(tag)
    end_sentence()

    if not sentences:
        raise DataError(
            f"{source} has no sentences; expected one 'token tag' line per token and a blank "
            "line after each sentence"
        )
    return sentences


def _type(tag: str) -> str:
    return tag[2:]


def _check_tags(tags: Iterable[str]) -> None:
    for tag in tags:
        problem = _tag_problem(tag)
        if problem is not None:
            raise ValueError(problem)


def _starts_entity_with_inside(previous: str, tag: str) -> bool:
    """True when ``tag`` is an ``I-`` tag that begins an entity (the IOB1 way)."""
    return tag.startswith("I-") and (previous == _OUTSIDE or _type(previous) != _type(tag))


def detect_scheme(sentences: Iterable[Sentence]) -> Literal["IOB1", "BIO2"]:
    """``"IOB1"`` when some entity starts with ``I-`` (at sentence start, after ``O`` or after
    another type), else ``"BIO2"`` (also for data without entities)."""
    for sentence in sentences:
        previous = _OUTSIDE
        for tag in sentence.tags:
            if _starts_entity_with_inside(previous, tag):
                return "IOB1"
            previous = tag
    return "BIO2"


def to_bio2(tags: Sequence[str]) -> list[str]:
    """Tags with every entity starting with ``B-``: an ``I-TYPE`` that begins an entity becomes
    ``B-TYPE``. BIO2 tags come back unchanged. Raises ValueError for a tag that is not
    ``O``/``B-TYPE``/``I-TYPE``."""
    _check_tags(tags)
    converted: list[str] = []
    previous = _OUTSIDE
    for tag in tags:
        converted.append("B-" + _type(tag) if _starts_entity_with_inside(previous, tag) else tag)
        previous = tag
    return converted


def entity_types(sentences: Iterable[Sentence]) -> list[str]:
    """Every entity type that occurs in the tags, sorted (``B-PER`` and ``I-PER`` give ``PER``)."""
    return sorted({_type(tag) for s in sentences for tag in s.tags if tag != _OUTSIDE})
