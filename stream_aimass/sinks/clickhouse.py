"""Stage ``sink``: rows for ClickHouse, inserted in batches, idempotently, with retries.

Idempotency has two layers: every insert carries a deduplication token derived from the
Kafka topic/partition/offset range its rows came from (a retried insert is dropped by
ClickHouse, in the materialized views it feeds too), and the tables are ReplacingMergeTree
on natural keys (a re-delivered record collapses under FINAL).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import reprlib
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from stream_aimass.records import MAX_EXPLICIT_VERSION, Event, row_version
from stream_aimass.recs.index import split_key
from stream_aimass.retry import Backoff

log = logging.getLogger("stream_aimass.sink")

DOCUMENT_COLUMNS = [
    "tenant", "doc_id", "ts", "title", "lang", "text_chars", "tokens", "top_category",
    "category_labels", "category_scores", "meta", "model_name", "model_version",
    "source_topic", "source_partition", "source_offset", "source_ts",
    "enriched_topic", "enriched_partition", "enriched_offset", "enriched_at",
    "compute_ms", "models", "version",
]  # fmt: skip

CLASSIFICATION_COLUMNS = [
    "tenant", "doc_id", "ts", "classifier", "model_name", "model_version", "multi_label",
    "top_label", "predicted", "labels", "scores",
    "enriched_topic", "enriched_partition", "enriched_offset", "enriched_at", "version",
]  # fmt: skip

ENTITY_MENTION_COLUMNS = [
    "tenant", "doc_id", "ts", "mention_start", "mention_end", "mention_text", "label",
    "entity_id", "entity_name", "linked", "score",
    "ner_model", "ner_version", "kb_name", "kb_version",
    "enriched_topic", "enriched_partition", "enriched_offset", "enriched_at", "doc_version",
]  # fmt: skip

DEAD_LETTER_COLUMNS = [
    "source_topic", "source_partition", "source_offset", "source_ts", "stage", "reason",
    "error_type", "raw_b64", "raw_bytes", "raw_truncated", "raw_preview", "failed_at",
]  # fmt: skip

EVENT_COLUMNS = [
    "tenant", "event_id", "user_id", "item_id", "type", "ts",
    "source_topic", "source_partition", "source_offset",
]  # fmt: skip

ITEM_COLUMNS = [
    "tenant", "item_id", "kind", "title", "category", "ts", "model_name", "model_version",
    "deleted", "source_topic", "source_partition", "source_offset", "updated_at", "version",
]  # fmt: skip

RECOMMENDATION_COLUMNS = [
    "tenant", "user_id", "trigger_event_id", "ts", "event_ts", "item_ids", "scores",
    "cold_start", "k", "model_name", "model_version", "latency_ms",
    "source_topic", "source_partition", "source_offset",
]  # fmt: skip

ITEM_KINDS = ("document", "catalogue")

_PREVIEW_CHARS = 500
_UINT16_MAX = 2**16 - 1
_UINT32_MAX = 2**32 - 1
_UINT64_MAX = 2**64 - 1
_FLOAT32_MAX = 3.4028234663852886e38
# The last millisecond DateTime64(3) holds (2299-12-31T23:59:59.999Z): later times would not
# fit the column and fail the whole insert batch.
_MAX_EPOCH_MS = 10_413_791_999_999

# Sent with every insert: since ClickHouse 24.7 a retried block reaches the materialized views
# (usage_hourly) even when the source table drops it; this lets them drop it too.
INSERT_SETTINGS: dict[str, Any] = {"deduplicate_blocks_in_dependent_materialized_views": 1}


class RowError(ValueError):
    """A record on an internal topic that cannot become a row."""


# Error messages quote what they reject: hostile values can be megabytes, or nest deeper
# than the builtin repr can recurse.
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlevel = 3


def _show(value: Any) -> str:
    return _REPR.repr(value)


def _dt(ms: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)
    except OverflowError as exc:
        # Past the platform's time_t Python raises OverflowError, which is no ValueError.
        raise ValueError(f"time {_show(ms)} is out of range") from exc


def _str(value: Any, field: str) -> str:
    # A wrong type here would fail the whole insert batch, again on every retry.
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a string, not {_show(value)}")
    return value


def _str_list(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{field} must be a list of strings, not {_show(value)}")
    return value


def _opt_str(value: Any, field: str) -> str:
    """A string, or '' for a null: anything else (0, false, a list) is an error, not ''."""
    return "" if value is None else _str(value, field)


def _offset(value: Any, field: str) -> int:
    # bool is an int in Python but never a character offset.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{field} must be an integer, not {_show(value)}")
    if not 0 <= value <= _UINT32_MAX:
        raise ValueError(f"{field} {value} is out of range")
    return value


def _id(value: Any, field: str) -> str:
    """A non-empty string: ids are sorting keys, an empty one would merge unrelated rows."""
    text = _str(value, field)
    if not text:
        raise ValueError(f"{field} is empty")
    return text


def _obj(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{field} must be an object, not {type(value).__name__}")
    return value


def _int(value: Any, field: str, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{field} must be an integer, not {_show(value)}")
    if not 0 <= value <= high:
        raise ValueError(f"{field} {value} is out of range")
    return value


def _number(value: Any, field: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"{field} must be a number, not {_show(value)}")
    return float(value)


def _float32(value: Any, field: str) -> float:
    """A number a Float32 column takes: 1e39 would fail the whole insert batch."""
    number = _number(value, field)
    if not abs(number) <= _FLOAT32_MAX:
        raise ValueError(f"{field} {number} does not fit a Float32")
    return number


def _float32_list(value: Any, field: str) -> list[float]:
    if not isinstance(value, list):
        raise TypeError(f"{field} must be a list of numbers, not {type(value).__name__}")
    return [_float32(v, f"{field}[{i}]") for i, v in enumerate(value)]


def _epoch_ms(value: Any, field: str) -> datetime:
    # Strict, unlike _dt: a string or float time here is a producer bug worth a dead letter.
    return _dt(_int(value, field, _MAX_EPOCH_MS))


def _kafka_ts(value: Any, field: str) -> datetime:
    """A Kafka timestamp, clamped into the column's range rather than refused.

    Producers set it to anything (-1: none), and the record that came with it is still
    good: a dead letter must be stored whatever its input's timestamp was.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{field} must be an integer, not {_show(value)}")
    return _dt(min(max(value, 0), _MAX_EPOCH_MS))


def _model_ref(models: dict[str, Any], role: str) -> tuple[str, str]:
    ref = models.get(role)
    if ref is None:
        return "", ""
    if not isinstance(ref, dict):
        raise TypeError(f"entities_model.{role} must be an object, not {_show(ref)}")
    return (
        _opt_str(ref.get("name"), f"entities_model.{role}.name"),
        _opt_str(ref.get("version"), f"entities_model.{role}.version"),
    )


def _models(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise TypeError(f"models must map model names to version strings, not {_show(value)}")
    return value


def _source_version(rec: dict[str, Any], what: str) -> int:
    """The row version of a record derived from a source document (see ``row_version``)."""
    explicit = rec.get("version")
    if explicit is not None:
        explicit = _int(explicit, "version", MAX_EXPLICIT_VERSION)
    source = _obj(rec.get("source"), f"{what} source")
    timestamp = source.get("timestamp_ms")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise TypeError(f"source.timestamp_ms must be an integer, not {_show(timestamp)}")
    return row_version(
        explicit, timestamp, _int(source.get("offset"), "source.offset", _UINT64_MAX)
    )


def _enriched_record(value: bytes, problem: str) -> dict[str, Any]:
    try:
        return _obj(orjson.loads(value), "enriched record")
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise RowError(f"enriched record {problem}: {type(exc).__name__}: {exc}") from exc


@dataclass(slots=True)
class EnrichedRows:
    """Every row one ``aimass.enriched`` record becomes (parsed once for all three tables)."""

    document: list[Any]
    classifications: list[list[Any]]
    mentions: list[list[Any]]


def enriched_rows(value: bytes, topic: str, partition: int, offset: int) -> EnrichedRows:
    """The ``documents``, ``classifications`` and ``entity_mentions`` rows of one record.

    Raises RowError, with the reason of the first table whose row cannot be built: a record is
    stored whole or not at all.
    """
    rec = _enriched_record(value, "is malformed")
    return EnrichedRows(
        _document_row(rec, topic, partition, offset),
        _classification_rows(rec, topic, partition, offset),
        _entity_mention_rows(rec, topic, partition, offset),
    )


def document_row(value: bytes, topic: str, partition: int, offset: int) -> list[Any]:
    """A ``documents`` row from an ``aimass.enriched`` record."""
    return _document_row(_enriched_record(value, "is malformed"), topic, partition, offset)


def _document_row(rec: dict[str, Any], topic: str, partition: int, offset: int) -> list[Any]:
    try:
        # Every value is checked against its column: one wrong type or out-of-range number
        # would fail the whole insert batch, again on every retry.
        source = _obj(rec["source"], "source")
        categories = rec["categories"]
        if not isinstance(categories, list):
            raise TypeError(f"categories must be a list, not {type(categories).__name__}")
        labels: list[str] = []
        scores: list[float] = []
        for i, entry in enumerate(categories):
            category = _obj(entry, f"categories[{i}]")
            labels.append(_str(category["label"], f"categories[{i}].label"))
            scores.append(_float32(category["score"], f"categories[{i}].score"))
        model = _obj(rec["model"], "model")
        compute_ms = rec.get("compute_ms")
        return [
            _id(rec["tenant"], "tenant"),
            _id(rec["id"], "id"),
            _epoch_ms(rec["ts"], "ts"),
            _opt_str(rec.get("title"), "title"),
            _opt_str(rec.get("lang"), "lang"),
            _int(rec["text_chars"], "text_chars", _UINT32_MAX),
            _int(rec["tokens"], "tokens", _UINT32_MAX),
            _str(rec["top_category"], "top_category"),
            labels,
            scores,
            orjson.dumps(rec.get("meta") or {}).decode(),
            _str(model["name"], "model.name"),
            _str(model["version"], "model.version"),
            _str(source["topic"], "source.topic"),
            _int(source["partition"], "source.partition", _UINT32_MAX),
            _int(source["offset"], "source.offset", _UINT64_MAX),
            _kafka_ts(source["timestamp_ms"], "source.timestamp_ms"),
            topic,
            partition,
            offset,
            _epoch_ms(rec["enriched_at_ms"], "enriched_at_ms"),
            _float32(0.0 if compute_ms is None else compute_ms, "compute_ms"),
            _models(rec.get("models")),
            _source_version(rec, "enriched record"),
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise RowError(f"enriched record is malformed: {type(exc).__name__}: {exc}") from exc


def classification_rows(value: bytes, topic: str, partition: int, offset: int) -> list[list[Any]]:
    """``classifications`` rows (one per classifier) from an ``aimass.enriched`` record.

    A record without ``classifications`` (older producers) gives no rows.
    """
    rec = _enriched_record(value, "has malformed classifications")
    return _classification_rows(rec, topic, partition, offset)


def _classification_rows(
    rec: dict[str, Any], topic: str, partition: int, offset: int
) -> list[list[Any]]:
    try:
        entries = rec.get("classifications") or []
        if not isinstance(entries, list):
            raise TypeError(f"classifications must be a list, not {_show(entries)}")
        tenant, doc_id = _id(rec["tenant"], "tenant"), _id(rec["id"], "id")
        ts = _epoch_ms(rec["ts"], "ts")
        enriched_at = _epoch_ms(rec["enriched_at_ms"], "enriched_at_ms")
        version = _source_version(rec, "enriched record") if entries else 0
        rows: list[list[Any]] = []
        seen: set[str] = set()
        for entry in entries:
            classifier = _str(entry["classifier"], "classifier")
            if not classifier:
                raise ValueError("classifier name is empty")
            if classifier in seen:
                # Rows are keyed by classifier: a second entry would silently replace the first.
                raise ValueError(f"classifier {_show(classifier)} appears twice")
            seen.add(classifier)
            labels = _str_list(entry["labels"], "labels")
            scores = _float32_list(entry["scores"], "scores")
            if len(labels) != len(scores):
                raise ValueError(f"{len(labels)} labels but {len(scores)} scores")
            multi_label = entry.get("multi_label")
            multi_label = False if multi_label is None else multi_label
            if not isinstance(multi_label, bool):
                raise TypeError(f"multi_label must be true or false, not {_show(multi_label)}")
            rows.append(
                [
                    tenant,
                    doc_id,
                    ts,
                    classifier,
                    _str(entry["model"]["name"], "model name"),
                    _str(entry["model"]["version"], "model version"),
                    int(multi_label),
                    _str(entry.get("top") or "", "top"),
                    _str_list(entry.get("predicted") or [], "predicted"),
                    labels,
                    scores,
                    topic,
                    partition,
                    offset,
                    enriched_at,
                    version,
                ]
            )
        return rows
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise RowError(
            f"enriched record has malformed classifications: {type(exc).__name__}: {exc}"
        ) from exc


def entity_mention_rows(value: bytes, topic: str, partition: int, offset: int) -> list[list[Any]]:
    """``entity_mentions`` rows (one per mention) from an ``aimass.enriched`` record.

    A record without ``entities`` (older producers) gives no rows. A mention whose
    ``entity_id`` is null or empty is NIL: stored with ``entity_id`` '' and ``linked`` 0.
    """
    rec = _enriched_record(value, "has malformed entities")
    return _entity_mention_rows(rec, topic, partition, offset)


def _entity_mention_rows(
    rec: dict[str, Any], topic: str, partition: int, offset: int
) -> list[list[Any]]:
    try:
        entries = rec.get("entities") or []
        if not isinstance(entries, list):
            raise TypeError(f"entities must be a list, not {_show(entries)}")
        models = rec.get("entities_model") or {}
        if not isinstance(models, dict):
            raise TypeError(f"entities_model must be an object, not {_show(models)}")
        ner_model, ner_version = _model_ref(models, "ner")
        kb_name, kb_version = _model_ref(models, "kb")
        tenant, doc_id = _id(rec["tenant"], "tenant"), _id(rec["id"], "id")
        ts = _epoch_ms(rec["ts"], "ts")
        enriched_at = _epoch_ms(rec["enriched_at_ms"], "enriched_at_ms")
        version = _source_version(rec, "enriched record") if entries else 0
        rows: list[list[Any]] = []
        seen: set[tuple[int, int]] = set()
        for entry in entries:
            start = _offset(entry["start"], "start")
            end = _offset(entry["end"], "end")
            if start > end:
                raise ValueError(f"mention start {start} is after its end {end}")
            if (start, end) in seen:
                # Rows are keyed by span: a second mention would silently replace the first.
                raise ValueError(f"mention {start}-{end} appears twice")
            seen.add((start, end))
            label = _str(entry["label"], "label")
            if not label:
                raise ValueError("mention label is empty")
            score = _float32(entry["score"], "score")
            entity_id = _opt_str(entry.get("entity_id"), "entity_id")
            rows.append(
                [
                    tenant,
                    doc_id,
                    ts,
                    start,
                    end,
                    _str(entry["text"], "text"),
                    label,
                    entity_id,
                    _opt_str(entry.get("name"), "name"),
                    1 if entity_id else 0,
                    score,
                    ner_model,
                    ner_version,
                    kb_name,
                    kb_version,
                    topic,
                    partition,
                    offset,
                    enriched_at,
                    version,
                ]
            )
        return rows
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise RowError(
            f"enriched record has malformed entities: {type(exc).__name__}: {exc}"
        ) from exc


def event_row(event: Event) -> list[Any]:
    """An ``events`` row from a validated event."""
    s = event.source
    return [
        event.tenant, event.event_id, event.user_id, event.item_id, event.type,
        _dt(event.ts_ms), s.topic, s.partition, s.offset,
    ]  # fmt: skip


def item_row(
    key: bytes | None,
    value: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
) -> list[Any]:
    """An ``items`` row from an ``aimass.item-vectors`` message (key ``tenant:item_id``).

    A tombstone (null or empty value: the item was deleted) gives a row with ``deleted`` 1,
    tenant and item id from the key (split on its first ':') and the message's Kafka
    timestamp as ``ts`` and ``updated_at``. The embedding is checked, not stored.
    """
    if not value:
        return _deleted_item_row(key, topic, partition, offset, timestamp_ms)
    try:
        rec = _obj(orjson.loads(value), "item vector")
        tenant = _id(rec["tenant"], "tenant")
        item_id = _id(rec["item_id"], "item_id")
        if key is not None and key != f"{tenant}:{item_id}".encode():
            # Compaction and tombstones go by the key: a row under another id could never
            # be deleted.
            raise ValueError(f"key {_show(key)} is not {tenant}:{item_id}")
        kind = _str(rec["kind"], "kind")
        if kind not in ITEM_KINDS:
            raise ValueError(f"kind {_show(kind)} is not one of {', '.join(ITEM_KINDS)}")
        _check_embedding(rec["embedding"])
        model = _obj(rec["model"], "model")
        updated_at_ms = _int(rec["updated_at_ms"], "updated_at_ms", _MAX_EPOCH_MS)
        # The version of the document the vector came from; a record without a source (an
        # older producer, or vectors published by hand) by its updated_at_ms, then offset.
        if rec.get("source"):
            version = _source_version(rec, "item vector")
        else:
            version = row_version(None, updated_at_ms, offset)
        return [
            tenant,
            item_id,
            kind,
            _opt_str(rec.get("title"), "title"),
            _opt_str(rec.get("category"), "category"),
            _epoch_ms(rec["ts"], "ts"),
            _str(model.get("name"), "model.name"),
            _str(model.get("version"), "model.version"),
            0,
            topic,
            partition,
            offset,
            _dt(updated_at_ms),
            version,
        ]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise RowError(f"item vector is malformed: {type(exc).__name__}: {exc}") from exc


def _deleted_item_row(
    key: bytes | None, topic: str, partition: int, offset: int, timestamp_ms: int
) -> list[Any]:
    # The raw tombstone is empty: the key goes into the reason, or the dead letter says nothing.
    parts = split_key(key)
    if parts is None:
        raise RowError(f"item-vector tombstone key {_show(key)} is not tenant:item_id")
    tenant, item_id = parts
    if not 0 <= timestamp_ms <= _MAX_EPOCH_MS:
        # updated_at orders the tombstone against the item's updates: it needs a real time.
        raise RowError(f"item-vector tombstone {_show(key)} has no usable Kafka timestamp")
    deleted_at = _dt(timestamp_ms)
    return [
        tenant, item_id, "", "", "", deleted_at, "", "",
        1, topic, partition, offset, deleted_at, row_version(None, timestamp_ms, offset),
    ]  # fmt: skip


def _check_embedding(value: Any) -> None:
    """The embedding the workers' item index would load: float16, ``dim`` values."""
    embedding = _obj(value, "embedding")
    dtype = embedding.get("dtype")
    if dtype != "float16":
        raise ValueError(f"embedding dtype {_show(dtype)} is not float16")
    dim = embedding.get("dim")
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise ValueError(f"embedding.dim must be a positive integer, not {_show(dim)}")
    size = len(base64.b64decode(_str(embedding.get("b64"), "embedding.b64")))
    if size != 2 * dim:
        raise ValueError(f"embedding.b64 holds {size} bytes, not {2 * dim} for dim {dim}")


def recommendation_row(value: bytes, topic: str, partition: int, offset: int) -> list[Any]:
    """A ``recommendations`` row from an ``aimass.recommendations`` record.

    Items are kept in the order given (rank order). Optional keys: ``event_ts`` (default:
    ``ts``), ``cold_start`` (false) and ``k`` (the number of items).
    """
    try:
        rec = _obj(orjson.loads(value), "recommendation")
        items = rec["items"]
        if not isinstance(items, list):
            raise TypeError(f"items must be a list, not {type(items).__name__}")
        item_ids: list[str] = []
        scores: list[float] = []
        seen: set[str] = set()
        for i, entry in enumerate(items):
            item = _obj(entry, f"items[{i}]")
            item_id = _id(item.get("item_id"), f"items[{i}].item_id")
            if item_id in seen:
                # A duplicate would count twice in recommendation-ctr.
                raise ValueError(f"item {_show(item_id)} appears twice")
            seen.add(item_id)
            item_ids.append(item_id)
            scores.append(_float32(item.get("score"), f"items[{i}].score"))
        ts = _epoch_ms(rec["ts"], "ts")
        event_ts = rec.get("event_ts")
        cold_start = rec.get("cold_start")
        cold_start = False if cold_start is None else cold_start
        if not isinstance(cold_start, bool):
            raise TypeError(f"cold_start must be true or false, not {_show(cold_start)}")
        k = rec.get("k")
        k = len(item_ids) if k is None else k
        latency_ms = _float32(rec["latency_ms"], "latency_ms")
        if latency_ms < 0:
            raise ValueError(f"latency_ms {latency_ms} is negative")
        model = _obj(rec["model"], "model")
        return [
            _id(rec["tenant"], "tenant"),
            _id(rec["user_id"], "user_id"),
            _id(rec["trigger_event_id"], "trigger_event_id"),
            ts,
            ts if event_ts is None else _epoch_ms(event_ts, "event_ts"),
            item_ids,
            scores,
            int(cold_start),
            _int(k, "k", _UINT16_MAX),
            _str(model.get("name"), "model.name"),
            _str(model.get("version"), "model.version"),
            latency_ms,
            topic,
            partition,
            offset,
        ]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise RowError(f"recommendation is malformed: {type(exc).__name__}: {exc}") from exc


def dead_letter_row(value: bytes) -> list[Any]:
    """A ``dead_letters`` row from an ``aimass.dlq`` record."""
    try:
        rec = _obj(orjson.loads(value), "dead letter")
        source = _obj(rec["source"], "source")
        raw_b64 = _str(rec["raw_b64"], "raw_b64")
        raw = base64.b64decode(raw_b64)
        raw_bytes = rec.get("raw_bytes")
        return [
            _str(source["topic"], "source.topic"),
            _int(source["partition"], "source.partition", _UINT32_MAX),
            _int(source["offset"], "source.offset", _UINT64_MAX),
            _kafka_ts(source["timestamp_ms"], "source.timestamp_ms"),
            _str(rec["stage"], "stage"),
            _str(rec["reason"], "reason"),
            _opt_str(rec.get("error_type"), "error_type"),
            raw_b64,
            len(raw) if raw_bytes is None else _int(raw_bytes, "raw_bytes", _UINT64_MAX),
            1 if rec.get("raw_truncated") else 0,
            raw[: _PREVIEW_CHARS * 4].decode("utf-8", errors="replace")[:_PREVIEW_CHARS],
            _epoch_ms(rec["failed_at_ms"], "failed_at_ms"),
        ]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise RowError(f"dead-letter record is malformed: {type(exc).__name__}: {exc}") from exc


@dataclass(slots=True)
class InsertBatch:
    table: str
    columns: Sequence[str]
    rows: list[list[Any]]
    token: str
    # Filled by ClickHouseWriter.insert: (row index, reason) of the rows ClickHouse rejects
    # for good; the rest of the batch is stored.
    rejected: list[tuple[int, str]] = field(default_factory=list)

    def part(self, start: int, end: int) -> InsertBatch:
        """Rows ``start:end``, with a token of their own (the same on every retry)."""
        return InsertBatch(
            self.table, self.columns, self.rows[start:end], f"{self.token}#{start}-{end}"
        )


# ClickHouse error codes that say "this data cannot go into this table", on every retry:
# malformed or out-of-range values, type mismatches, violated CONSTRAINTs, throwIf() in a
# materialized view. Anything else (the network, memory, too many parts, a missing table or
# column: things an operator fixes) is retried.
REJECTION_CODES = frozenset({6, 27, 38, 41, 53, 69, 70, 72, 117, 131, 190, 321, 349, 395, 469})
_CODE = re.compile(r"\bCode: (\d+)\b")


def is_rejection(exc: BaseException) -> bool:
    """Whether ``exc`` is a permanent rejection of the rows (see REJECTION_CODES), not a
    failure worth retrying. The client refusing to serialise a value counts too."""
    from clickhouse_connect.driver.exceptions import DataError

    if isinstance(exc, DataError | TypeError | ValueError | OverflowError | struct.error):
        return not isinstance(exc, ConnectionError)
    match = _CODE.search(str(exc))
    return match is not None and int(match.group(1)) in REJECTION_CODES


class ClickHouseWriter:
    """Inserts batches with a deduplication token, retrying with capped exponential backoff.

    ``insert`` does not return until ClickHouse acknowledged the batch (or ``stopping``
    says to give up): the caller holds its offsets until then, which is the backpressure.
    ``client`` may be set later (a sink that connects once ClickHouse is up); inserting
    without one fails like an unreachable server, and is retried.
    """

    def __init__(
        self,
        client: Any,
        *,
        retry_max_s: float = 30.0,
        retry_initial_s: float = 0.1,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_retry: Callable[[InsertBatch, BaseException, int], None] | None = None,
    ) -> None:
        self.client = client
        self._retry_max_s = retry_max_s
        self._retry_initial_s = retry_initial_s
        self._sleep = sleep
        self._on_retry = on_retry
        self.failures = 0

    def insert_sync(self, batch: InsertBatch) -> None:
        if self.client is None:
            raise ConnectionError("not connected to ClickHouse yet")
        self.client.insert(
            batch.table,
            batch.rows,
            column_names=list(batch.columns),
            settings={**INSERT_SETTINGS, "insert_deduplication_token": batch.token},
        )

    async def insert(
        self, batch: InsertBatch, stopping: Callable[[], bool] = lambda: False
    ) -> bool:
        """Insert until acknowledged; False only when ``stopping()`` turned true first.

        A permanent rejection (:func:`is_rejection`) splits the batch in halves until the
        rows ClickHouse refuses are alone: those are listed in ``batch.rejected`` with the
        reason, everything else is stored. Any other failure is retried with backoff.
        """
        batch.rejected = []
        return await self._insert_range(batch, 0, len(batch.rows), stopping)

    async def _insert_range(
        self, batch: InsertBatch, start: int, end: int, stopping: Callable[[], bool]
    ) -> bool:
        part = batch if (start, end) == (0, len(batch.rows)) else batch.part(start, end)
        backoff = Backoff(self._retry_initial_s, self._retry_max_s)
        attempt = 0
        loop = asyncio.get_running_loop()
        while True:
            attempt += 1
            try:
                await loop.run_in_executor(None, self.insert_sync, part)
                return True
            except Exception as exc:  # retried, or split until the refused rows are alone
                if is_rejection(exc):
                    if end - start == 1:
                        log.warning("%s rejected a row for good: %s", batch.table, exc)
                        batch.rejected.append((start, f"{type(exc).__name__}: {exc}"))
                        return True
                    mid = (start + end) // 2
                    return await self._insert_range(
                        batch, start, mid, stopping
                    ) and await self._insert_range(batch, mid, end, stopping)
                self.failures += 1
                if self._on_retry is not None:
                    self._on_retry(batch, exc, attempt)
                if stopping():
                    log.warning("insert into %s failed, stopping: %s", batch.table, exc)
                    return False
                delay = backoff.next_delay()
                log.warning(
                    "insert into %s failed (attempt %d, retry in %.2fs): %s",
                    batch.table,
                    attempt,
                    delay,
                    exc,
                )
                await self._sleep(delay)
