"""Hostile Kafka messages: a hypothesis strategy per attack class, and a checker for the rows
the sink builds from what survives.

Shared by ``tests/unit/test_decode_fuzz.py`` (the property-based fuzz) and
``tests/integration/test_hostile_stream.py`` (the same messages through the running pipeline).
Every strategy builds bytes cheaply: deep nesting and megabyte payloads are multiplied byte
strings, never Python object trees.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from stream_aimass.clickhouse.migrations import load_migrations

TS_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
EVENT_TYPES = ("view", "click", "like", "purchase")
# Every top-level field a document, catalogue item or event has: what mutations aim at.
FIELDS = (
    "id", "tenant", "ts", "text", "title", "lang", "meta", "category",
    "event_id", "user_id", "item_id", "type",
)  # fmt: skip
# Kafka timestamps are set by the producer: int64, -1 for "none", anything at all when hostile.
KAFKA_TIMESTAMPS = (TS_MS, 0, -1, 1, 2**62, 2**63 - 1, -(2**63), 10_413_792_000_000)


class Raw(bytes):
    """JSON text spliced verbatim into a rendered message (what orjson would refuse to write)."""


def _short(value: bytes | None) -> str:
    if value is None or len(value) <= 120:
        return repr(value)
    return f"{value[:120]!r}...({len(value):,} bytes)"


class Hostile:
    """One adversarial message: its attack class, value (None: a tombstone) and Kafka key.

    A plain class, not a dataclass: hypothesis prints dataclasses field by field, this
    one's repr keeps failure reports readable when the message is megabytes.
    """

    __slots__ = ("key", "kind", "raw")

    def __init__(self, kind: str, raw: bytes | None, key: bytes | None = None) -> None:
        self.kind = kind
        self.raw = raw
        self.key = key

    def __repr__(self) -> str:
        return f"Hostile({self.kind!r}, raw={_short(self.raw)}, key={_short(self.key)})"


def render(value: Any) -> bytes:
    """``value`` as JSON bytes, with every :class:`Raw` inside copied as it is."""
    if isinstance(value, Raw):
        return bytes(value)
    if isinstance(value, dict):
        items = (orjson.dumps(k) + b":" + render(v) for k, v in value.items())
        return b"{" + b",".join(items) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(render(v) for v in value) + b"]"
    return orjson.dumps(value)


# ---------------------------------------------------------------------------- plain values

# Any code point but surrogates (orjson cannot write those; Raw escapes cover them).
_chars = st.characters(codec="utf-8")
_word = st.text(_chars, min_size=1, max_size=16)
_tenant = st.from_regex(r"(?!\.)(?!.*\.\.)[A-Za-z0-9_.-]{1,12}", fullmatch=True)
_text = st.text(_chars, min_size=1, max_size=64)
_small_text = st.text(_chars, max_size=16)
_ts = st.integers(0, 2**42) | st.sampled_from(
    ["2025-01-01T00:00:00Z", "2025-06-30T12:34:56.789+02:00", "2025-01-01T00:00:00.123456-08:00"]
)
_json_leaf: st.SearchStrategy[Any] = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _small_text
)
json_values: st.SearchStrategy[Any] = st.recursive(
    _json_leaf,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_small_text, kids, max_size=4),
    max_leaves=12,
)

documents: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {"id": _word, "tenant": _tenant, "ts": _ts, "text": _text},
    optional={
        "title": _small_text,
        "lang": st.sampled_from(["en", "de", "zh-Hant", ""]),
        "meta": st.dictionaries(_small_text, json_values, max_size=3),
        "category": _word,
    },
)
events: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {
        "event_id": _word,
        "tenant": _tenant,
        "user_id": _word,
        "item_id": _word,
        "type": st.sampled_from(EVENT_TYPES),
        "ts": _ts,
    }
)
# Mostly valid documents and events: the base every mutation starts from.
records = documents | events

_fields = st.sampled_from(FIELDS)


def _mutate(values: st.SearchStrategy[Any], max_fields: int = 3) -> st.SearchStrategy[bytes]:
    """A record with 1..max_fields fields (present or not) set to a drawn value."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        record = draw(records)
        for name in draw(st.lists(_fields, min_size=1, max_size=max_fields, unique=True)):
            record[name] = draw(values)
        return render(record)

    return build()


# ---------------------------------------------------------------------------- attack classes

_GARBAGE = [
    b"{id: 'x'}", b"{'id': 'x'}", b'{"a": 1,}', b'{"a" 1}', b'{"a":}', b"}{", b"{}{}",
    b'{"id":"x"} {"id":"y"}', b"[1,]", b'{"a": 1 /* comment */}', b"// nothing\n{}",
    b'{"a": tru}', b'{"a": nul}', b'{"a": "unterminated}', b'{"a": "\\q"}', b"{\"a\": 'b'}",
    b'{"a":1}}', b"[[]", b"\"", b"'", b"{", b"[", b"{,}", b":", b"nan", b"undefined",
]  # fmt: skip


@st.composite
def _broken_json(draw: st.DrawFn) -> bytes:
    raw = render(draw(records))
    how = draw(st.sampled_from(["truncate", "delete", "insert", "garbage", "duplicate"]))
    if how == "garbage":
        return draw(st.sampled_from(_GARBAGE))
    at = draw(st.integers(0, len(raw) - 1))
    if how == "truncate":
        return raw[:at]
    if how == "delete":
        return raw[:at] + raw[at + 1 :]
    if how == "insert":
        junk = draw(st.sampled_from([b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"x"]))
        return raw[:at] + junk + raw[at:]
    return raw[:at] + raw  # a prefix glued to the whole message


_wrong_values: st.SearchStrategy[Any] = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _small_text
    | st.lists(json_values, max_size=3)
    | st.dictionaries(_small_text, json_values, max_size=3)
)


@st.composite
def _missing_extra(draw: st.DrawFn) -> bytes:
    record = draw(records)
    for name in draw(st.lists(st.sampled_from(sorted(record)), max_size=len(record), unique=True)):
        del record[name]
    record.update(draw(st.dictionaries(_small_text, json_values, max_size=4)))
    raw = render(record)
    if draw(st.booleans()) and raw != b"{}":
        # A duplicated key: JSON allows it, the last value wins.
        name = draw(_fields)
        raw = raw[:-1] + b"," + orjson.dumps(name) + b":" + render(draw(_wrong_values)) + b"}"
    return raw


_blank = st.sampled_from(["", " ", "\t\n", "\r\n\r\n", "\u3000", "\u00a0", "\u200b", "\ufeff"])

_HUGE_LENGTHS = [129, 257, 4_097, 65_537, 262_145, 300_000]
_HUGE_CHARS = ["a", "\u00e9", "\u6f22", "\U0001f600", " ", "\\u0000", "\\\\", "\\n"]


@st.composite
def _huge_string(draw: st.DrawFn) -> Raw:
    n = draw(st.sampled_from(_HUGE_LENGTHS) | st.integers(1, 20_000))
    char = draw(st.sampled_from(_HUGE_CHARS))
    # Escapes are JSON text: one character each once decoded.
    return Raw(b'"' + char.encode() * n + b'"')


_DEPTHS = [253, 254, 255, 256, 257, 511, 1023, 1024, 1025, 5_000, 10_000]


@st.composite
def _deep_nesting(draw: st.DrawFn) -> bytes:
    depth = draw(st.sampled_from(_DEPTHS) | st.integers(1, 12_000))
    shape = draw(st.sampled_from(["arrays", "objects", "open", "meta", "meta-list", "field"]))
    if shape == "arrays":
        return b"[" * depth + b"1" + b"]" * depth
    if shape == "objects":
        return b'{"a":' * depth + b"1" + b"}" * depth
    if shape == "open":
        return draw(st.sampled_from([b"[", b'{"a":'])) * depth
    record = draw(records)
    if shape == "meta":
        record["meta"] = Raw(b'{"a":' * depth + b"1" + b"}" * depth)
    elif shape == "meta-list":
        record["meta"] = Raw(b'{"a":' + b"[" * depth + b"]" * depth + b"}")
    else:
        record[draw(_fields)] = Raw(b"[" * depth + b"]" * depth)
    return render(record)


_BAD_UTF8 = [
    b"\xff", b"\xfe", b"\x80", b"\xc0\xaf", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80",
    b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xef\xbf",
]  # fmt: skip


@st.composite
def _invalid_utf8(draw: st.DrawFn) -> bytes:
    bad = draw(st.sampled_from(_BAD_UTF8))
    record = draw(records)
    if draw(st.booleans()):
        record[draw(_fields)] = Raw(b'"ok' + bad + b'ok"')
        return render(record)
    raw = render(record)
    at = draw(st.integers(0, len(raw)))
    return raw[:at] + bad + raw[at:]


@st.composite
def _nul_bytes(draw: st.DrawFn) -> bytes:
    record = draw(records)
    how = draw(st.sampled_from(["in-string", "escaped", "outside", "only", "trailing"]))
    if how == "only":
        return b"\x00" * draw(st.integers(1, 64))
    if how == "in-string":
        record[draw(_fields)] = Raw(b'"a\x00b"')
    elif how == "escaped":
        # Valid JSON: a NUL character inside a string value.
        record[draw(_fields)] = "\x00" + draw(_small_text) + "\x00"
    raw = render(record)
    if how == "outside":
        at = draw(st.integers(0, len(raw)))
        return raw[:at] + b"\x00" + raw[at:]
    return raw + b"\x00" if how == "trailing" else raw


_CONTROLS = [chr(c) for c in range(32)] + ["\x7f", "\x85", "\u2028", "\u2029", "\u202e", "\x1b[31m"]


@st.composite
def _control_chars(draw: st.DrawFn) -> bytes:
    record = draw(records)
    control = draw(st.sampled_from(_CONTROLS))
    name = draw(_fields)
    if draw(st.booleans()):
        # Written raw inside the string: JSON forbids control characters there.
        record[name] = Raw(b'"x' + control.encode() + b'x"')
    else:
        record[name] = control + str(record.get(name, "")) + control
    return render(record)


_SCRIPTS = [
    "Gr\u00fc\u00dfe", "\u041f\u0440\u0438\u0432\u0435\u0442", "\u4f60\u597d",
    "\u0645\u0631\u062d\u0628\u0627", "\u05e9\u05dc\u05d5\u05dd",
    "\u0928\u092e\u0938\u094d\u0924\u0947", "\U0001f469\u200d\U0001f4bb",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e", "\u202eevil\u202c",
    "a\u0301" * 50, "\U0001d54f\U0001d560\U0001d55d", "\u1100\u1161\u11a8", "\ufdfd", "\U000e0041",
]  # fmt: skip


@st.composite
def _mixed_scripts(draw: st.DrawFn) -> bytes:
    record = draw(records)
    for name in draw(st.lists(_fields, min_size=1, max_size=3, unique=True)):
        parts = draw(st.lists(st.sampled_from(_SCRIPTS) | _small_text, min_size=1, max_size=6))
        record[name] = "".join(parts)
    return render(record)


_NUMBERS = [
    b"1e400", b"-1e400", b"1e308", b"1.7976931348623157e308", b"2e308", b"1e-400", b"-0",
    b"-0.0", b"0e0", str(2**63).encode(), str(2**64 - 1).encode(), str(2**64).encode(),
    str(2**70).encode(), str(-(2**63) - 1).encode(), b"9" * 5_000, b"0." + b"1" * 5_000,
    b"NaN", b"-NaN", b"Infinity", b"-Infinity", b"01", b"+1", b"0x10", b".5", b"1.", b"1e",
    b"1_000", b"1e+", b"--1", b"253402300800000", b"10413791999999", b"10413792000000",
]  # fmt: skip


@st.composite
def _huge_number(draw: st.DrawFn) -> Raw:
    if draw(st.booleans()):
        return Raw(draw(st.sampled_from(_NUMBERS)))
    return Raw(str(draw(st.integers(-(2**80), 2**80))).encode())


_ESCAPES = [
    b'"\\ud800"', b'"\\udfff"', b'"\\ud800\\u0041"', b'"\\udc00\\ud800"', b'"\\ud83d\\ude00"',
    b'"\\uDEAD\\uBEEF"', b'"\\u"', b'"\\u12"', b'"\\uZZZZ"', b'"\\x41"', b'"\\u0000"', b'"\\/"',
    b'"x\\ud800"', b'"\\ud800x"',
]  # fmt: skip


@st.composite
def _encodings(draw: st.DrawFn) -> bytes:
    text = render(draw(records)).decode()
    codec = draw(st.sampled_from(["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"]))
    raw = text.encode(codec)
    if draw(st.booleans()):
        raw = b"\xef\xbb\xbf" + raw  # a UTF-8 BOM in front of anything
    return raw


_long_id = st.sampled_from([128, 129, 255, 256, 257, 1_000, 100_000]).map(lambda n: "i" * n)
_long_tenant = st.sampled_from([128, 129, 1_000, 100_000]).map(lambda n: "t" * n)


@st.composite
def _long_ids(draw: st.DrawFn) -> bytes:
    record = draw(records)
    for name in ("id", "event_id", "user_id", "item_id"):
        if name in record and draw(st.booleans()):
            record[name] = draw(_long_id)
    if draw(st.booleans()):
        record["tenant"] = draw(_long_tenant)
    return render(record)


@st.composite
def _non_objects(draw: st.DrawFn) -> bytes:
    shape = draw(st.sampled_from(["list-of-record", "value", "empty"]))
    if shape == "list-of-record":
        return render([draw(records)])
    if shape == "empty":
        return draw(st.sampled_from([b"{}", b"[]", b'""', b"null", b"0", b"true", b"false"]))
    return render(draw(json_values))


_ISO = [
    "9999-12-31T23:59:59-23:59", "9999-12-31T23:59:59.999+00:00", "0001-01-01T00:00:00+23:59",
    "2299-12-31T23:59:59.999Z", "2300-01-01T00:00:00Z", "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999Z", "2025-13-01T00:00:00Z", "2025-02-30T00:00:00Z", "2025-01-01",
    "2025-01-01T00:00:00", "2025-01-01T00:00:00+25:00", "2025-01-01T24:00:00Z", "Z", "",
    "2025-01-01T00:00:00ZZ", "2025-01-01 00:00:00+00:00", "20250101T000000Z", "now",
    "2025-01-01T00:00:00.123456789Z", "+002025-01-01T00:00:00Z", "\u0662\u0660\u0662\u0665-01-01",
]  # fmt: skip


@st.composite
def _timestamps(draw: st.DrawFn) -> bytes:
    record = draw(records)
    record["ts"] = draw(
        st.sampled_from(_ISO)
        | st.integers(-(2**63), 2**64 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(_chars, max_size=40)
        | _huge_number()
        | st.booleans()
        | st.none()
    )
    return render(record)


_whitespace = st.sampled_from([b" ", b"\t", b"\r\n", b"\x0b", b"\x0c", b"\xc2\xa0", b"\n" * 1000])


@st.composite
def _whitespace_wrapped(draw: st.DrawFn) -> bytes:
    before, after = draw(_whitespace), draw(_whitespace)
    return before + (render(draw(records)) if draw(st.booleans()) else b"") + after


def attack_classes() -> dict[str, st.SearchStrategy[bytes | None]]:
    """Every attack class by name: each gives message values (None: a tombstone)."""
    return {
        "broken_json": _broken_json(),
        "wrong_types": _mutate(_wrong_values),
        "missing_extra_fields": _missing_extra(),
        "empty_strings": _mutate(_blank),
        "huge_strings": _mutate(_huge_string(), max_fields=2),
        "deep_nesting": _deep_nesting(),
        "invalid_utf8": _invalid_utf8(),
        "nul_bytes": _nul_bytes(),
        "control_chars": _control_chars(),
        "mixed_scripts": _mixed_scripts(),
        "huge_numbers": _mutate(_huge_number()),
        "surrogate_escapes": _mutate(st.sampled_from(_ESCAPES).map(Raw)),
        "boms_encodings": _encodings(),
        "long_ids_tenants": _long_ids(),
        "non_objects": _non_objects(),
        "timestamps": _timestamps(),
        "whitespace": _whitespace_wrapped(),
        "random_bytes": st.binary(max_size=2_048),
        "tombstone": st.none(),
        "valid": st.builds(render, records),
    }


# Keys are attacker-controlled too: binary, empty, megabytes (a dead letter carries the key).
hostile_keys: st.SearchStrategy[bytes | None] = (
    st.none()
    | st.binary(max_size=32)
    | st.sampled_from([b"", b"acme:doc-1", b"\xff\xfe:\x00", b"k" * 100_000, b"k" * 1_000_000])
)


def hostile_messages(
    keys: st.SearchStrategy[bytes | None] = hostile_keys,
) -> st.SearchStrategy[Hostile]:
    """Any attack class, with a hostile key."""
    classes = attack_classes()

    @st.composite
    def build(draw: st.DrawFn) -> Hostile:
        # Built here, not with st.builds: failure reports then show Hostile's short repr.
        kind = draw(st.sampled_from(sorted(classes)))
        return Hostile(kind, draw(classes[kind]), draw(keys))

    return build()


# Payloads of about n bytes, built by multiplying bytes: what a producer with a raised
# max.request.size can send. Shapes: valid JSON, unclosed, nesting, binary, broken UTF-8.
BIG_SHAPES: dict[str, Callable[[int], bytes]] = {
    "text": lambda n: b'{"id":"big","tenant":"acme","ts":1,"text":"' + b"a" * n + b'"}',
    "unclosed": lambda n: b'{"id":"big","tenant":"acme","ts":1,"text":"' + b"a" * n,
    "nesting": lambda n: b"[" * (n // 2) + b"]" * (n // 2),
    "nul": lambda n: b"\x00" * n,
    "bad_utf8": lambda n: b'{"text":"' + b"\xff" * n + b'"}',
    "numbers": lambda n: b"[" + b"1," * (n // 2) + b"1]",
}


def collect(
    strategy: st.SearchStrategy[Any], n: int, check: Callable[[Any], None] | None = None
) -> list[Any]:
    """The first ``n`` examples hypothesis draws from ``strategy``, always the same ones.

    ``check`` runs on each one as it is drawn: a failure is shrunk and reported like any
    hypothesis failure.
    """
    drawn: list[Any] = []

    @hypothesis_settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.generate, Phase.shrink),
        print_blob=True,
    )
    @given(strategy)
    def run(example: Any) -> None:
        if check is not None:
            check(example)
        drawn.append(example)

    run()
    return drawn


# ---------------------------------------------------------------------------- row types


def _columns_from_migrations() -> dict[str, dict[str, str]]:
    tables: dict[str, dict[str, str]] = {}
    create = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)\s*\((.*)\)\s*ENGINE", re.S)
    alter = re.compile(r"ALTER TABLE (\w+) ADD COLUMN IF NOT EXISTS (\w+) (.+?)(?: DEFAULT .*)?$")
    column = re.compile(r"^\s*(\w+)\s+(.+?)(?:\s+DEFAULT\s.*)?,?\s*$")
    for migration in load_migrations():
        for statement in migration.statements():
            if match := create.search(statement):
                cols = tables.setdefault(match.group(1), {})
                for line in match.group(2).splitlines():
                    if col := column.match(line):
                        cols[col.group(1)] = col.group(2)
            elif match := alter.match(statement.strip()):
                tables.setdefault(match.group(1), {})[match.group(2)] = match.group(3)
    return tables


@cache
def column_types(table: str) -> dict[str, str]:
    """``table``'s column types as the migrations declare them."""
    return _columns_from_migrations()[table]


_UINT_BITS = {"UInt8": 8, "UInt16": 16, "UInt32": 32, "UInt64": 64, "UInt128": 128}
_F32_MAX = 3.4028234663852886e38


def fits(value: Any, ch_type: str) -> bool:
    """Whether clickhouse-connect can write ``value`` into a column of ``ch_type``.

    What its native serializer refuses fails the whole insert batch, on every retry.
    """
    if ch_type.startswith("LowCardinality("):
        return fits(value, ch_type[len("LowCardinality(") : -1])
    if ch_type == "String":
        if not isinstance(value, str):
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if ch_type in _UINT_BITS:
        return isinstance(value, int) and 0 <= value < 2 ** _UINT_BITS[ch_type]
    if ch_type == "Float32":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return math.isnan(value) or math.isinf(value) or abs(value) <= _F32_MAX
    if ch_type.startswith("DateTime64("):
        return isinstance(value, datetime)
    if ch_type.startswith("Array("):
        inner = ch_type[len("Array(") : -1]
        return isinstance(value, list) and all(fits(v, inner) for v in value)
    if ch_type.startswith("Map("):
        key_type, value_type = (t.strip() for t in ch_type[len("Map(") : -1].split(",", 1))
        return isinstance(value, dict) and all(
            fits(k, key_type) and fits(v, value_type) for k, v in value.items()
        )
    raise AssertionError(f"no check for column type {ch_type}")


def assert_row_fits(row: list[Any], table: str, columns: list[str]) -> None:
    """Every value of ``row`` can be inserted into its column of ``table``."""
    types = column_types(table)
    assert len(row) == len(columns), (table, len(row), len(columns))
    for name, value in zip(columns, row, strict=True):
        assert fits(value, types[name]), f"{table}.{name} ({types[name]}) got {value!r:.200}"
