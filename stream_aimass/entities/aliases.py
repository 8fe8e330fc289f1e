"""Candidate generation: every KB alias, normalised, matched against text by tokens.

Normalisation folds case and strips diacritics (``Zürich`` = ``zurich``), so it works on
word tokens, which keeps exact character offsets into the original text. Multi-token
aliases (``New York City``) are looked up as token tuples: a scan walks forward from each
token only while the tokens so far start some alias (one lookup for most tokens), and the
longest alias wins.

Case still matters where it carries meaning: an alias written in capitals in the KB
(``US``, ``WHO``) only matches that exact case, and a capitalised alias (``Apple``) does not
match an all-lowercase word (``apple``), which only the KB's lowercase aliases (the fruit)
match.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stream_aimass.entities.kb import KnowledgeBase

# Words (with inner dots: "U.S"), a possessive/clitic ("'s") on its own, punctuation.
_TOKEN = re.compile(r"\w+(?:\.\w+)*|['’]\w+|[^\w\s]", re.UNICODE)


def normalize_token(token: str) -> str:
    """Case-folded, diacritics stripped, curly apostrophes straightened."""
    if token.isascii():  # nothing to decompose or straighten; casefold is lower() here
        return token.lower()
    decomposed = unicodedata.normalize("NFKD", token.replace("’", "'"))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.casefold()


def tokens(text: str) -> list[tuple[int, int, str]]:
    """(start, end, normalised token) for each word or punctuation mark of ``text``."""
    return [(m.start(), m.end(), normalize_token(m.group())) for m in _TOKEN.finditer(text)]


def normalize(text: str) -> str:
    """The normalised form of a whole alias or mention: tokens joined by single spaces."""
    return " ".join(t for _, _, t in tokens(text))


def _case_ok(surface: str, form: str) -> bool:
    """Whether ``surface`` (as written in the text) may be the KB alias ``form``."""
    letters = [c for c in form if c.isalpha()]
    if letters and all(c.isupper() for c in letters) and len(letters) <= 5:
        return surface == form  # acronyms: exact case only ("US" is not "us")
    # "apple" is not "Apple"
    return not (surface == surface.lower() and form != form.lower())


# (alias, surface as written) -> entities whose case fits; cleared when this full.
_FITS_REMEMBERED = 100_000
# A NER mention as written -> its candidates; cleared when this full.
_MENTIONS_REMEMBERED = 100_000


def _token_end(token: str) -> str:
    """A lookahead true where ``token``, matched at a token's start, is that whole token."""
    if re.fullmatch(r"\w+(?:\.\w+)*", token):
        return r"(?!\w|\.\w)"  # a word goes on over letters and inner dots ("u.s.a")
    if token[0] in "'’":
        return r"(?!\w)"  # "'s" goes on over letters; a lone "'" before one is "'s"
    return ""  # one punctuation mark


def _trie(words: list[str]) -> str:
    """One regex alternative per character of a prefix tree of ``words``: the search for
    any of them tries a few characters per position, not every word."""
    tree: dict[str, Any] = {}
    for word in words:
        node = tree
        for char in word:
            node = node.setdefault(char, {})
        node[""] = word

    def pattern(node: dict[str, Any]) -> str:
        alternatives = [
            re.escape(char) + pattern(child) for char, child in sorted(node.items()) if char
        ]
        if "" in node:
            alternatives.append(_token_end(node[""]))
        return alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"

    return pattern(tree)


def _starts_pattern(first: set[str]) -> re.Pattern[str] | None:
    """Where in a lowered ASCII text a token that begins some alias may start.

    A word never starts right after a word character; every real start of such a token
    matches (a match is checked with :func:`_token_starts_at`, since a word after an inner
    dot or an apostrophe matches too). Aliases whose first token is not ASCII cannot occur
    in ASCII text and are left out.
    """
    ascii_first = sorted(w for w in first if w.isascii())
    words = [w for w in ascii_first if re.match(r"\w", w)]
    others = [w for w in ascii_first if not re.match(r"\w", w)]
    parts = ([r"(?<!\w)" + _trie(words)] if words else []) + ([_trie(others)] if others else [])
    return re.compile("|".join(parts)) if parts else None


def _token_starts_at(text: str, at: int) -> bool:
    """Whether one of ``text``'s tokens starts at ``at``. Tokens never hold whitespace, so
    the run of non-space characters around ``at`` is tokenized on its own."""
    if at == 0 or text[at - 1].isspace():
        return True
    run = at - 1
    while run > 0 and not text[run - 1].isspace():
        run -= 1
    for m in _TOKEN.finditer(text, run):
        if m.start() >= at:
            return m.start() == at
    return False


@dataclass(frozen=True, slots=True)
class AliasMatch:
    """A span of text that is an alias of one or more KB entities."""

    start: int
    end: int
    text: str
    candidates: tuple[int, ...]  # indices into the KB's entities


class AliasIndex:
    """Exact and prefix lookup of normalised aliases, and longest-match scanning of text."""

    def __init__(self, kb: KnowledgeBase, max_alias_tokens: int = 8) -> None:
        self.kb = kb
        # normalised alias -> [(entity index, alias form as written in the KB)]
        self.forms: dict[str, list[tuple[int, str]]] = defaultdict(list)
        self.by_tokens: dict[tuple[str, ...], str] = {}
        # Every proper prefix of a multi-token alias: a scan extends a match token by token
        # only while it is still the start of some alias.
        self._prefixes: set[tuple[str, ...]] = set()
        # The first token of every alias: no other token can start a match.
        self._first: set[str] = set()
        self.max_tokens = 1
        for index, entity in enumerate(kb.entities):
            for form in entity.surface_forms:
                toks = tuple(t for _, _, t in tokens(form))
                if not toks or len(toks) > max_alias_tokens:
                    continue
                key = " ".join(toks)
                if (index, form) not in self.forms[key]:
                    self.forms[key].append((index, form))
                self.by_tokens[toks] = key
                self._prefixes.update(toks[:n] for n in range(1, len(toks)))
                self._first.add(toks[0])
                self.max_tokens = max(self.max_tokens, len(toks))
        self._sorted = sorted(self.forms)
        self._starts = _starts_pattern(self._first)
        # Tokens that begin a longer alias, and the aliases of one token.
        self._continued = {key[0] for key in self._prefixes}
        self._single = {key[0]: alias for key, alias in self.by_tokens.items() if len(key) == 1}
        self._fits: dict[tuple[str, str | None], tuple[int, ...]] = {}
        self._mentions: dict[str, tuple[tuple[int, ...], bool]] = {}

    def __len__(self) -> int:
        return len(self.forms)

    def lookup(self, mention: str, *, respect_case: bool = True) -> tuple[int, ...]:
        """Entities whose alias is exactly ``mention`` (after normalisation)."""
        return self._entities(normalize(mention), mention if respect_case else None)

    def _entities(self, alias: str, surface: str | None) -> tuple[int, ...]:
        """Entities of the normalised ``alias`` whose KB form fits the case of ``surface``
        as written (any case when None), each once, in KB order. Remembered: the same
        names come back document after document."""
        known = self._fits.get((alias, surface))
        if known is not None:
            return known
        entries = self.forms.get(alias, [])
        found = (i for i, form in entries if surface is None or _case_ok(surface, form))
        fits = tuple(dict.fromkeys(found))
        if len(self._fits) >= _FITS_REMEMBERED:
            self._fits.clear()
        self._fits[(alias, surface)] = fits
        return fits

    def prefix(self, prefix: str, limit: int = 20) -> list[str]:
        """Normalised aliases that start with ``prefix`` (for autocomplete-style lookup)."""
        return self._prefixed(normalize(prefix), limit)

    def _prefixed(self, key: str, limit: int) -> list[str]:
        start = bisect.bisect_left(self._sorted, key)
        out: list[str] = []
        for alias in self._sorted[start:]:
            if not alias.startswith(key) or len(out) >= limit:
                break
            out.append(alias)
        return out

    def candidates(self, mention: str) -> tuple[int, ...]:
        """Candidates for a mention found by a NER model: exact alias, else the aliases
        that start with it, else the longest alias inside it (``Angela Merkel's`` -> ...)."""
        return self.candidates_and_match(mention)[0]

    def candidates_and_match(self, mention: str) -> tuple[tuple[int, ...], bool]:
        """:meth:`candidates`, and whether they come from an exact alias match. Remembered
        per mention as written: a stream names the same people and places document after
        document, and the lookup (tokenizing, prefix search, inner scan) costs more than
        the link itself."""
        known = self._mentions.get(mention)
        if known is None:
            known = self._candidates_and_match(mention)
            if len(self._mentions) >= _MENTIONS_REMEMBERED:
                self._mentions.clear()
            self._mentions[mention] = known
        return known

    def _candidates_and_match(self, mention: str) -> tuple[tuple[int, ...], bool]:
        alias = normalize(mention)
        # The case rules of scanning first ("puma" is the animal); then any case.
        exact = self._entities(alias, mention) or self._entities(alias, None)
        if exact:
            return exact, True
        return self._partial(mention, alias), False

    def _partial(self, mention: str, alias: str) -> tuple[int, ...]:
        found: list[int] = []
        if len(alias) >= 4:
            for longer in self._prefixed(alias, limit=10):
                if longer != alias:
                    found.extend(i for i, _ in self.forms[longer])
        if found:
            return tuple(dict.fromkeys(found))
        inner = self.scan(mention)
        if inner:
            longest = max(inner, key=lambda m: m.end - m.start)
            return longest.candidates
        return ()

    def scan(self, text: str) -> list[AliasMatch]:
        """Leftmost-longest, non-overlapping alias matches in ``text``.

        Only tokens that begin some alias start a match: at each, the aliases starting there
        are found by walking forward while the tokens so far are an alias or the start of
        one; the longest whose case fits the text wins, else the scan moves one token on.
        An ASCII text is lowered (for ASCII, the normalisation of every token) and searched
        in C for the next token that begins an alias (:func:`_starts_pattern`): the walk
        runs only there, not at every token.
        """
        if not text.isascii():
            toks = tokens(text)
            return self._scan(text, [(a, b) for a, b, _ in toks], [t for _, _, t in toks])
        starts = self._starts
        if starts is None:
            return []
        lowered = text.lower()
        out: list[AliasMatch] = []
        pos = 0
        while (found := starts.search(lowered, pos)) is not None:
            at = found.start()
            pos = at + 1
            if not _token_starts_at(lowered, at):
                continue
            # A real start: what the pattern matched is the whole token there.
            word = found.group()
            if word in self._continued:
                match = self._walk(text, lowered, at)
            else:  # no longer alias begins with it: the one-token alias or nothing
                match = self._one_token(text, word, at, found.end())
            if match is not None:
                out.append(match)
                pos = match.end
        return out

    def _one_token(self, text: str, word: str, at: int, end: int) -> AliasMatch | None:
        alias = self._single.get(word)
        return None if alias is None else self._fit(text, at, end, alias)

    def _fit(self, text: str, start: int, end: int, alias: str) -> AliasMatch | None:
        """``text[start:end]`` as the normalised ``alias``, if some entity's form fits its case."""
        surface = text[start:end]
        cands = self._entities(alias, surface)
        return AliasMatch(start, end, surface, cands) if cands else None

    def _walk(self, text: str, lowered: str, at: int) -> AliasMatch | None:
        """The longest alias whose case fits, among those starting at the token at ``at``
        (the tokens from there on are the text's own: ``at`` starts one)."""
        by_tokens, prefixes = self.by_tokens, self._prefixes
        found: list[tuple[int, str]] = []  # (end, alias key), shortest first
        key: tuple[str, ...] = ()
        for m in _TOKEN.finditer(lowered, at):
            key += (m.group(),)
            alias = by_tokens.get(key)
            if alias is not None:
                found.append((m.end(), alias))
            if key not in prefixes or len(key) >= self.max_tokens:
                break
        for end, alias in reversed(found):
            if (match := self._fit(text, at, end, alias)) is not None:
                return match
        return None

    def _scan(self, text: str, spans: list[tuple[int, int]], words: list[str]) -> list[AliasMatch]:
        """:meth:`scan` over a text's tokens (spans and normalised words), token by token."""
        by_tokens, prefixes, first = self.by_tokens, self._prefixes, self._first
        out: list[AliasMatch] = []
        count = len(words)
        resume = 0  # the first token after the last match
        for i in [i for i, w in enumerate(words) if w in first]:
            if i < resume:
                continue
            found: list[tuple[int, str]] = []  # (length, alias key), shortest first
            key: tuple[str, ...] = ()
            for j in range(i, min(count, i + self.max_tokens)):
                key += (words[j],)
                alias = by_tokens.get(key)
                if alias is not None:
                    found.append((j - i + 1, alias))
                if key not in prefixes:
                    break
            for n, alias in reversed(found):
                match = self._fit(text, spans[i][0], spans[i + n - 1][1], alias)
                if match is not None:
                    out.append(match)
                    resume = i + n
                    break
        return out

    def ambiguous(self) -> Iterable[str]:
        """Normalised aliases shared by two or more entities."""
        return (a for a, entries in self.forms.items() if len({i for i, _ in entries}) > 1)
