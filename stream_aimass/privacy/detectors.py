"""Pattern detectors of personal data, each with a validator that cuts false positives.

Every detector returns :class:`Finding` s (type, start, end, detector, score) over the
text's characters; :func:`detect` runs them all and keeps, where two overlap, the stronger.

- ``EMAIL``: an address with a dotted domain and a letters-only top-level label.
- ``PHONE``: the ``phonenumbers`` library's matcher at leniency VALID, region-aware (a
  national number is read in ``region``); a number right after a currency sign is a price.
- ``CARD``: 13 to 19 digits (spaces or dashes between groups) passing Luhn, with a known
  issuer prefix; a number the text calls an order, invoice or tracking number is not a card
  unless a card word (card, visa, credit...) is near it too.
- ``IBAN``: a country code, two check digits and the country's length, passing mod-97.
- ``IP_ADDRESS``: IPv4 and IPv6 that :mod:`ipaddress` accepts; a dotted quad after "v" or
  "version" is a version number.
- ``US_SSN``: ``AAA-GG-SSSS`` without the numbers never issued (area 000, 666, 900-999,
  group 00, serial 0000); nine bare digits only when the text says SSN near them.
- ``SECRET``: known key formats (AWS, GitHub, Slack, Stripe, Google, private key blocks,
  JWTs), and long high-entropy tokens next to a word like key, token, secret or password.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import phonenumbers

PATTERN_TYPES = ("EMAIL", "PHONE", "CARD", "IBAN", "IP_ADDRESS", "US_SSN", "SECRET")


@dataclass(frozen=True, slots=True)
class Finding:
    """A span of personal data: ``text[start:end]`` is of ``type``, found by ``detector``."""

    type: str
    start: int
    end: int
    detector: str
    score: float

    def to_dict(self) -> dict[str, object]:
        return {"type": self.type, "start": self.start, "end": self.end,
                "detector": self.detector, "score": self.score}  # fmt: skip


def _near(text: str, start: int, end: int, words: re.Pattern[str], span: int = 32) -> bool:
    return bool(words.search(text[max(0, start - span) : end + span // 2]))


# -- email -------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)


def emails(text: str) -> list[Finding]:
    return [Finding("EMAIL", m.start(), m.end(), "email", 0.95) for m in _EMAIL.finditer(text)]


# -- phone numbers -----------------------------------------------------------------------

_NOT_PHONE_WORDS = re.compile(
    r"(?i)\b(?:order|invoice|tracking|ref(?:erence)?|lot|batch|sku|serial|ticket|id|no\.?)"
    r"\s*[#:]?\s*$"
)
_CURRENCY_BEFORE = re.compile(r"[$€£¥₹]\s*$|\b(?:USD|EUR|GBP|CHF|JPY)\s*$")


def phones(text: str, region: str = "US") -> list[Finding]:
    out = []
    leniency = phonenumbers.Leniency.VALID
    for base, window in _phone_windows(text):
        out += _phones_in(text, base, window, region, leniency)
    return out


# Where a number of 7 or more digits is (phonenumbers' matcher costs ~0.25 ms per short
# text even when there is none): the matcher runs on these stretches only, with some text
# around them for its own context checks.
_DIGIT_RUN = re.compile(r"[+(]?\d[\d \t().\-/]{5,24}\d")
_WINDOW_PAD = 12


def _phone_windows(text: str) -> list[tuple[int, str]]:
    spans: list[list[int]] = []
    for m in _DIGIT_RUN.finditer(text):
        if sum(c.isdigit() for c in m.group()) < 7:
            continue
        start, end = max(0, m.start() - _WINDOW_PAD), min(len(text), m.end() + _WINDOW_PAD)
        if spans and start <= spans[-1][1]:
            spans[-1][1] = end
        else:
            spans.append([start, end])
    return [(a, text[a:b]) for a, b in spans]


def _phones_in(text: str, base: int, window: str, region: str, leniency: Any) -> list[Finding]:
    out = []
    for match in phonenumbers.PhoneNumberMatcher(window, region, leniency=leniency):
        start, end = base + match.start, base + match.end
        if _CURRENCY_BEFORE.search(text[max(0, start - 5) : start]):
            continue  # "$1 415 555 0100" is a price
        if _NOT_PHONE_WORDS.search(text[max(0, start - 16) : start]):
            continue  # "order 2023-88-1234" is an order number
        if text[start] == "(" and ")" not in text[start:end]:
            start += 1  # "(+91 98765 43210)": the bracket is the sentence's
        score = 0.9 if text[start] == "+" else 0.8
        out.append(Finding("PHONE", start, end, "phonenumbers", score))
    return out


# -- payment cards -----------------------------------------------------------------------

_CARD = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])")
_CARD_WORDS = re.compile(
    r"(?i)\b(?:card|cards|visa|master\s?card|amex|american express|discover|credit|debit|cc|"
    r"pan|cvv|expir\w*)\b"
)
_NOT_CARD_WORDS = re.compile(
    r"(?i)\b(?:order|invoice|tracking|shipment|parcel|ref(?:erence)?|ticket|account no|sku|"
    r"serial|isbn|imei|booking)\b"
)


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _issuer(digits: str) -> bool:
    """A prefix and length some card network issues."""
    n, two, three, four = len(digits), int(digits[:2]), int(digits[:3]), int(digits[:4])
    visa = digits[0] == "4" and n in (13, 16, 19)
    mastercard = (51 <= two <= 55 or 2221 <= four <= 2720) and n == 16
    amex = two in (34, 37) and n == 15
    discover = (four == 6011 or two == 65 or 644 <= three <= 649) and n in (16, 19)
    jcb = 3528 <= four <= 3589 and 16 <= n <= 19
    diners = (two in (36, 38, 39) or 300 <= three <= 305) and n in (14, 16, 19)
    unionpay = two == 62 and 16 <= n <= 19
    return visa or mastercard or amex or discover or jcb or diners or unionpay


def cards(text: str) -> list[Finding]:
    out = []
    for m in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        if not 13 <= len(digits) <= 19 or not luhn(digits) or not _issuer(digits):
            continue
        card_word = _near(text, m.start(), m.end(), _CARD_WORDS, 40)
        if _near(text, m.start(), m.end(), _NOT_CARD_WORDS, 24) and not card_word:
            continue  # "order 4111 1111 1111 1111" is an order number
        out.append(Finding("CARD", m.start(), m.end(), "luhn", 0.95 if card_word else 0.85))
    return out


# -- IBAN --------------------------------------------------------------------------------

IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21,
    "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18,
    "FR": 27, "GB": 22, "GI": 23, "GL": 18, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IL": 23,
    "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24,
    "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}  # fmt: skip
_IBAN = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2}\d{2}(?: ?[A-Z0-9]){10,30})(?![A-Za-z0-9])")


def iban_valid(compact: str) -> bool:
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def ibans(text: str) -> list[Finding]:
    out = []
    for m in _IBAN.finditer(text):
        raw = m.group(1)
        compact = raw.replace(" ", "")
        # The match may run on into a following word: try the country's exact length.
        length = IBAN_LENGTHS.get(compact[:2])
        if length is None or len(compact) < length:
            continue
        end, seen = m.start(1), 0
        while seen < length:
            if text[end] != " ":
                seen += 1
            end += 1
        if iban_valid(compact[:length]) and (end == len(text) or not text[end].isalnum()):
            out.append(Finding("IBAN", m.start(1), end, "mod97", 0.95))
    return out


# -- IP addresses ------------------------------------------------------------------------

# A sentence may end right after the address; a fifth number or a /prefix may not follow.
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d|/\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_VERSION_BEFORE = re.compile(r"(?i)(?:\bv|\b(?:version|release|firmware|build|kernel|update)\s*)$")


def ip_addresses(text: str) -> list[Finding]:
    out = []
    for m in _IPV4.finditer(text):
        if _VERSION_BEFORE.search(text[max(0, m.start() - 10) : m.start()]):
            continue
        try:
            ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        out.append(Finding("IP_ADDRESS", m.start(), m.end(), "ipv4", 0.9))
    for m in _IPV6.finditer(text):
        candidate = m.group()
        if candidate.count(":") < 2 or not any(c.isalnum() for c in candidate):
            continue  # "12:30:45" has colons but is a time: ipaddress refuses it anyway
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        if re.fullmatch(r"\d{1,2}:\d{2}(?::\d{2})?", candidate):
            continue
        out.append(Finding("IP_ADDRESS", m.start(), m.end(), "ipv6", 0.9))
    return out


# -- US social security numbers ----------------------------------------------------------

_SSN_DASHED = re.compile(r"(?<![\w-])(\d{3})-(\d{2})-(\d{4})(?![\w-])")
_SSN_BARE = re.compile(r"(?<!\w)(\d{3})(\d{2})(\d{4})(?!\w)")
_SSN_WORDS = re.compile(r"(?i)\b(?:ssn|social security|ss#|ss no)")


def _ssn_issued(area: str, group: str, serial: str) -> bool:
    a = int(area)
    return a != 0 and a != 666 and a < 900 and group != "00" and serial != "0000"


def ssns(text: str) -> list[Finding]:
    out = []
    for m in _SSN_DASHED.finditer(text):
        if _ssn_issued(*m.groups()):
            score = 0.95 if _near(text, m.start(), m.end(), _SSN_WORDS) else 0.7
            out.append(Finding("US_SSN", m.start(), m.end(), "ssn", score))
    for m in _SSN_BARE.finditer(text):
        if _ssn_issued(*m.groups()) and _near(text, m.start(), m.end(), _SSN_WORDS):
            out.append(Finding("US_SSN", m.start(), m.end(), "ssn", 0.8))
    return out


# -- secrets -----------------------------------------------------------------------------

_KNOWN_SECRETS = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{36,255}"  # GitHub tokens
    r"|github_pat_[A-Za-z0-9_]{60,255}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,250}"  # Slack
    r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,99}"  # Stripe
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # a JWT
    r")(?![A-Za-z0-9])"
)
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z]+ )?PRIVATE KEY-----"
)
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/=_-]{20,200}(?![A-Za-z0-9+/=_-])")
_SECRET_WORDS = re.compile(
    r"(?i)(?:api[_ -]?key|secret|token|password|passwd|pwd|bearer|credential|private[_ ]key|"
    r"access[_ ]key)"
)


def entropy(token: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(token)
    return -sum(c / len(token) * math.log2(c / len(token)) for c in counts.values())


def _random_looking(token: str) -> bool:
    classes = sum(
        (any(c.islower() for c in token), any(c.isupper() for c in token),
         any(c.isdigit() for c in token))
    )  # fmt: skip
    hexish = re.fullmatch(r"[0-9a-f]+", token) is not None
    return classes >= 2 and entropy(token) >= (3.0 if hexish else 3.5) and not token.isdigit()


def secrets(text: str) -> list[Finding]:
    out = [Finding("SECRET", m.start(), m.end(), "known-format", 0.95)
           for m in _KNOWN_SECRETS.finditer(text)]  # fmt: skip
    out += [Finding("SECRET", m.start(), m.end(), "private-key", 0.99)
            for m in _PRIVATE_KEY.finditer(text)]  # fmt: skip
    for m in _TOKEN.finditer(text):
        token, start = m.group(), m.start()
        key, sep, value = token.partition("=")
        if sep and value and not value.startswith("=") and re.fullmatch(r"[A-Za-z_][\w-]*", key):
            token, start = value, start + len(key) + 1  # "api_key=VALUE": the value
        if _random_looking(token) and _near(text, start, m.end(), _SECRET_WORDS, 24):
            out.append(Finding("SECRET", start, m.end(), "entropy", 0.75))
    return out


# -- all of them -------------------------------------------------------------------------

Detector = Callable[[str], list[Finding]]


def detectors(region: str = "US", types: Iterable[str] = PATTERN_TYPES) -> list[Detector]:
    """The detectors of ``types`` (``PATTERN_TYPES`` names them)."""
    by_type: dict[str, Detector] = {
        "EMAIL": emails,
        "PHONE": lambda t: phones(t, region),
        "CARD": cards,
        "IBAN": ibans,
        "IP_ADDRESS": ip_addresses,
        "US_SSN": ssns,
        "SECRET": secrets,
    }
    wanted = set(types)
    return [d for name, d in by_type.items() if name in wanted]


def resolve_overlaps(found: Iterable[Finding]) -> list[Finding]:
    """In text order, keeping of overlapping findings the higher score (then the longer)."""
    ranked = sorted(found, key=lambda f: (-f.score, -(f.end - f.start), f.start))
    kept: list[Finding] = []
    for f in ranked:
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: (f.start, f.end))


def detect(text: str, region: str = "US", types: Iterable[str] = PATTERN_TYPES) -> list[Finding]:
    """Every pattern finding (of ``types``) in ``text``, overlaps resolved."""
    found = [f for detector in detectors(region, types) for f in detector(text)]
    return resolve_overlaps(found) if found else []
