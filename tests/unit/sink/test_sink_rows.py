"""Unit tests for stream_aimass.sink.rows: row building and the retrying writer.

(Named test_sinks_clickhouse.py so it cannot clash with a test of stream_aimass/clickhouse.py.)
"""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_aimass.records import (
    MAX_DLQ_RAW_BYTES,
    Category,
    DeadLetter,
    Document,
    EnrichedDocument,
    ModelRef,
    Source,
)
from stream_aimass.sink.rows import (
    CLASSIFICATION_COLUMNS,
    DEAD_LETTER_COLUMNS,
    DOCUMENT_COLUMNS,
    ENTITY_MENTION_COLUMNS,
    RowError,
    classification_rows,
    dead_letter_row,
    dead_letter_row_of,
    document_row,
    entity_mention_rows,
)
from stream_aimass.sink.writer import INSERT_SETTINGS, ClickHouseWriter, InsertBatch

TS_MS = 1_735_689_600_123  # 2025-01-01T00:00:00.123Z
SRC_TS_MS = 1_735_689_601_000
ENRICHED_AT_MS = 1_735_689_602_250
SOURCE = Source("aimass.documents", 2, 4711, SRC_TS_MS)


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def enriched(**document_fields: Any) -> EnrichedDocument:
    fields: dict[str, Any] = {
        "id": "doc-7",
        "tenant": "acme",
        "ts_ms": TS_MS,
        "text": "Northbridge United win the cup",
        "source": SOURCE,
        "title": "Cup final",
        "lang": "en",
        "meta": {"category_hint": "sports"},
    }
    fields.update(document_fields)
    return EnrichedDocument(
        document=Document(**fields),
        tokens=12,
        categories=(Category("business", 0.1), Category("sports", 0.85), Category("health", 0.05)),
        embedding=np.arange(8, dtype="<f2").tobytes(),
        embedding_dim=8,
        model=ModelRef("all-MiniLM-L6-v2", "abc123"),
        timings_ms={"tokenize": 0.5, "encode": 3.25},
        enriched_at_ms=ENRICHED_AT_MS,
    )


# Keys the producer added later; records written before them lack them.
NEWER_KEYS = (
    "compute_ms", "models", "classifications", "entities", "entities_model", "version",
    "summary", "generated",
)  # fmt: skip


def legacy(value: bytes) -> bytes:
    """``value`` as an older producer wrote it, without the newer keys."""
    rec = orjson.loads(value)
    for key in NEWER_KEYS:
        rec.pop(key, None)
    return orjson.dumps(rec)


def row_dict(row: list[Any], columns: list[str]) -> dict[str, Any]:
    assert len(row) == len(columns)
    return dict(zip(columns, row, strict=True))


# --------------------------------------------------------------------------- document_row


def test_document_row_has_the_columns_in_order_with_right_values() -> None:
    value = legacy(enriched().to_json())
    row = document_row(value, "aimass.enriched", 5, 99)
    assert len(row) == len(DOCUMENT_COLUMNS)
    assert row == [
        "acme",
        "doc-7",
        utc(TS_MS),
        "Cup final",
        "en",
        len("Northbridge United win the cup"),
        12,
        "sports",
        ["business", "sports", "health"],
        [0.1, 0.85, 0.05],
        '{"category_hint":"sports"}',
        "all-MiniLM-L6-v2",
        "abc123",
        "aimass.documents",
        2,
        4711,
        utc(SRC_TS_MS),
        "aimass.enriched",
        5,
        99,
        utc(ENRICHED_AT_MS),
        0.0,
        {},
        (SRC_TS_MS << 64) | 4711,  # the version: the source's Kafka timestamp, then offset
        "",  # summary, its sentences' starts and ends, generated summary, headline: none
        [],
        [],
        "",
        "",
    ]


def test_document_columns_keep_source_ts_where_the_sink_finds_it() -> None:
    row = document_row(enriched().to_json(), "t", 0, 0)
    assert row[DOCUMENT_COLUMNS.index("source_ts")] == utc(SRC_TS_MS)
    assert DOCUMENT_COLUMNS[-8:] == [
        "compute_ms", "models", "version",
        "summary", "summary_starts", "summary_ends", "generated_summary", "headline",
    ]  # fmt: skip


def test_document_row_carries_compute_ms_and_models() -> None:
    rec = orjson.loads(enriched().to_json())
    rec["compute_ms"] = 12.5
    rec["models"] = {"all-MiniLM-L6-v2": "a1b2c3d4e5f6", "banking77": "0f9e8d7c6b5a"}
    row = row_dict(document_row(orjson.dumps(rec), "t", 0, 0), DOCUMENT_COLUMNS)
    assert row["compute_ms"] == 12.5 and type(row["compute_ms"]) is float
    assert row["models"] == {"all-MiniLM-L6-v2": "a1b2c3d4e5f6", "banking77": "0f9e8d7c6b5a"}


@pytest.mark.parametrize(
    ("compute_ms", "models"),
    [(..., ...), (None, None), (0, {})],
    ids=["absent", "null", "zero-empty"],
)
def test_document_row_defaults_compute_ms_and_models(compute_ms: Any, models: Any) -> None:
    rec = orjson.loads(legacy(enriched().to_json()))
    if compute_ms is not ...:
        rec.update(compute_ms=compute_ms, models=models)
    row = row_dict(document_row(orjson.dumps(rec), "t", 0, 0), DOCUMENT_COLUMNS)
    assert (row["compute_ms"], row["models"]) == (0.0, {})
    assert type(row["compute_ms"]) is float


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("compute_ms", "fast"),
        ("compute_ms", [1.0]),
        ("models", ["all-MiniLM-L6-v2"]),
        ("models", "all-MiniLM-L6-v2"),
        ("models", {"banking77": 7}),
        ("models", {"banking77": None}),
    ],
    ids=["ms-word", "ms-list", "models-list", "models-string", "version-int", "version-null"],
)
def test_document_row_rejects_malformed_compute_ms_and_models(key: str, value: Any) -> None:
    rec = orjson.loads(enriched().to_json())
    rec[key] = value
    with pytest.raises(RowError, match="enriched record is malformed"):
        document_row(orjson.dumps(rec), "aimass.enriched", 0, 0)


def test_document_row_datetimes_are_utc_aware_with_millisecond_precision() -> None:
    row = row_dict(document_row(enriched().to_json(), "t", 0, 0), DOCUMENT_COLUMNS)
    for column in ("ts", "source_ts", "enriched_at"):
        value = row[column]
        assert isinstance(value, datetime)
        assert value.tzinfo is not None
        assert value.utcoffset() is not None and value.utcoffset().total_seconds() == 0
    assert row["ts"] == datetime(2025, 1, 1, 0, 0, 0, 123_000, tzinfo=UTC)
    assert row["source_ts"] == datetime(2025, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert row["enriched_at"] == datetime(2025, 1, 1, 0, 0, 2, 250_000, tzinfo=UTC)


def test_document_row_types() -> None:
    row = row_dict(document_row(enriched().to_json(), "t", 1, 2), DOCUMENT_COLUMNS)
    for column in ("text_chars", "tokens", "source_partition", "source_offset"):
        assert type(row[column]) is int, column
    assert all(type(s) is float for s in row["category_scores"])
    assert orjson.loads(row["meta"]) == {"category_hint": "sports"}


def test_document_row_empty_optionals() -> None:
    record = enriched(title="", lang="", meta={})
    row = row_dict(document_row(record.to_json(), "t", 0, 0), DOCUMENT_COLUMNS)
    assert (row["title"], row["lang"], row["meta"]) == ("", "", "{}")


def test_document_row_null_optionals_become_empty() -> None:
    rec = orjson.loads(enriched().to_json())
    rec.update(title=None, lang=None, meta=None)
    rec.pop("title")
    row = row_dict(document_row(orjson.dumps(rec), "t", 0, 0), DOCUMENT_COLUMNS)
    assert (row["title"], row["lang"], row["meta"]) == ("", "", "{}")


def test_document_row_without_categories() -> None:
    record = EnrichedDocument(
        document=enriched().document,
        tokens=0,
        categories=(),
        embedding=b"",
        embedding_dim=0,
        model=ModelRef("m", "v"),
        timings_ms={},
        enriched_at_ms=ENRICHED_AT_MS,
    )
    row = row_dict(document_row(record.to_json(), "t", 0, 0), DOCUMENT_COLUMNS)
    assert row["category_labels"] == []
    assert row["category_scores"] == []
    assert row["top_category"] == ""


def _mutated(path: tuple[str, ...], value: Any = ..., *, delete: bool = False) -> bytes:
    rec = orjson.loads(enriched().to_json())
    target = rec
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return orjson.dumps(rec)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b"[]", id="list"),
        pytest.param(b'"str"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b"{}", id="empty-object"),
        pytest.param(_mutated(("tenant",), delete=True), id="no-tenant"),
        pytest.param(_mutated(("id",), delete=True), id="no-id"),
        pytest.param(_mutated(("ts",), delete=True), id="no-ts"),
        pytest.param(_mutated(("ts",), "yesterday"), id="ts-string"),
        pytest.param(_mutated(("source",), delete=True), id="no-source"),
        pytest.param(_mutated(("source", "offset"), delete=True), id="no-source-offset"),
        pytest.param(_mutated(("source", "partition"), "p"), id="partition-string"),
        pytest.param(_mutated(("categories",), None), id="categories-null"),
        pytest.param(_mutated(("categories",), [{"label": "x"}]), id="category-no-score"),
        pytest.param(_mutated(("categories",), [{"label": "x", "score": "hi"}]), id="score-str"),
        pytest.param(_mutated(("model",), "m"), id="model-string"),
        pytest.param(_mutated(("tokens",), None), id="tokens-null"),
        pytest.param(_mutated(("enriched_at_ms",), delete=True), id="no-enriched-at"),
    ],
)
def test_malformed_enriched_records_raise_row_error(value: bytes) -> None:
    with pytest.raises(RowError, match="enriched record is malformed"):
        document_row(value, "aimass.enriched", 0, 0)


def test_row_error_is_a_value_error() -> None:
    assert issubclass(RowError, ValueError)


def test_null_source_timestamp_is_a_row_error() -> None:
    # The schema requires an integer Kafka timestamp; the row builder agrees.
    with pytest.raises(RowError):
        document_row(_mutated(("source", "timestamp_ms"), None), "aimass.enriched", 0, 0)


# --------------------------------------------------------------------------- classification_rows


def intent(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "classifier": "intent",
        "model": {"name": "banking77", "version": "0f9e8d7c6b5a"},
        "multi_label": False,
        "labels": ["card_arrival", "lost_card", "top_up"],
        "scores": [0.91, 0.06, 0.03],
        "predicted": ["card_arrival"],
        "top": "card_arrival",
    }
    entry.update(overrides)
    return entry


def topics_entry() -> dict[str, Any]:
    return {
        "classifier": "topics",
        "model": {"name": "topics-zs", "version": "77aa"},
        "multi_label": True,
        "labels": ["sports", "business"],
        "scores": [0.8, 0.7],
        "predicted": ["sports", "business"],
        "top": "sports",
    }


def classified(*entries: Any) -> bytes:
    rec = orjson.loads(enriched().to_json())
    rec["classifications"] = list(entries)
    return orjson.dumps(rec)


def test_classification_rows_one_row_per_classifier_in_column_order() -> None:
    rows = classification_rows(classified(intent(), topics_entry()), "aimass.enriched", 5, 99)
    assert len(rows) == 2
    assert all(len(row) == len(CLASSIFICATION_COLUMNS) for row in rows)
    assert rows[0] == [
        "acme",
        "doc-7",
        utc(TS_MS),
        "intent",
        "banking77",
        "0f9e8d7c6b5a",
        0,
        "card_arrival",
        ["card_arrival"],
        ["card_arrival", "lost_card", "top_up"],
        [0.91, 0.06, 0.03],
        "aimass.enriched",
        5,
        99,
        utc(ENRICHED_AT_MS),
        (SRC_TS_MS << 64) | 4711,
    ]
    multi = row_dict(rows[1], CLASSIFICATION_COLUMNS)
    assert (multi["classifier"], multi["multi_label"]) == ("topics", 1)
    assert multi["predicted"] == ["sports", "business"]


def test_classification_rows_types() -> None:
    entry = intent(scores=[1, 0, 0])  # JSON integers are still scores
    row = row_dict(classification_rows(classified(entry), "t", 1, 2)[0], CLASSIFICATION_COLUMNS)
    assert all(type(s) is float for s in row["scores"])
    assert type(row["multi_label"]) is int
    assert row["ts"].tzinfo is not None and row["enriched_at"].tzinfo is not None


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(legacy(enriched().to_json()), id="absent"),
        pytest.param(classified(), id="empty"),
        pytest.param(_mutated(("classifications",), None), id="null"),
    ],
)
def test_records_without_classifications_give_no_rows(value: bytes) -> None:
    assert classification_rows(value, "aimass.enriched", 0, 0) == []


def test_classification_optionals_default() -> None:
    entry = intent()
    for key in ("multi_label", "predicted", "top"):
        del entry[key]
    row = row_dict(classification_rows(classified(entry), "t", 0, 0)[0], CLASSIFICATION_COLUMNS)
    assert (row["multi_label"], row["predicted"], row["top_label"]) == (0, [], "")


def test_classification_with_no_labels_is_a_row() -> None:
    entry = intent(labels=[], scores=[], predicted=[], top=None)
    row = row_dict(classification_rows(classified(entry), "t", 0, 0)[0], CLASSIFICATION_COLUMNS)
    assert (row["labels"], row["scores"], row["top_label"]) == ([], [], "")


def _without(key: str) -> dict[str, Any]:
    entry = intent()
    del entry[key]
    return entry


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b"[]", id="list"),
        pytest.param(b"null", id="null"),
        pytest.param(_mutated(("tenant",), delete=True), id="no-tenant"),
        pytest.param(_mutated(("ts",), "yesterday"), id="ts-string"),
        pytest.param(_mutated(("enriched_at_ms",), delete=True), id="no-enriched-at"),
        pytest.param(_mutated(("classifications",), {"intent": {}}), id="not-a-list"),
        pytest.param(classified("intent"), id="entry-string"),
        pytest.param(classified(_without("classifier")), id="no-classifier"),
        pytest.param(classified(intent(classifier="")), id="classifier-empty"),
        pytest.param(classified(intent(classifier=7)), id="classifier-int"),
        pytest.param(classified(_without("model")), id="no-model"),
        pytest.param(classified(intent(model={"name": "banking77"})), id="no-model-version"),
        pytest.param(classified(intent(model="banking77")), id="model-string"),
        pytest.param(classified(intent(model={"name": 1, "version": "v"})), id="model-name-int"),
        pytest.param(classified(_without("labels")), id="no-labels"),
        pytest.param(classified(_without("scores")), id="no-scores"),
        pytest.param(classified(intent(scores=[0.9, 0.1])), id="fewer-scores"),
        pytest.param(classified(intent(scores=[0.9, "hi", 0.0])), id="score-string"),
        pytest.param(classified(intent(scores=None)), id="scores-null"),
        pytest.param(classified(intent(labels="card_arrival")), id="labels-string"),
        pytest.param(classified(intent(labels=[1, 2, 3])), id="labels-int"),
        pytest.param(classified(intent(predicted="card_arrival")), id="predicted-string"),
        pytest.param(classified(intent(multi_label="false")), id="multi-label-string"),
        pytest.param(classified(intent(top=["card_arrival"])), id="top-list"),
        pytest.param(classified(intent(), intent()), id="classifier-twice"),
    ],
)
def test_malformed_classifications_raise_row_error(value: bytes) -> None:
    with pytest.raises(RowError, match="malformed classifications"):
        classification_rows(value, "aimass.enriched", 0, 0)


# --------------------------------------------------------------------------- entity_mention_rows

ENTITIES_MODEL = {
    "ner": {"name": "wikigold-ner", "version": "abc123def456"},
    "kb": {"name": "demo-kb", "version": "0123456789ab"},
}


def apple(**overrides: Any) -> dict[str, Any]:
    mention: dict[str, Any] = {
        "text": "Apple",
        "start": 0,
        "end": 5,
        "label": "ORG",
        "entity_id": "company/apple",
        "name": "Apple Inc.",
        "score": 0.83,
    }
    mention.update(overrides)
    return mention


def zorblatt() -> dict[str, Any]:
    return {
        "text": "Zorblatt Ltd",
        "start": 40,
        "end": 52,
        "label": "ORG",
        "entity_id": None,
        "name": None,
        "score": 0.12,
    }


def with_entities(*mentions: Any, model: Any = ENTITIES_MODEL) -> bytes:
    rec = orjson.loads(legacy(enriched().to_json()))
    rec["entities"] = list(mentions)
    if model is not ...:
        rec["entities_model"] = model
    return orjson.dumps(rec)


def test_entity_mention_rows_one_row_per_mention_in_column_order() -> None:
    rows = entity_mention_rows(with_entities(apple(), zorblatt()), "aimass.enriched", 5, 99)
    assert len(rows) == 2
    assert all(len(row) == len(ENTITY_MENTION_COLUMNS) for row in rows)
    assert rows[0] == [
        "acme",
        "doc-7",
        utc(TS_MS),
        0,
        5,
        "Apple",
        "ORG",
        "company/apple",
        "Apple Inc.",
        1,
        0.83,
        "wikigold-ner",
        "abc123def456",
        "demo-kb",
        "0123456789ab",
        "aimass.enriched",
        5,
        99,
        utc(ENRICHED_AT_MS),
        (SRC_TS_MS << 64) | 4711,
    ]


def test_a_nil_mention_is_stored_unlinked_with_empty_id_and_name() -> None:
    (row,) = entity_mention_rows(with_entities(zorblatt()), "t", 0, 0)
    nil = row_dict(row, ENTITY_MENTION_COLUMNS)
    assert (nil["entity_id"], nil["entity_name"], nil["linked"]) == ("", "", 0)
    assert (nil["mention_start"], nil["mention_end"], nil["mention_text"]) == (
        40,
        52,
        "Zorblatt Ltd",
    )
    assert nil["score"] == 0.12


def test_an_empty_entity_id_is_nil_too() -> None:
    (row,) = entity_mention_rows(with_entities(apple(entity_id="", name=None)), "t", 0, 0)
    assert row_dict(row, ENTITY_MENTION_COLUMNS)["linked"] == 0


def test_entity_mention_rows_types() -> None:
    (row,) = entity_mention_rows(with_entities(apple(score=1)), "t", 1, 2)
    mention = row_dict(row, ENTITY_MENTION_COLUMNS)
    assert type(mention["score"]) is float  # a JSON integer is still a score
    for column in ("mention_start", "mention_end", "linked", "enriched_partition"):
        assert type(mention[column]) is int, column
    assert mention["ts"].tzinfo is not None and mention["enriched_at"].tzinfo is not None


@pytest.mark.parametrize(
    "model",
    [..., None, {}, {"ner": None, "kb": None}, {"ner": {"name": None, "version": None}}],
    ids=["absent", "null", "empty", "null-refs", "null-fields"],
)
def test_entity_models_default_to_empty(model: Any) -> None:
    (row,) = entity_mention_rows(with_entities(apple(), model=model), "t", 0, 0)
    mention = row_dict(row, ENTITY_MENTION_COLUMNS)
    assert [mention[c] for c in ("ner_model", "ner_version", "kb_name", "kb_version")] == [""] * 4


def test_a_zero_width_mention_and_nested_spans_are_rows() -> None:
    mentions = [apple(start=3, end=3, text=""), apple(start=0, end=9), apple()]
    rows = entity_mention_rows(with_entities(*mentions), "t", 0, 0)
    assert [(r[3], r[4]) for r in rows] == [(3, 3), (0, 9), (0, 5)]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(legacy(enriched().to_json()), id="absent"),
        pytest.param(with_entities(), id="empty"),
        pytest.param(with_entities(model=...), id="empty-no-model"),
        pytest.param(_mutated(("entities",), None), id="null"),
    ],
)
def test_records_without_entities_give_no_rows(value: bytes) -> None:
    assert entity_mention_rows(value, "aimass.enriched", 0, 0) == []


def _mention_without(key: str) -> dict[str, Any]:
    mention = apple()
    del mention[key]
    return mention


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b"[]", id="list"),
        pytest.param(b"null", id="null"),
        pytest.param(_mutated(("tenant",), delete=True), id="no-tenant"),
        pytest.param(_mutated(("ts",), "yesterday"), id="ts-string"),
        pytest.param(_mutated(("entities",), {"company/apple": {}}), id="not-a-list"),
        pytest.param(with_entities("Apple"), id="mention-string"),
        pytest.param(with_entities(None), id="mention-null"),
        pytest.param(with_entities(_mention_without("text")), id="no-text"),
        pytest.param(with_entities(_mention_without("label")), id="no-label"),
        pytest.param(with_entities(_mention_without("start")), id="no-start"),
        pytest.param(with_entities(_mention_without("end")), id="no-end"),
        pytest.param(with_entities(_mention_without("score")), id="no-score"),
        pytest.param(with_entities(apple(text=None)), id="text-null"),
        pytest.param(with_entities(apple(label="")), id="label-empty"),
        pytest.param(with_entities(apple(label=7)), id="label-int"),
        pytest.param(with_entities(apple(start="0")), id="start-string"),
        pytest.param(with_entities(apple(end=5.0)), id="end-float"),
        pytest.param(with_entities(apple(start=True)), id="start-bool"),
        pytest.param(with_entities(apple(start=None)), id="start-null"),
        pytest.param(with_entities(apple(start=-1)), id="start-negative"),
        pytest.param(with_entities(apple(end=2**32)), id="end-over-uint32"),
        pytest.param(with_entities(apple(start=6, end=5)), id="start-after-end"),
        pytest.param(with_entities(apple(score="high")), id="score-string"),
        pytest.param(with_entities(apple(score=None)), id="score-null"),
        pytest.param(with_entities(apple(score=True)), id="score-bool"),
        pytest.param(with_entities(apple(entity_id=7)), id="entity-id-int"),
        pytest.param(with_entities(apple(entity_id=False)), id="entity-id-false"),
        pytest.param(with_entities(apple(name=["Apple Inc."])), id="name-list"),
        pytest.param(with_entities(apple(), apple(label="MISC")), id="span-twice"),
        pytest.param(with_entities(apple(), model="wikigold-ner"), id="model-string"),
        pytest.param(with_entities(apple(), model={"ner": "wikigold-ner"}), id="ner-string"),
        pytest.param(with_entities(apple(), model={"kb": {"version": 1}}), id="kb-version-int"),
    ],
)
def test_malformed_entities_raise_row_error(value: bytes) -> None:
    with pytest.raises(RowError, match="malformed entities"):
        entity_mention_rows(value, "aimass.enriched", 0, 0)


# --------------------------------------------------------------------------- dead_letter_row


def dead(raw: bytes, **kwargs: Any) -> DeadLetter:
    fields: dict[str, Any] = {
        "stage": "validate",
        "reason": "missing required field 'text'",
        "raw": raw,
        "source": SOURCE,
        "failed_at_ms": ENRICHED_AT_MS,
        "error_type": "InvalidDocument",
        "key": b"acme:doc-7",
    }
    fields.update(kwargs)
    return DeadLetter(**fields)


def test_dead_letter_row_columns_and_values() -> None:
    raw = b'{"id": "no-text", "tenant": "acme", "ts": 1}'
    row = dead_letter_row(dead(raw).to_json())
    assert len(row) == len(DEAD_LETTER_COLUMNS)
    assert row == [
        "aimass.documents",
        2,
        4711,
        utc(SRC_TS_MS),
        "validate",
        "missing required field 'text'",
        "InvalidDocument",
        base64.b64encode(raw).decode("ascii"),
        len(raw),
        0,
        raw.decode(),
        utc(ENRICHED_AT_MS),
        "raw",
        "",
    ]


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00\x00\x00\x00", b"\xff\xfe\x80", bytes(range(256)), b'{"id": "x", '],
    ids=["empty", "nul", "bad-utf8", "all-bytes", "truncated"],
)
def test_dead_letter_row_round_trips_raw_bytes(raw: bytes) -> None:
    row = row_dict(dead_letter_row(dead(raw).to_json()), DEAD_LETTER_COLUMNS)
    assert base64.b64decode(row["raw_b64"]) == raw
    assert row["raw_bytes"] == len(raw)
    assert row["raw_truncated"] == 0
    assert isinstance(row["raw_preview"], str)
    assert row["raw_preview"] == raw.decode("utf-8", errors="replace")


def test_dead_letter_row_for_raw_over_the_dlq_limit() -> None:
    raw = b"x" * (MAX_DLQ_RAW_BYTES + 1000)
    row = row_dict(dead_letter_row(dead(raw).to_json()), DEAD_LETTER_COLUMNS)
    assert base64.b64decode(row["raw_b64"]) == raw[:MAX_DLQ_RAW_BYTES]
    assert row["raw_bytes"] == len(raw)
    assert row["raw_truncated"] == 1
    assert row["raw_preview"] == "x" * 500


def test_dead_letter_row_at_exactly_the_dlq_limit_is_not_truncated() -> None:
    raw = b"y" * MAX_DLQ_RAW_BYTES
    row = row_dict(dead_letter_row(dead(raw).to_json()), DEAD_LETTER_COLUMNS)
    assert row["raw_truncated"] == 0
    assert row["raw_bytes"] == MAX_DLQ_RAW_BYTES


def test_dead_letter_preview_is_text_and_bounded() -> None:
    raw = "\u00e9".encode() * 5000 + b"\xff" * 10
    row = row_dict(dead_letter_row(dead(raw).to_json()), DEAD_LETTER_COLUMNS)
    assert isinstance(row["raw_preview"], str)
    assert row["raw_preview"] == "\u00e9" * 500


def test_dead_letter_preview_of_binary_uses_replacement_characters() -> None:
    row = row_dict(dead_letter_row(dead(b"ok\xff\xfe").to_json()), DEAD_LETTER_COLUMNS)
    assert row["raw_preview"] == "ok\ufffd\ufffd"


def test_dead_letter_row_defaults_for_optional_fields() -> None:
    rec = orjson.loads(dead(b"abc", error_type="", key=None).to_json())
    del rec["raw_bytes"]
    del rec["raw_truncated"]
    rec["error_type"] = None
    row = row_dict(dead_letter_row(orjson.dumps(rec)), DEAD_LETTER_COLUMNS)
    assert row["error_type"] == ""
    assert row["raw_bytes"] == 3
    assert row["raw_truncated"] == 0


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"{", id="not-json"),
        pytest.param(b"[]", id="list"),
        pytest.param(b"{}", id="empty-object"),
        pytest.param(b'{"stage": "decode"}', id="partial"),
    ],
)
def test_malformed_dead_letters_raise_row_error(value: bytes) -> None:
    with pytest.raises(RowError, match="dead-letter record is malformed"):
        dead_letter_row(value)


def test_dead_letter_with_bad_base64_raises_row_error() -> None:
    rec = orjson.loads(dead(b"abc").to_json())
    rec["raw_b64"] = "abc"  # wrong padding
    with pytest.raises(RowError):
        dead_letter_row(orjson.dumps(rec))


def test_dead_letter_with_missing_failed_at_raises_row_error() -> None:
    rec = orjson.loads(dead(b"abc").to_json())
    del rec["failed_at_ms"]
    with pytest.raises(RowError):
        dead_letter_row(orjson.dumps(rec))


# --------------------------------------------------------------------------- hostile records
# Found by tests/unit/test_decode_fuzz.py: each of these built a row that fails the whole insert
# batch on every retry (a wrong type, a number the column cannot hold), or raised something
# other than RowError, which the sink does not catch.

DEEP = b"[" * 1000 + b"]" * 1000  # orjson reads it; repr() of it hits the recursion limit


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param(("tenant",), 7, id="tenant-int"),
        pytest.param(("id",), [], id="id-list"),
        pytest.param(("id",), None, id="id-null"),
        pytest.param(("title",), 3, id="title-int"),
        pytest.param(("lang",), {}, id="lang-object"),
        pytest.param(("tokens",), -1821, id="tokens-negative"),
        pytest.param(("text_chars",), 2**40, id="text-chars-over-uint32"),
        pytest.param(("top_category",), None, id="top-category-null"),
        pytest.param(("categories", 0, "label"), {}, id="label-object"),
        pytest.param(("categories", 0, "score"), 1e39, id="score-over-float32"),
        pytest.param(("compute_ms",), 1e39, id="compute-ms-over-float32"),
        pytest.param(("model", "name"), -1.5, id="model-name-number"),
        pytest.param(("source", "topic"), 1, id="source-topic-int"),
        pytest.param(("source", "partition"), -1, id="partition-negative"),
        pytest.param(("source", "offset"), 1e39, id="offset-float"),
        pytest.param(("ts",), 10**18, id="ts-past-datetime64"),
        pytest.param(("ts",), 18446744073709551615, id="ts-uint64-max"),
        pytest.param(("enriched_at_ms",), -1, id="enriched-at-negative"),
    ],
)
def test_enriched_values_a_column_cannot_hold_are_row_errors(
    path: tuple[Any, ...], value: Any
) -> None:
    with pytest.raises(RowError, match="enriched record is malformed"):
        document_row(_mutated(path, value), "aimass.enriched", 0, 0)


@pytest.mark.parametrize("ts", [1e300, -1e300, 1.8e19])
def test_a_time_past_the_platform_range_is_a_row_error_not_an_overflow_error(ts: float) -> None:
    # Was OverflowError ("timestamp out of range for platform time_t"): no ValueError.
    rec = orjson.loads(dead(b"x").to_json())
    rec["failed_at_ms"] = ts
    with pytest.raises(RowError, match="dead-letter record is malformed"):
        dead_letter_row(orjson.dumps(rec))
    with pytest.raises(RowError):
        classification_rows(_mutated(("ts",), ts), "aimass.enriched", 0, 0)


@pytest.mark.parametrize(
    ("kafka_ts", "stored_ms"),
    [(-1, 0), (-(2**63), 0), (2**62, 10_413_791_999_999), (2**63 - 1, 10_413_791_999_999)],
)
def test_a_kafka_timestamp_out_of_range_is_clamped_not_an_error(
    kafka_ts: int, stored_ms: int
) -> None:
    # A producer sets the Kafka timestamp to anything. Its dead letter raised RowError, and
    # the sink's fallback for an event dead letter raised it again: the sink crashed.
    source = Source("aimass.events", 1, 7, kafka_ts)
    row = row_dict(dead_letter_row(dead(b"x", source=source).to_json()), DEAD_LETTER_COLUMNS)
    assert row["source_ts"] == utc(stored_ms)
    row = row_dict(document_row(enriched(source=source).to_json(), "t", 0, 0), DOCUMENT_COLUMNS)
    assert row["source_ts"] == utc(stored_ms)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("stage", []),
        ("stage", 18446744073709551615),
        ("reason", None),
        ("reason", 752),
        ("error_type", 5),
        ("raw_b64", 1),
        ("raw_bytes", -5),
        ("raw_bytes", 1e39),
    ],
)
def test_dead_letter_values_a_column_cannot_hold_are_row_errors(key: str, value: Any) -> None:
    rec = orjson.loads(dead(b"x").to_json())
    rec[key] = value
    with pytest.raises(RowError, match="dead-letter record is malformed"):
        dead_letter_row(orjson.dumps(rec))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("topic", None),
        ("topic", -3201),
        ("partition", -(10**10)),
        ("offset", -561),
        ("offset", 1e39),
    ],
)
def test_dead_letter_source_values_a_column_cannot_hold_are_row_errors(
    field: str, value: Any
) -> None:
    rec = orjson.loads(dead(b"x").to_json())
    rec["source"][field] = value
    with pytest.raises(RowError, match="dead-letter record is malformed"):
        dead_letter_row(orjson.dumps(rec))


def test_a_value_nested_past_repr_recursion_is_a_row_error_with_a_short_reason() -> None:
    # Was RecursionError: the TypeError message quoted the value with repr().
    broken = classified(intent()).replace(b'"classifier":"intent"', b'"classifier":' + DEEP)
    with pytest.raises(RowError, match="classifier must be a string") as err:
        classification_rows(broken, "aimass.enriched", 0, 0)
    assert len(str(err.value)) < 300
    mention = with_entities(apple()).replace(b'"start":0', b'"start":' + DEEP)
    with pytest.raises(RowError, match="start must be an integer"):
        entity_mention_rows(mention, "aimass.enriched", 0, 0)


def test_a_megabyte_value_gives_a_short_reason() -> None:
    with pytest.raises(RowError) as err:
        classification_rows(classified(intent(top=["x" * 1_000_000])), "aimass.enriched", 0, 0)
    assert len(str(err.value)) < 300


@pytest.mark.parametrize("score", [1e39, -1e39, 3.5e38])
def test_scores_a_float32_cannot_hold_are_row_errors(score: float) -> None:
    with pytest.raises(RowError, match="malformed classifications"):
        classification_rows(classified(intent(scores=[score, 0.0, 0.0])), "aimass.enriched", 0, 0)
    with pytest.raises(RowError, match="malformed entities"):
        entity_mention_rows(with_entities(apple(score=score)), "aimass.enriched", 0, 0)


# --------------------------------------------------------------------------- ClickHouseWriter


class FlakyClient:
    """Stands in for a clickhouse-connect client: ``insert`` fails ``failures`` times."""

    def __init__(self, failures: int) -> None:
        self.failures_left = failures
        self.calls: list[dict[str, Any]] = []

    def insert(
        self,
        table: str,
        rows: list[list[Any]],
        *,
        column_names: list[str],
        settings: Any,
        column_types: Any = None,
    ) -> None:
        self.calls.append(
            {"table": table, "rows": rows, "column_names": column_names, "settings": settings}
        )
        if self.failures_left > 0:
            self.failures_left -= 1
            raise ConnectionError(f"server gone ({self.failures_left} more failures)")


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def make_batch() -> InsertBatch:
    return InsertBatch(
        table="documents",
        columns=("tenant", "doc_id"),
        rows=[["acme", "doc-1"], ["acme", "doc-2"]],
        token="documents|aimass.enriched:0:10-11|test",
    )


def test_insert_succeeds_first_time() -> None:
    client = FlakyClient(0)
    sleep = RecordingSleep()
    writer = ClickHouseWriter(client, sleep=sleep)
    assert asyncio.run(writer.insert(make_batch())) is True
    assert len(client.calls) == 1
    call = client.calls[0]
    assert call["table"] == "documents"
    assert call["rows"] == [["acme", "doc-1"], ["acme", "doc-2"]]
    assert call["column_names"] == ["tenant", "doc_id"]
    assert call["settings"] == {
        "insert_deduplication_token": "documents|aimass.enriched:0:10-11|test",
        "deduplicate_blocks_in_dependent_materialized_views": 1,
    }
    assert sleep.delays == []
    assert writer.failures == 0


@pytest.mark.parametrize("failures", [1, 3, 8])
def test_insert_retries_until_it_succeeds(failures: int) -> None:
    client = FlakyClient(failures)
    sleep = RecordingSleep()
    retries: list[tuple[InsertBatch, BaseException, int]] = []
    writer = ClickHouseWriter(
        client,
        retry_initial_s=0.1,
        retry_max_s=1.0,
        sleep=sleep,
        on_retry=lambda b, e, n: retries.append((b, e, n)),
    )
    batch = make_batch()
    assert asyncio.run(writer.insert(batch)) is True
    assert len(client.calls) == failures + 1
    tokens = {c["settings"]["insert_deduplication_token"] for c in client.calls}
    assert tokens == {batch.token}
    assert all(c["rows"] == batch.rows for c in client.calls)
    assert writer.failures == failures
    assert [n for _, _, n in retries] == list(range(1, failures + 1))
    assert all(b is batch and isinstance(e, ConnectionError) for b, e, _ in retries)
    assert len(sleep.delays) == failures


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    client = FlakyClient(12)
    sleep = RecordingSleep()
    writer = ClickHouseWriter(client, retry_initial_s=0.1, retry_max_s=2.0, sleep=sleep)
    assert asyncio.run(writer.insert(make_batch())) is True
    assert len(sleep.delays) == 12
    for attempt, delay in enumerate(sleep.delays):
        nominal = min(0.1 * 2**attempt, 2.0)
        # jitter: somewhere in [nominal / 2, nominal]
        assert nominal / 2 - 1e-9 <= delay <= nominal + 1e-9, (attempt, delay)
        assert delay <= 2.0
    # Doubling outpaces jitter until the cap: each delay at least the previous one.
    uncapped = [d for i, d in enumerate(sleep.delays) if 0.1 * 2 ** (i + 1) <= 2.0]
    assert uncapped == sorted(uncapped)
    assert max(sleep.delays) > 0.1  # it did grow
    assert all(d >= 1.0 - 1e-9 for d in sleep.delays[6:])  # capped at 2.0, jitter >= half


def test_backoff_without_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    import stream_aimass.retry as module

    monkeypatch.setattr(module.random, "random", lambda: 1.0)
    sleep = RecordingSleep()
    writer = ClickHouseWriter(FlakyClient(6), retry_initial_s=0.5, retry_max_s=3.0, sleep=sleep)
    assert asyncio.run(writer.insert(make_batch())) is True
    assert sleep.delays == pytest.approx([0.5, 1.0, 2.0, 3.0, 3.0, 3.0])


def test_insert_gives_up_when_stopping() -> None:
    client = FlakyClient(5)
    sleep = RecordingSleep()
    retries: list[int] = []
    writer = ClickHouseWriter(client, sleep=sleep, on_retry=lambda b, e, n: retries.append(n))
    assert asyncio.run(writer.insert(make_batch(), stopping=lambda: True)) is False
    assert len(client.calls) == 1
    assert sleep.delays == []
    assert writer.failures == 1
    assert retries == [1]


def test_stopping_is_checked_after_each_failure() -> None:
    client = FlakyClient(10)
    sleep = RecordingSleep()
    writer = ClickHouseWriter(client, sleep=sleep)
    checks: list[int] = []

    def stopping() -> bool:
        checks.append(len(client.calls))
        return len(checks) >= 3

    assert asyncio.run(writer.insert(make_batch(), stopping=stopping)) is False
    assert len(client.calls) == 3
    assert checks == [1, 2, 3]
    assert len(sleep.delays) == 2


def test_stopping_does_not_matter_when_insert_succeeds() -> None:
    client = FlakyClient(0)
    writer = ClickHouseWriter(client, sleep=RecordingSleep())
    assert asyncio.run(writer.insert(make_batch(), stopping=lambda: True)) is True


def test_insert_sync_passes_the_token() -> None:
    client = FlakyClient(0)
    ClickHouseWriter(client).insert_sync(make_batch())
    assert client.calls[0]["settings"]["insert_deduplication_token"] == make_batch().token


def test_inserts_ask_materialized_views_to_deduplicate_too() -> None:
    # Without it a retried insert is dropped by documents but counted again in usage_hourly.
    assert INSERT_SETTINGS == {"deduplicate_blocks_in_dependent_materialized_views": 1}


# --------------------------------------------------------------------- permanent rejections


def test_rejections_are_told_from_failures_worth_retrying() -> None:
    from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

    from stream_aimass.sink.writer import is_rejection

    rejected = [
        DatabaseError(
            "Code: 469. DB::Exception: Constraint `c` is violated. (VIOLATED_CONSTRAINT)"
        ),
        DatabaseError("Code: 53. DB::Exception: Type mismatch. (TYPE_MISMATCH)"),
        DatabaseError("Code: 395. DB::Exception: throwIf. (FUNCTION_THROW_IF_VALUE_IS_NON_ZERO)"),
        DataError("Invalid None value in non-Nullable column, column name: `k`"),
        ValueError("invalid literal for int() with base 10: 'x'"),
    ]
    retried = [
        DatabaseError("Code: 60. DB::Exception: Table r.nope does not exist. (UNKNOWN_TABLE)"),
        DatabaseError("Code: 241. DB::Exception: Memory limit exceeded. (MEMORY_LIMIT_EXCEEDED)"),
        DatabaseError("Code: 252. DB::Exception: Too many parts. (TOO_MANY_PARTS)"),
        OperationalError("Error HTTPConnectionPool: connection refused"),
        ConnectionError("not connected to ClickHouse yet"),
        TimeoutError(),
    ]
    assert [is_rejection(e) for e in rejected] == [True] * len(rejected)
    assert [is_rejection(e) for e in retried] == [False] * len(retried)


class RejectingClient:
    """Refuses every insert holding a row whose doc_id starts with 'bad' (a constraint)."""

    def __init__(self) -> None:
        self.stored: list[list[Any]] = []
        self.tokens: list[str] = []

    def insert(
        self,
        table: str,
        rows: list[list[Any]],
        *,
        column_names: list[str],
        settings: Any,
        column_types: Any = None,
    ) -> None:
        if any(r[1].startswith("bad") for r in rows):
            raise RuntimeError("Code: 469. DB::Exception: Constraint `ok` is violated")
        self.stored.extend(rows)
        self.tokens.append(settings["insert_deduplication_token"])


def test_a_batch_is_split_until_the_refused_rows_are_alone() -> None:
    client = RejectingClient()
    rows = [["acme", f"bad-{i}" if i in (3, 4, 9) else f"d{i}"] for i in range(13)]
    batch = InsertBatch("documents", ("tenant", "doc_id"), rows, "documents|x|t")
    assert asyncio.run(ClickHouseWriter(client, sleep=RecordingSleep()).insert(batch)) is True
    assert [i for i, _ in sorted(batch.rejected)] == [3, 4, 9]
    assert all("Constraint `ok` is violated" in reason for _, reason in batch.rejected)
    assert sorted(r[1] for r in client.stored) == sorted(
        f"d{i}" for i in range(13) if i not in (3, 4, 9)
    )
    # Every part has a token of its own, the same on a retry.
    assert len(set(client.tokens)) == len(client.tokens)
    assert all(t.startswith("documents|x|t#") for t in client.tokens)


# ------------------------------------------------------------- dead letters made in the sink


@settings(max_examples=200, deadline=None)
@given(
    stage=st.sampled_from(["decode", "validate", "sink"]),
    reason=st.text(max_size=5000),
    raw=st.binary(max_size=2000) | st.just(b"x" * (MAX_DLQ_RAW_BYTES + 3)),
    offset=st.integers(0, 2**63),
    timestamp=st.integers(-(2**40), 2**45),
    error_type=st.sampled_from(["", "RowError", "InsertRejected"]),
)
def test_a_dead_letter_made_here_gives_the_row_its_record_would(
    stage: str, reason: str, raw: bytes, offset: int, timestamp: int, error_type: str
) -> None:
    dead = DeadLetter(
        stage=stage,
        reason=reason,
        raw=raw,
        source=Source("aimass.enriched", 3, offset, timestamp),
        failed_at_ms=1_767_225_600_000,
        error_type=error_type,
    )
    assert dead_letter_row_of(dead) == dead_letter_row(dead.to_json())
