"""Unit tests for stream_aimass.records wire encodings, checked against the topic schemas."""

from __future__ import annotations

import base64
import json
from importlib import resources
from typing import Any

import jsonschema
import numpy as np
import orjson
import pytest

from stream_aimass.records import (
    MAX_DLQ_KEY_BYTES,
    MAX_DLQ_RAW_BYTES,
    MAX_DLQ_REASON_CHARS,
    Category,
    DeadLetter,
    Document,
    EnrichedDocument,
    ItemVector,
    ModelRef,
    Source,
    embedding_field,
)

SOURCE = Source("aimass.documents", 1, 99, 1_735_689_600_500)
DIM = 384


def schema(name: str) -> dict[str, Any]:
    path = resources.files("stream_aimass") / "resources" / "topics" / f"{name}.schema.json"
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def validator(name: str) -> jsonschema.protocols.Validator:
    spec = schema(name)
    cls = jsonschema.validators.validator_for(spec)
    cls.check_schema(spec)
    return cls(spec, format_checker=cls.FORMAT_CHECKER)


def make_document(**fields: Any) -> Document:
    base: dict[str, Any] = {
        "id": "doc-1",
        "tenant": "acme",
        "ts_ms": 1_735_689_600_000,
        "text": "Scientists announce a discovery \u2014 caf\u00e9",
        "source": SOURCE,
        "title": "Discovery",
        "lang": "en",
        "meta": {"category_hint": "science", "n": 3},
    }
    base.update(fields)
    return Document(**base)


def make_enriched(
    categories: tuple[Category, ...] = (
        Category("science", 0.7),
        Category("health", 0.2),
        Category("sports", 0.1),
    ),
    **document_fields: Any,
) -> EnrichedDocument:
    vector = np.linspace(-1.0, 1.0, DIM).astype("<f2")
    return EnrichedDocument(
        document=make_document(**document_fields),
        tokens=17,
        categories=categories,
        embedding=vector.tobytes(),
        embedding_dim=DIM,
        model=ModelRef("all-MiniLM-L6-v2", "rev-1"),
        timings_ms={"tokenize": 0.25, "encode": 4.5, "classify": 0.75},
        enriched_at_ms=1_735_689_601_000,
    )


# --------------------------------------------------------------------------- EnrichedDocument


def test_enriched_to_json_round_trip() -> None:
    record = make_enriched()
    obj = orjson.loads(record.to_json())
    for key in (
        "id",
        "tenant",
        "ts",
        "text_chars",
        "tokens",
        "categories",
        "top_category",
        "embedding",
        "model",
        "source",
        "timings_ms",
        "enriched_at_ms",
    ):
        assert key in obj, key
    assert obj["id"] == "doc-1"
    assert obj["tenant"] == "acme"
    assert obj["ts"] == 1_735_689_600_000
    assert obj["title"] == "Discovery"
    assert obj["lang"] == "en"
    assert obj["meta"] == {"category_hint": "science", "n": 3}
    assert obj["text_chars"] == len(record.document.text)
    assert obj["tokens"] == 17
    assert obj["categories"] == [
        {"label": "science", "score": 0.7},
        {"label": "health", "score": 0.2},
        {"label": "sports", "score": 0.1},
    ]
    assert obj["model"] == {"name": "all-MiniLM-L6-v2", "version": "rev-1"}
    assert obj["source"] == {
        "topic": "aimass.documents",
        "partition": 1,
        "offset": 99,
        "timestamp_ms": 1_735_689_600_500,
    }
    assert obj["timings_ms"] == {"tokenize": 0.25, "encode": 4.5, "classify": 0.75}
    assert obj["enriched_at_ms"] == 1_735_689_601_000
    assert "text" not in obj  # the body is not repeated on the enriched topic


def test_enriched_embedding_encoding() -> None:
    record = make_enriched()
    embedding = orjson.loads(record.to_json())["embedding"]
    assert embedding["dtype"] == "float16"
    assert embedding["dim"] == DIM
    raw = base64.b64decode(embedding["b64"], validate=True)
    assert len(raw) == DIM * 2
    assert raw == record.embedding
    vector = np.frombuffer(raw, dtype="<f2")
    np.testing.assert_array_equal(vector, np.linspace(-1.0, 1.0, DIM).astype("<f2"))


def test_an_embedding_encoded_once_serves_both_records() -> None:
    """The enrich role encodes each vector once, for the enriched record and the item
    vector: the records are byte for byte what each encodes on its own."""
    record = make_enriched()
    field = embedding_field(record.embedding, DIM)
    assert record.to_json(field) == record.to_json()
    vector = np.frombuffer(record.embedding, dtype="<f2").astype(np.float32)
    item = ItemVector("acme", "doc-1", "document", 1, vector, record.model, 2)
    assert item.to_json(field) == item.to_json()
    assert orjson.loads(item.to_json())["embedding"] == field


def test_top_category_is_the_max_score_label() -> None:
    categories = (Category("a", 0.1), Category("b", 0.3), Category("c", 0.6))
    assert orjson.loads(make_enriched(categories).to_json())["top_category"] == "c"
    categories = (Category("z", 0.9), Category("y", 0.05), Category("x", 0.05))
    assert orjson.loads(make_enriched(categories).to_json())["top_category"] == "z"
    assert orjson.loads(make_enriched(()).to_json())["top_category"] == ""


def test_enriched_key() -> None:
    assert make_enriched().key == b"acme:doc-1"


def test_enriched_validates_against_schema() -> None:
    validator("aimass.enriched").validate(orjson.loads(make_enriched().to_json()))


def test_enriched_without_optionals_validates_against_schema() -> None:
    record = make_enriched((), title="", lang="", meta={})
    validator("aimass.enriched").validate(orjson.loads(record.to_json()))


def test_schema_catches_a_broken_enriched_record() -> None:
    obj = orjson.loads(make_enriched().to_json())
    del obj["embedding"]["dim"]
    with pytest.raises(jsonschema.ValidationError):
        validator("aimass.enriched").validate(obj)


# --------------------------------------------------------------------------- DeadLetter


def make_dead(raw: bytes, **fields: Any) -> DeadLetter:
    base: dict[str, Any] = {
        "stage": "decode",
        "reason": "message is not valid JSON",
        "raw": raw,
        "source": SOURCE,
        "failed_at_ms": 1_735_689_602_000,
        "error_type": "JSONDecodeError",
        "key": b"acme:doc-1",
    }
    base.update(fields)
    return DeadLetter(**base)


@pytest.mark.parametrize("stage", ["decode", "validate", "enrich", "sink"])
def test_dead_letter_validates_against_schema(stage: str) -> None:
    obj = orjson.loads(make_dead(b'{"id": "x", ', stage=stage).to_json())
    validator("aimass.dlq").validate(obj)


def test_dead_letter_to_json_fields() -> None:
    raw = b"\x00\xff not json"
    obj = orjson.loads(make_dead(raw).to_json())
    assert obj["stage"] == "decode"
    assert obj["reason"] == "message is not valid JSON"
    assert obj["error_type"] == "JSONDecodeError"
    assert base64.b64decode(obj["raw_b64"], validate=True) == raw
    assert obj["raw_bytes"] == len(raw)
    assert obj["raw_truncated"] is False
    assert base64.b64decode(obj["key_b64"]) == b"acme:doc-1"
    assert obj["source"] == SOURCE.to_dict()
    assert obj["failed_at_ms"] == 1_735_689_602_000


def test_dead_letter_without_key_or_raw_validates() -> None:
    obj = orjson.loads(make_dead(b"", key=None, error_type="").to_json())
    assert obj["key_b64"] is None
    assert obj["raw_b64"] == ""
    assert obj["raw_bytes"] == 0
    validator("aimass.dlq").validate(obj)


def test_dead_letter_truncates_large_raw() -> None:
    raw = bytes(range(256)) * (MAX_DLQ_RAW_BYTES // 256 + 10)
    obj = orjson.loads(make_dead(raw).to_json())
    assert base64.b64decode(obj["raw_b64"]) == raw[:MAX_DLQ_RAW_BYTES]
    assert obj["raw_bytes"] == len(raw)
    assert obj["raw_truncated"] is True
    validator("aimass.dlq").validate(obj)


def test_dead_letter_dlq_key() -> None:
    assert make_dead(b"x").dlq_key == b"aimass.documents:1:99"


def test_source_to_dict() -> None:
    assert SOURCE.to_dict() == {
        "topic": "aimass.documents",
        "partition": 1,
        "offset": 99,
        "timestamp_ms": 1_735_689_600_500,
    }


def test_records_are_frozen() -> None:
    with pytest.raises(AttributeError):
        SOURCE.offset = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        make_dead(b"x").stage = "sink"  # type: ignore[misc]


def test_dead_letter_truncates_a_huge_key_and_says_so() -> None:
    # Fuzz find: a 1 MB Kafka key made a 1.3 MB dead letter, over Kafka's 1 MiB message limit
    # and over what the enrich producer sends (4 MiB with a bigger key): the role failed.
    key = b"k" * (MAX_DLQ_KEY_BYTES + 1) * 64
    encoded = make_dead(b"x" * (MAX_DLQ_RAW_BYTES + 1), key=key).to_json()
    obj = orjson.loads(encoded)
    assert base64.b64decode(obj["key_b64"]) == key[:MAX_DLQ_KEY_BYTES]
    assert obj["key_truncated"] is True
    assert len(encoded) < 1024 * 1024
    validator("aimass.dlq").validate(obj)


def test_dead_letter_keeps_a_normal_key_whole() -> None:
    obj = orjson.loads(make_dead(b"x", key=b"k" * MAX_DLQ_KEY_BYTES).to_json())
    assert base64.b64decode(obj["key_b64"]) == b"k" * MAX_DLQ_KEY_BYTES
    assert obj["key_truncated"] is False


def test_dead_letter_truncates_a_huge_reason() -> None:
    obj = orjson.loads(make_dead(b"x", reason="r" * 1_000_000).to_json())
    assert obj["reason"] == "r" * MAX_DLQ_REASON_CHARS + " [truncated]"


def test_a_recommendation_record_fits_its_schema_and_its_table() -> None:
    from stream_aimass.kafka.topics import load_schema
    from stream_aimass.records import Recommendation
    from stream_aimass.sink.item_rows import RECOMMENDATION_COLUMNS, recommendation_row

    event = Source("aimass.events", 4, 77, 1_767_225_600_000)
    rec = Recommendation(
        tenant="acme",
        user_id="u-1",
        trigger_event_ids=("e-1", "e-2"),
        items=({"item_id": "d-9", "score": 0.8, "rank": 1, "category": "sports"},),
        cold_start=False,
        k=10,
        model={"name": "aimass-recs", "version": "1a2b3c"},
        event=event,
        event_ts_ms=1_767_225_599_000,
        ts_ms=1_767_225_600_250,
        worker="host:1",
    )
    assert rec.key == b"acme:u-1"
    value = orjson.loads(rec.to_json())
    jsonschema.validate(value, load_schema("aimass.recommendations"))
    assert (value["trigger_event_id"], value["latency_ms"]) == ("e-2", 250)
    row = dict(
        zip(RECOMMENDATION_COLUMNS, recommendation_row(rec.to_json(), "r", 0, 3), strict=True)
    )
    assert (row["user_id"], row["trigger_event_id"], row["item_ids"]) == ("u-1", "e-2", ["d-9"])
