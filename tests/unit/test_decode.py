"""Unit tests for stream_aimass.decode: raw bytes become a Document or a DeadLetter, never raise."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from stream_aimass.decode import (
    MAX_META_DEPTH,
    STAGE_DECODE,
    STAGE_VALIDATE,
    DocumentDecoder,
    InvalidDocument,
    parse_ts_ms,
    validate_document,
)
from stream_aimass.records import DeadLetter, Document, Source
from stream_aimass.tools.corpus import bad_messages, generate_documents

NOW_MS = 123
MAX_BYTES = 262_144
SOURCE = Source(topic="aimass.documents", partition=3, offset=42, timestamp_ms=1_735_689_600_500)
TS = 1_735_689_600_000


def make_decoder(max_document_bytes: int = MAX_BYTES) -> DocumentDecoder:
    return DocumentDecoder(max_document_bytes, clock=lambda: NOW_MS)


def doc(**fields: Any) -> dict[str, Any]:
    """A minimal valid document, with ``fields`` merged in (a value of ``...`` removes it)."""
    base: dict[str, Any] = {"id": "doc-1", "tenant": "acme", "ts": TS, "text": "hello world"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def encode(obj: Any) -> bytes:
    return orjson.dumps(obj)


def expect_dead(
    raw: bytes | None, stage: str, *needles: str, key: bytes | None = None
) -> DeadLetter:
    """Decode ``raw`` and check the dead letter's invariant fields; return it for more checks."""
    result = make_decoder().decode(raw, SOURCE, key=key)
    assert isinstance(result, DeadLetter), f"expected a DeadLetter, got {result!r}"
    assert result.stage == stage
    assert result.raw == (raw if raw is not None else b"")
    assert result.source == SOURCE
    assert result.failed_at_ms == NOW_MS
    assert result.key == key
    assert result.reason and result.reason.strip()
    for needle in needles:
        assert needle.lower() in result.reason.lower(), (needle, result.reason)
    return result


# --------------------------------------------------------------------------- valid documents


def test_full_document_decodes_with_all_fields() -> None:
    obj = doc(title="A title", lang="en", meta={"source": "wire", "n": [1, 2]})
    result = make_decoder().decode(encode(obj), SOURCE)
    assert result == Document(
        id="doc-1",
        tenant="acme",
        ts_ms=TS,
        text="hello world",
        source=SOURCE,
        title="A title",
        lang="en",
        meta={"source": "wire", "n": [1, 2]},
    )


def test_minimal_document_gets_defaults() -> None:
    result = make_decoder().decode(encode(doc()), SOURCE)
    assert isinstance(result, Document)
    assert (result.id, result.tenant, result.ts_ms, result.text) == (
        "doc-1",
        "acme",
        TS,
        "hello world",
    )
    assert result.title == ""
    assert result.lang == ""
    assert result.meta == {}
    assert result.source is SOURCE


def test_null_optional_fields_are_accepted_as_empty() -> None:
    result = make_decoder().decode(encode(doc(title=None, lang=None, meta=None)), SOURCE)
    assert isinstance(result, Document)
    assert (result.title, result.lang, result.meta) == ("", "", {})


def test_surrounding_whitespace_and_unicode_text_are_fine() -> None:
    raw = b"  \n" + encode(doc(text="Gr\u00fc\u00dfe aus K\u00f6ln \U0001f600")) + b"\n "
    result = make_decoder().decode(raw, SOURCE)
    assert isinstance(result, Document)
    assert result.text == "Gr\u00fc\u00dfe aus K\u00f6ln \U0001f600"


def test_message_exactly_at_the_limit_is_accepted() -> None:
    raw = encode(doc())
    result = make_decoder(max_document_bytes=len(raw)).decode(raw, SOURCE)
    assert isinstance(result, Document)


def test_float_epoch_ms_is_truncated_to_int() -> None:
    result = make_decoder().decode(encode(doc(ts=1_735_689_600_123.9)), SOURCE)
    assert isinstance(result, Document)
    assert result.ts_ms == 1_735_689_600_123


def test_tenant_allowed_characters() -> None:
    for tenant in ("a", "Acme_Corp-01.eu", "x" * 128):
        result = make_decoder().decode(encode(doc(tenant=tenant)), SOURCE)
        assert isinstance(result, Document), tenant
        assert result.tenant == tenant


# --------------------------------------------------------------------------- decode failures


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"id": "x", ', id="truncated-object"),
        pytest.param(b'{"id": "x", "tenant": "acme", "ts": 1, "text": "hi"', id="missing-brace"),
        pytest.param(b"{id: 'x'}", id="not-json"),
        pytest.param(b"hello", id="bare-word"),
        pytest.param(b'{"a": 1,}', id="trailing-comma"),
        pytest.param(b"NaN", id="nan-literal"),
        pytest.param(b'{"id":"x","tenant":"acme","ts":NaN,"text":"t"}', id="nan-in-object"),
    ],
)
def test_invalid_json_is_a_decode_dead_letter(raw: bytes) -> None:
    dead = expect_dead(raw, STAGE_DECODE, "not valid JSON")
    assert dead.error_type == "JSONDecodeError"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"id":"bad-utf8","tenant":"acme","ts":1,"text":"\xff\xfe"}', id="ff-fe"),
        pytest.param(b'{"id":"x","tenant":"acme","ts":1,"text":"\xc3\x28"}', id="bad-2-byte"),
        pytest.param(b'{"id":"x","tenant":"acme","ts":1,"text":"\xed\xa0\x80"}', id="surrogate"),
    ],
)
def test_invalid_utf8_is_a_decode_dead_letter(raw: bytes) -> None:
    dead = expect_dead(raw, STAGE_DECODE, "UTF-8")
    assert dead.error_type == "JSONDecodeError"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"   ", id="spaces"),
        pytest.param(b"\r\n\t \n", id="whitespace"),
    ],
)
def test_empty_body_is_a_decode_dead_letter(raw: bytes) -> None:
    dead = expect_dead(raw, STAGE_DECODE, "empty")
    assert dead.error_type == "Empty"


def test_none_body_is_an_empty_dead_letter_with_empty_raw() -> None:
    dead = expect_dead(None, STAGE_DECODE, "empty")
    assert dead.raw == b""


@pytest.mark.parametrize("raw", [b"\x00", b"\x00\x00\x00\x00", b'{"id": "x"}\x00'])
def test_nul_bytes_are_a_decode_dead_letter(raw: bytes) -> None:
    expect_dead(raw, STAGE_DECODE, "not valid JSON")


def test_oversize_message_is_a_validate_dead_letter() -> None:
    raw = encode(doc(text="a" * 1000))
    result = make_decoder(max_document_bytes=len(raw) - 1).decode(raw, SOURCE, key=b"k")
    assert isinstance(result, DeadLetter)
    assert result.stage == STAGE_VALIDATE
    assert result.error_type == "TooLarge"
    assert str(len(raw)) in result.reason
    assert str(len(raw) - 1) in result.reason
    assert result.raw == raw
    assert result.key == b"k"
    assert result.failed_at_ms == NOW_MS


def test_oversize_check_comes_before_parsing() -> None:
    raw = b"\xff" * 100  # would be a decode error, but it is too big first
    result = make_decoder(max_document_bytes=10).decode(raw, SOURCE)
    assert isinstance(result, DeadLetter)
    assert result.stage == STAGE_VALIDATE
    assert result.error_type == "TooLarge"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[" * 100_000, id="open-arrays"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="closed-arrays"),
        pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, id="objects"),
        pytest.param(
            b'{"id":"x","tenant":"acme","ts":1,"text":"t","meta":'
            + b'{"a":' * 5_000
            + b"1"
            + b"}" * 5_001,
            id="deep-meta",
        ),
    ],
)
def test_deep_nesting_never_raises(raw: bytes) -> None:
    result = make_decoder(max_document_bytes=10 * len(raw)).decode(raw, SOURCE)
    assert isinstance(result, DeadLetter)
    assert result.stage in (STAGE_DECODE, STAGE_VALIDATE)
    assert result.raw == raw
    assert result.failed_at_ms == NOW_MS


@pytest.mark.parametrize("depth", [MAX_META_DEPTH + 1, 254, 1000])
def test_meta_nested_deeper_than_the_limit_is_rejected(depth: int) -> None:
    # Fuzz find: orjson reads 1024 levels but writes 254, so a document with meta 300 deep
    # decoded fine and then failed EnrichedDocument.to_json() in the middle of a batch.
    raw = (
        b'{"id":"x","tenant":"acme","ts":1,"text":"t","meta":'
        + b'{"a":' * (depth - 1)
        + b"[]"
        + b"}" * (depth - 1)
        + b"}"
    )
    dead = expect_dead(raw, STAGE_VALIDATE, "'meta'", "deeper than")
    assert dead.error_type == "InvalidDocument"


def test_meta_at_the_depth_limit_is_accepted_and_serializes() -> None:
    meta: Any = []
    for _ in range(MAX_META_DEPTH - 1):
        meta = {"a": meta}
    result = make_decoder().decode(encode(doc(meta=meta)), SOURCE)
    assert isinstance(result, Document)
    assert result.meta == meta
    orjson.dumps({"record": {"meta": result.meta}})  # what the enriched record does


def test_huge_number_that_overflows_double_is_rejected() -> None:
    raw = b'{"id":"x","tenant":"acme","ts":1e400,"text":"t"}'
    result = make_decoder().decode(raw, SOURCE)
    assert isinstance(result, DeadLetter)
    assert result.stage in (STAGE_DECODE, STAGE_VALIDATE)
    assert result.raw == raw


# --------------------------------------------------------------------------- validate failures


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        pytest.param([{"id": "x", "tenant": "acme", "ts": 1, "text": "t"}], "list", id="list"),
        pytest.param([], "list", id="empty-list"),
        pytest.param("just a string", "str", id="string"),
        pytest.param(42, "int", id="int"),
        pytest.param(4.5, "float", id="float"),
        pytest.param(True, "bool", id="bool"),
        pytest.param(None, "NoneType", id="null"),
    ],
)
def test_json_that_is_not_an_object_is_a_validate_dead_letter(value: Any, type_name: str) -> None:
    dead = expect_dead(encode(value), STAGE_VALIDATE, "JSON object", type_name)
    assert dead.error_type == "InvalidDocument"


@pytest.mark.parametrize("field", ["id", "tenant", "ts", "text"])
def test_missing_required_field(field: str) -> None:
    dead = expect_dead(encode(doc(**{field: ...})), STAGE_VALIDATE, "missing", f"'{field}'")
    assert dead.error_type == "InvalidDocument"


@pytest.mark.parametrize("field", ["id", "tenant", "ts", "text"])
def test_null_required_field_counts_as_missing(field: str) -> None:
    expect_dead(encode(doc(**{field: None})), STAGE_VALIDATE, "missing", f"'{field}'")


@pytest.mark.parametrize(
    ("fields", "needles"),
    [
        pytest.param({"id": 7}, ("'id'", "string", "int"), id="id-int"),
        pytest.param({"tenant": 42}, ("'tenant'", "string", "int"), id="tenant-int"),
        pytest.param({"tenant": ["acme"]}, ("'tenant'", "string", "list"), id="tenant-list"),
        pytest.param({"text": ["a", "b"]}, ("'text'", "string", "list"), id="text-list"),
        pytest.param({"text": {"body": "x"}}, ("'text'", "string", "dict"), id="text-dict"),
        pytest.param({"title": 5}, ("'title'", "string", "int"), id="title-int"),
        pytest.param({"lang": 1.5}, ("'lang'", "string", "float"), id="lang-float"),
        pytest.param({"meta": [1, 2]}, ("'meta'", "object", "list"), id="meta-list"),
        pytest.param({"meta": "x"}, ("'meta'", "object", "str"), id="meta-string"),
        pytest.param({"meta": 3}, ("'meta'", "object", "int"), id="meta-int"),
    ],
)
def test_wrong_types_are_validate_dead_letters(
    fields: dict[str, Any], needles: tuple[str, ...]
) -> None:
    dead = expect_dead(encode(doc(**fields)), STAGE_VALIDATE, *needles)
    assert dead.error_type == "InvalidDocument"


@pytest.mark.parametrize("meta", [[], False, 0, ""], ids=["empty-list", "false", "zero", "empty"])
def test_falsy_non_object_meta_is_rejected(meta: Any) -> None:
    expect_dead(encode(doc(meta=meta)), STAGE_VALIDATE, "'meta'")


@pytest.mark.parametrize("text", ["", " ", "\n\t  \r\n", "\u3000\u2003"])
def test_empty_or_whitespace_text_is_rejected(text: str) -> None:
    expect_dead(encode(doc(text=text)), STAGE_VALIDATE, "'text'", "empty")


def test_empty_id_is_rejected() -> None:
    expect_dead(encode(doc(id="")), STAGE_VALIDATE, "'id'", "empty")


def test_too_long_id_and_title_and_lang_are_rejected() -> None:
    expect_dead(encode(doc(id="x" * 257)), STAGE_VALIDATE, "'id'", "longer")
    expect_dead(encode(doc(title="t" * 4097)), STAGE_VALIDATE, "'title'", "longer")
    expect_dead(encode(doc(lang="l" * 33)), STAGE_VALIDATE, "'lang'", "longer")
    assert isinstance(make_decoder().decode(encode(doc(id="x" * 256)), SOURCE), Document)


@pytest.mark.parametrize(
    "tenant",
    ["", "ac me", "acme/eu", "acme:1", "t\u00e9nant", "a;DROP TABLE", "x" * 129, "\x00"],
)
def test_bad_tenant_characters_are_rejected(tenant: str) -> None:
    expect_dead(encode(doc(tenant=tenant)), STAGE_VALIDATE, "'tenant'")


def test_tenant_with_trailing_newline_is_rejected() -> None:
    expect_dead(encode(doc(tenant="acme\n")), STAGE_VALIDATE, "'tenant'")


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2025-01-01T00:00:00Z", 1_735_689_600_000),
        ("2025-01-01T00:00:00.123Z", 1_735_689_600_123),
        ("2025-01-01T00:00:00+00:00", 1_735_689_600_000),
        ("2025-01-01T02:00:00+02:00", 1_735_689_600_000),
        ("2024-12-31T19:00:00.5-05:00", 1_735_689_600_500),
        ("2025-01-01 00:00:00Z", 1_735_689_600_000),
        ("1970-01-01T00:00:00Z", 0),
    ],
)
def test_iso_8601_with_time_zone_is_accepted(ts: str, expected: int) -> None:
    assert parse_ts_ms(ts) == expected
    result = make_decoder().decode(encode(doc(ts=ts)), SOURCE)
    assert isinstance(result, Document)
    assert result.ts_ms == expected


def test_iso_8601_ms_agree_with_datetime_for_a_range_of_2025_values() -> None:
    base = datetime(2025, 3, 1, tzinfo=UTC)
    base_ms = int(base.timestamp()) * 1000
    for ms in range(0, 5_000, 7):
        stamp = datetime.fromtimestamp((base_ms + ms) / 1000, tz=UTC)
        assert parse_ts_ms(stamp.isoformat(timespec="milliseconds")) == base_ms + ms


def test_iso_8601_ms_are_exact() -> None:
    assert parse_ts_ms("1970-01-25T08:59:41.513Z") == 2_105_981_513


@pytest.mark.parametrize(
    "ts", ["2025-01-01T00:00:00", "2025-01-01T00:00:00.123", "2025-01-01", "2025-01-01 10:00"]
)
def test_iso_8601_without_time_zone_is_rejected(ts: str) -> None:
    with pytest.raises(InvalidDocument, match="time zone"):
        parse_ts_ms(ts)
    expect_dead(encode(doc(ts=ts)), STAGE_VALIDATE, "'ts'", "time zone")


@pytest.mark.parametrize("ts", ["yesterday", "", "2025-13-01T00:00:00Z", "1735689600000x"])
def test_unparseable_ts_string_is_rejected(ts: str) -> None:
    expect_dead(encode(doc(ts=ts)), STAGE_VALIDATE, "'ts'")


@pytest.mark.parametrize("ts", [True, False])
def test_boolean_ts_is_rejected(ts: bool) -> None:
    with pytest.raises(InvalidDocument, match="boolean"):
        parse_ts_ms(ts)
    expect_dead(encode(doc(ts=ts)), STAGE_VALIDATE, "'ts'", "boolean")


@pytest.mark.parametrize("ts", [-1, -1_735_689_600_000, -0.5])
def test_negative_ts_is_rejected(ts: float) -> None:
    expect_dead(encode(doc(ts=ts)), STAGE_VALIDATE, "'ts'", "out of range")


def test_pre_epoch_iso_ts_is_rejected() -> None:
    expect_dead(encode(doc(ts="1969-12-31T23:59:59Z")), STAGE_VALIDATE, "'ts'")


def _raw_ts(literal: str) -> bytes:
    return b'{"id":"x","tenant":"acme","ts":' + literal.encode() + b',"text":"t"}'


@pytest.mark.parametrize(
    "literal",
    ["253402300800000", "1000000000000000000", "18446744073709551616", "1e300", "1.7e308"],
    ids=["year-10000", "1e18", "2^64", "1e300", "near-max-double"],
)
def test_huge_ts_is_rejected(literal: str) -> None:
    expect_dead(_raw_ts(literal), STAGE_VALIDATE, "'ts'", "out of range")


def test_max_ts_is_accepted() -> None:
    # 2299-12-31T23:59:59.999Z: the last millisecond ClickHouse's DateTime64(3) holds.
    assert parse_ts_ms(10_413_791_999_999) == 10_413_791_999_999
    assert parse_ts_ms("2299-12-31T23:59:59.999Z") == 10_413_791_999_999
    assert parse_ts_ms(0) == 0


@pytest.mark.parametrize(
    "ts",
    [10_413_792_000_000, 253_402_300_799_999, "2300-01-01T00:00:00Z", "9999-12-31T23:59:59Z"],
)
def test_ts_past_what_clickhouse_stores_is_rejected(ts: int | str) -> None:
    # Fuzz find: such a document was stored, but its item vector failed in the sink.
    expect_dead(encode(doc(ts=ts)), STAGE_VALIDATE, "'ts'", "out of range")


def test_iso_ts_pushed_past_the_range_by_its_offset_is_rejected() -> None:
    # Fuzz find: 9999-12-31T23:59:59-23:59 is year 10000 in UTC; it passed decode, and an
    # event with it crashed the sink (event_row: "year 10000 is out of range").
    ts = "9999-12-31T23:59:59-23:59"
    expect_dead(encode(doc(ts=ts)), STAGE_VALIDATE, "'ts'", "out of range")
    with pytest.raises(InvalidDocument, match="out of range"):
        parse_ts_ms(ts)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_parse_ts_ms_rejects_nan_and_infinity(value: float) -> None:
    with pytest.raises(InvalidDocument, match="out of range"):
        parse_ts_ms(value)


@pytest.mark.parametrize("value", [None, [1], {"ms": 1}, b"1"])
def test_parse_ts_ms_rejects_other_types(value: Any) -> None:
    with pytest.raises(InvalidDocument, match="'ts'"):
        parse_ts_ms(value)


def test_ts_reason_truncates_long_garbage() -> None:
    dead = expect_dead(encode(doc(ts="z" * 10_000)), STAGE_VALIDATE, "'ts'")
    assert len(dead.reason) < 200


# --------------------------------------------------------------------------- validate_document


def test_validate_document_raises_invalid_document_directly() -> None:
    with pytest.raises(InvalidDocument, match="JSON object"):
        validate_document(["x"], SOURCE)
    with pytest.raises(InvalidDocument, match="missing required field 'text'"):
        validate_document({"id": "x", "tenant": "acme", "ts": 1}, SOURCE)
    assert issubclass(InvalidDocument, ValueError)


def test_validate_document_keeps_extra_fields_out_and_meta_in() -> None:
    document = validate_document(doc(extra="ignored", meta={"k": "v"}), SOURCE)
    assert document.meta == {"k": "v"}
    assert document.source == SOURCE


def test_key_is_kept_on_dead_letters() -> None:
    dead = expect_dead(b"{", STAGE_DECODE, key=b"acme:doc-1")
    assert dead.key == b"acme:doc-1"


def test_default_clock_gives_current_time() -> None:
    before = datetime.now(UTC).timestamp() * 1000
    dead = DocumentDecoder(MAX_BYTES).decode(b"{", SOURCE)
    after = datetime.now(UTC).timestamp() * 1000
    assert isinstance(dead, DeadLetter)
    assert before - 1 <= dead.failed_at_ms <= after + 1


# --------------------------------------------------------------------------- corpus


def test_every_corpus_bad_message_becomes_a_dead_letter() -> None:
    decoder = make_decoder()
    messages = bad_messages()
    assert messages
    for i, (raw, what) in enumerate(messages):
        source = Source("aimass.documents", 0, i, TS)
        result = decoder.decode(raw, source)
        assert isinstance(result, DeadLetter), what
        assert result.stage in (STAGE_DECODE, STAGE_VALIDATE), what
        assert result.raw == raw, what
        assert result.source == source, what
        assert result.failed_at_ms == NOW_MS, what
        assert result.reason, what


def test_every_generated_document_decodes() -> None:
    decoder = make_decoder()
    documents = generate_documents(200)
    assert len(documents) == 200
    for i, obj in enumerate(documents):
        source = Source("aimass.documents", i % 3, i, TS)
        result = decoder.decode(orjson.dumps(obj), source)
        assert isinstance(result, Document), (obj["id"], result)
        assert result.id == obj["id"]
        assert result.tenant == obj["tenant"]
        assert result.ts_ms == obj["ts"]
        assert result.text == obj["text"]
        assert result.title == obj["title"]
        assert result.lang == obj["lang"]
        assert result.meta == obj["meta"]
        assert result.source == source


# --------------------------------------------------------------------- small input gaps


@pytest.mark.parametrize("tenant", [".", "..", "...", ".hidden", "a..b", "..acme", "acme.."])
def test_dot_only_and_path_like_tenants_are_rejected(tenant: str) -> None:
    result = make_decoder().decode(encode(doc(tenant=tenant)), SOURCE)
    assert isinstance(result, DeadLetter), tenant
    assert result.stage == STAGE_VALIDATE
    assert "tenant" in result.reason and "'..'" in result.reason


@pytest.mark.parametrize("tenant", ["acme", "eu.acme-1", "a.b.c", "acme.", "_x", "A-9"])
def test_ordinary_tenants_with_dots_are_accepted(tenant: str) -> None:
    assert isinstance(make_decoder().decode(encode(doc(tenant=tenant)), SOURCE), Document)


@pytest.mark.parametrize(
    "text",
    ["\u200b", "\u200b\u200c\u200d\u2060", "\ufeff", " \u200b\n\t\u00a0", "\u2028\u2029", "\u00ad"],
)
def test_a_text_of_only_invisible_characters_is_empty(text: str) -> None:
    result = make_decoder().decode(encode(doc(text=text)), SOURCE)
    assert isinstance(result, DeadLetter)
    assert result.reason.startswith("field 'text' is empty")


@pytest.mark.parametrize("text", ["\u200bx", "é", "🤒", "\u0301a", "日本"])
def test_a_text_with_anything_visible_is_kept(text: str) -> None:
    result = make_decoder().decode(encode(doc(text=text)), SOURCE)
    assert isinstance(result, Document) and result.text == text


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b'{"id": "a", "text": "\xff"}', "byte 0xff at offset 21: invalid start byte"),
        (b'{"id": "\xed\xa0\x80"}', "byte 0xed at offset 8: invalid continuation byte"),
        (b'{"id": "caf\xc3"}', "byte 0xc3 at offset 11: invalid continuation byte"),
    ],
)
def test_invalid_utf8_says_which_byte_and_where(raw: bytes, where: str) -> None:
    result = make_decoder().decode(raw, SOURCE)
    assert isinstance(result, DeadLetter) and result.stage == STAGE_DECODE
    assert result.reason == f"message is not valid UTF-8: {where}"
    assert "surrogates" not in result.reason


def test_a_utf8_byte_order_mark_is_not_part_of_the_document() -> None:
    raw = b"\xef\xbb\xbf" + encode(doc())
    result = make_decoder().decode(raw, SOURCE)
    assert isinstance(result, Document) and result.id == "doc-1"


@pytest.mark.parametrize(
    ("version", "ok"),
    [(None, True), (0, True), (7, True), (2**63 - 1, True), (2**63, False), (-1, False),
     (True, False), ("3", False), (1.5, False)],
)  # fmt: skip
def test_the_optional_version_field(version: Any, ok: bool) -> None:
    result = make_decoder().decode(encode(doc(version=version)), SOURCE)
    if ok:
        assert isinstance(result, Document) and result.version == version
    else:
        assert isinstance(result, DeadLetter) and "'version'" in result.reason


def test_row_versions_order_by_explicit_version_then_kafka_time_then_offset() -> None:
    from stream_aimass.records import row_version

    assert row_version(None, 1000, 5) < row_version(None, 1000, 6) < row_version(None, 1001, 0)
    assert row_version(3, 1000, 0) > row_version(2, 9_999_999, 99)
    assert row_version(None, -1, 4) == row_version(None, 0, 4)  # no Kafka timestamp
    assert row_version(2**63 - 1, 0, 2**63) < 2**128
