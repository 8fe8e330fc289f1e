"""Sentence boundaries with character offsets, for extractive summaries.

A rule-based splitter (no model, no download): a sentence ends at ``.``, ``!`` or ``?``
(closing quotes and brackets after it belong to it) followed by white space and the start of
a new sentence. A full stop after a known
abbreviation (``Dr.``, ``U.S.``, ``e.g.``), a single initial (``J. Smith``) or inside a number
(``3.5``) ends nothing. A blank line always ends one; a single line break ends one when
the next line starts like a sentence (otherwise it is a wrapped line).
"""

from __future__ import annotations

import re

# Abbreviations a full stop follows without ending the sentence (compared lower-cased,
# without the final full stop).
_ABBREVIATED = """mr mrs ms dr prof sr jr st mt ft gen col lt sgt capt cmdr gov sen rep rev hon pres
    vs etc e.g i.e cf al inc ltd co corp bros no nos vol pp fig est approx dept univ
    jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun
    u.s u.k u.n e.u a.m p.m d.c ph.d b.a m.a"""
ABBREVIATIONS = frozenset(_ABBREVIATED.split())

# A candidate end: terminal punctuation, closers, then white space; or a line break.
_END = re.compile(r"""([.!?]+)(["'”’)\]]*)(\s+)|([ \t]*\n\s*)""")
# What may start a sentence: an upper-case letter, a digit, an opening quote or bracket.
_STARTS = re.compile(r"""["'“‘(\[]*[A-Z0-9À-ÖØ-Þ]""")
_BLANK_LINE = re.compile(r"\n[ \t]*\n\s*")
_WORD_BEFORE = re.compile(r"([\w.]+)$")


def _ends_sentence(text: str, stop: int, punct: str) -> bool:
    """Whether the punctuation ``punct`` ending at ``stop`` closes a sentence."""
    if punct != ".":
        return True  # ! ? and runs like ?! or ...
    word = _WORD_BEFORE.search(text, max(0, stop - 24), stop - 1)
    if word is None:
        return True
    token = word.group(1).lower()
    if token in ABBREVIATIONS:
        return False
    return not (len(token) == 1 and token.isalpha())  # an initial: "J. Smith"


def _spans_of_block(text: str, start: int, end: int, out: list[tuple[int, int]]) -> None:
    at = start
    for m in _END.finditer(text, start, end):
        line_break = m.group(1) is None
        punct_end = m.start(4) if line_break else m.end(2)
        next_start = m.end(4) if line_break else m.end(3)
        if next_start >= end or not _STARTS.match(text, next_start):
            continue
        if not line_break and not _ends_sentence(text, m.end(1), m.group(1)):
            continue
        while punct_end > at and text[punct_end - 1].isspace():
            punct_end -= 1
        out.append((at, punct_end))
        at = next_start
    tail = text[at:end].rstrip()
    if tail:
        out.append((at, at + len(tail)))


def split_sentences(text: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` character spans of ``text``'s sentences, in order, end exclusive,
    without surrounding white space; none for blank text."""
    out: list[tuple[int, int]] = []
    at = 0
    for brk in _BLANK_LINE.finditer(text):
        block_end = brk.start()
        _block(text, at, block_end, out)
        at = brk.end()
    _block(text, at, len(text), out)
    return out


def _block(text: str, start: int, end: int, out: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    if start < end:
        _spans_of_block(text, start, end, out)
