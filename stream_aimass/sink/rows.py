"""Rows for ClickHouse from the records on the sink's topics.

Every value is checked against its column before it is buffered (:mod:`.values`): one wrong
type or out-of-range number would fail the whole insert batch, again on every retry. A record
that cannot become a row raises :class:`RowError` (the sink stores it as a dead letter).
Every row derived from a source document carries its row version (``records.row_version``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

from stream_aimass.records import (
    MAX_EXPLICIT_VERSION,
    DeadLetter,
    Event,
    row_version,
)
from stream_aimass.sink import values as v

DOCUMENT_COLUMNS = [
    "tenant", "doc_id", "ts", "title", "lang", "text_chars", "tokens", "top_category",
    "category_labels", "category_scores", "meta", "model_name", "model_version",
    "source_topic", "source_partition", "source_offset", "source_ts",
    "enriched_topic", "enriched_partition", "enriched_offset", "enriched_at",
    "compute_ms", "models", "version",
    "summary", "summary_starts", "summary_ends", "generated_summary", "headline",
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


PII_FINDING_COLUMNS = [
    "tenant", "doc_id", "ts", "field", "type", "start", "end", "action", "detector", "score",
    "enriched_topic", "enriched_partition", "enriched_offset", "enriched_at", "doc_version",
]  # fmt: skip

PII_ACTIONS = frozenset({"detect", "mask", "redact", "hash"})
RAW_KINDS = frozenset({"raw", "redacted", "hash"})


DEAD_LETTER_COLUMNS = [
    "source_topic", "source_partition", "source_offset", "source_ts", "stage", "reason",
    "error_type", "raw_b64", "raw_bytes", "raw_truncated", "raw_preview", "failed_at",
    "raw_kind", "raw_sha256",
]  # fmt: skip


EVENT_COLUMNS = [
    "tenant", "event_id", "user_id", "item_id", "type", "ts",
    "source_topic", "source_partition", "source_offset",
]  # fmt: skip


_PREVIEW_CHARS = 500


# Sent with every insert: since ClickHouse 24.7 a retried block reaches the materialized views
# (usage_hourly) even when the source table drops it; this lets them drop it too.
INSERT_SETTINGS: dict[str, Any] = {"deduplicate_blocks_in_dependent_materialized_views": 1}


class RowError(ValueError):
    """A record on an internal topic that cannot become a row."""


def _model_ref(models: dict[str, Any], role: str) -> tuple[str, str]:
    ref = models.get(role)
    if ref is None:
        return "", ""
    if not isinstance(ref, dict):
        raise TypeError(f"entities_model.{role} must be an object, not {v.show(ref)}")
    return (
        v.optional_string(ref.get("name"), f"entities_model.{role}.name"),
        v.optional_string(ref.get("version"), f"entities_model.{role}.version"),
    )


def _models(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(x, str) for x in value.values()):
        raise TypeError(f"models must map model names to version strings, not {v.show(value)}")
    return value


def source_version(rec: dict[str, Any], what: str) -> int:
    """The row version of a record derived from a source document (see ``row_version``)."""
    explicit = rec.get("version")
    if explicit is not None:
        explicit = v.integer(explicit, "version", MAX_EXPLICIT_VERSION)
    source = v.json_object(rec.get("source"), f"{what} source")
    timestamp = source.get("timestamp_ms")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise TypeError(f"source.timestamp_ms must be an integer, not {v.show(timestamp)}")
    return row_version(
        explicit, timestamp, v.integer(source.get("offset"), "source.offset", v.UINT64_MAX)
    )


def _enriched_record(value: bytes, problem: str) -> dict[str, Any]:
    try:
        return v.json_object(orjson.loads(value), "enriched record")
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise RowError(f"enriched record {problem}: {type(exc).__name__}: {exc}") from exc


@dataclass(slots=True)
class EnrichedRows:
    """Every row one ``aimass.enriched`` record becomes (parsed once for all three tables)."""

    document: list[Any]
    classifications: list[list[Any]]
    mentions: list[list[Any]]
    findings: list[list[Any]]


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
        _pii_finding_rows(rec, topic, partition, offset),
    )


def _pii_finding_rows(
    rec: dict[str, Any], topic: str, partition: int, offset: int
) -> list[list[Any]]:
    """``pii_findings`` rows (one per finding: where and what was done, no value)."""
    try:
        entries = rec.get("pii_findings") or []
        if not isinstance(entries, list):
            raise TypeError(f"pii_findings must be a list, not {v.show(entries)}")
        if not entries:
            return []
        tenant, doc_id = v.identifier(rec["tenant"], "tenant"), v.identifier(rec["id"], "id")
        ts = v.epoch_ms(rec["ts"], "ts")
        enriched_at = v.epoch_ms(rec["enriched_at_ms"], "enriched_at_ms")
        version = source_version(rec, "enriched record")
        rows: list[list[Any]] = []
        seen: set[tuple[str, int, int]] = set()
        for entry in entries:
            field = v.string(entry["field"], "field")
            start = v.char_offset(entry["start"], "start")
            end = v.char_offset(entry["end"], "end")
            if start > end:
                raise ValueError(f"finding start {start} is after its end {end}")
            if (field, start, end) in seen:
                raise ValueError(f"finding {field} {start}-{end} appears twice")
            seen.add((field, start, end))
            action = v.string(entry["action"], "action")
            if action not in PII_ACTIONS:
                raise ValueError(
                    f"finding action {v.show(action)} is not one of {sorted(PII_ACTIONS)}"
                )
            rows.append(
                [
                    tenant,
                    doc_id,
                    ts,
                    field,
                    v.identifier(entry["type"], "type"),
                    start,
                    end,
                    action,
                    v.string(entry["detector"], "detector"),
                    v.float32(entry["score"], "score"),
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
            f"enriched record has malformed pii findings: {type(exc).__name__}: {exc}"
        ) from exc


def document_row(value: bytes, topic: str, partition: int, offset: int) -> list[Any]:
    """A ``documents`` row from an ``aimass.enriched`` record."""
    return _document_row(_enriched_record(value, "is malformed"), topic, partition, offset)


def _document_row(rec: dict[str, Any], topic: str, partition: int, offset: int) -> list[Any]:
    try:
        # Every value is checked against its column: one wrong type or out-of-range number
        # would fail the whole insert batch, again on every retry.
        source = v.json_object(rec["source"], "source")
        categories = rec["categories"]
        if not isinstance(categories, list):
            raise TypeError(f"categories must be a list, not {type(categories).__name__}")
        labels: list[str] = []
        scores: list[float] = []
        for i, entry in enumerate(categories):
            category = v.json_object(entry, f"categories[{i}]")
            labels.append(v.string(category["label"], f"categories[{i}].label"))
            scores.append(v.float32(category["score"], f"categories[{i}].score"))
        model = v.json_object(rec["model"], "model")
        compute_ms = rec.get("compute_ms")
        return [
            v.identifier(rec["tenant"], "tenant"),
            v.identifier(rec["id"], "id"),
            v.epoch_ms(rec["ts"], "ts"),
            v.optional_string(rec.get("title"), "title"),
            v.optional_string(rec.get("lang"), "lang"),
            v.integer(rec["text_chars"], "text_chars", v.UINT32_MAX),
            v.integer(rec["tokens"], "tokens", v.UINT32_MAX),
            v.string(rec["top_category"], "top_category"),
            labels,
            scores,
            orjson.dumps(rec.get("meta") or {}).decode(),
            v.string(model["name"], "model.name"),
            v.string(model["version"], "model.version"),
            v.string(source["topic"], "source.topic"),
            v.integer(source["partition"], "source.partition", v.UINT32_MAX),
            v.integer(source["offset"], "source.offset", v.UINT64_MAX),
            v.kafka_timestamp(source["timestamp_ms"], "source.timestamp_ms"),
            topic,
            partition,
            offset,
            v.epoch_ms(rec["enriched_at_ms"], "enriched_at_ms"),
            v.float32(0.0 if compute_ms is None else compute_ms, "compute_ms"),
            _models(rec.get("models")),
            source_version(rec, "enriched record"),
            *_summary_values(rec),
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise RowError(f"enriched record is malformed: {type(exc).__name__}: {exc}") from exc


def _summary_values(rec: dict[str, Any]) -> list[Any]:
    """``summary``, ``summary_starts``, ``summary_ends``, ``generated_summary``, ``headline``
    (empty for a record without them: older producers, summaries off)."""
    summary = rec.get("summary")
    text, starts, ends = "", [], []
    if summary is not None:
        summary = v.json_object(summary, "summary")
        text = v.string(summary["text"], "summary.text")
        sentences = summary["sentences"]
        if not isinstance(sentences, list):
            raise TypeError(f"summary.sentences must be a list, not {v.show(sentences)}")
        for i, entry in enumerate(sentences):
            entry = v.json_object(entry, f"summary.sentences[{i}]")
            start = v.char_offset(entry["start"], f"summary.sentences[{i}].start")
            end = v.char_offset(entry["end"], f"summary.sentences[{i}].end")
            if start > end:
                raise ValueError(f"summary sentence start {start} is after its end {end}")
            starts.append(start)
            ends.append(end)
    generated = rec.get("generated")
    written, headline = "", ""
    if generated is not None:
        generated = v.json_object(generated, "generated")
        written = v.optional_string(generated.get("summary"), "generated.summary")
        headline = v.optional_string(generated.get("headline"), "generated.headline")
    return [text, starts, ends, written, headline]


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
            raise TypeError(f"classifications must be a list, not {v.show(entries)}")
        tenant, doc_id = v.identifier(rec["tenant"], "tenant"), v.identifier(rec["id"], "id")
        ts = v.epoch_ms(rec["ts"], "ts")
        enriched_at = v.epoch_ms(rec["enriched_at_ms"], "enriched_at_ms")
        version = source_version(rec, "enriched record") if entries else 0
        rows: list[list[Any]] = []
        seen: set[str] = set()
        for entry in entries:
            classifier = v.string(entry["classifier"], "classifier")
            if not classifier:
                raise ValueError("classifier name is empty")
            if classifier in seen:
                # Rows are keyed by classifier: a second entry would silently replace the first.
                raise ValueError(f"classifier {v.show(classifier)} appears twice")
            seen.add(classifier)
            labels = v.string_list(entry["labels"], "labels")
            scores = v.float32_list(entry["scores"], "scores")
            if len(labels) != len(scores):
                raise ValueError(f"{len(labels)} labels but {len(scores)} scores")
            multi_label = entry.get("multi_label")
            multi_label = False if multi_label is None else multi_label
            if not isinstance(multi_label, bool):
                raise TypeError(f"multi_label must be true or false, not {v.show(multi_label)}")
            rows.append(
                [
                    tenant,
                    doc_id,
                    ts,
                    classifier,
                    v.string(entry["model"]["name"], "model name"),
                    v.string(entry["model"]["version"], "model version"),
                    int(multi_label),
                    v.string(entry.get("top") or "", "top"),
                    v.string_list(entry.get("predicted") or [], "predicted"),
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
            raise TypeError(f"entities must be a list, not {v.show(entries)}")
        models = rec.get("entities_model") or {}
        if not isinstance(models, dict):
            raise TypeError(f"entities_model must be an object, not {v.show(models)}")
        ner_model, ner_version = _model_ref(models, "ner")
        kb_name, kb_version = _model_ref(models, "kb")
        tenant, doc_id = v.identifier(rec["tenant"], "tenant"), v.identifier(rec["id"], "id")
        ts = v.epoch_ms(rec["ts"], "ts")
        enriched_at = v.epoch_ms(rec["enriched_at_ms"], "enriched_at_ms")
        version = source_version(rec, "enriched record") if entries else 0
        rows: list[list[Any]] = []
        seen: set[tuple[int, int]] = set()
        for entry in entries:
            start = v.char_offset(entry["start"], "start")
            end = v.char_offset(entry["end"], "end")
            if start > end:
                raise ValueError(f"mention start {start} is after its end {end}")
            if (start, end) in seen:
                # Rows are keyed by span: a second mention would silently replace the first.
                raise ValueError(f"mention {start}-{end} appears twice")
            seen.add((start, end))
            label = v.string(entry["label"], "label")
            if not label:
                raise ValueError("mention label is empty")
            score = v.float32(entry["score"], "score")
            entity_id = v.optional_string(entry.get("entity_id"), "entity_id")
            rows.append(
                [
                    tenant,
                    doc_id,
                    ts,
                    start,
                    end,
                    v.string(entry["text"], "text"),
                    label,
                    entity_id,
                    v.optional_string(entry.get("name"), "name"),
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
        v.utc_datetime(event.ts_ms), s.topic, s.partition, s.offset,
    ]  # fmt: skip


def dead_letter_row(value: bytes) -> list[Any]:
    """A ``dead_letters`` row from an ``aimass.dlq`` record."""
    try:
        rec = v.json_object(orjson.loads(value), "dead letter")
        source = v.json_object(rec["source"], "source")
        raw_b64 = v.string(rec["raw_b64"], "raw_b64")
        raw = base64.b64decode(raw_b64)
        raw_bytes = rec.get("raw_bytes")
        return _dead_letter_columns(
            topic=source["topic"],
            partition=source["partition"],
            offset=source["offset"],
            timestamp_ms=source["timestamp_ms"],
            stage=rec["stage"],
            reason=rec["reason"],
            error_type=rec.get("error_type"),
            raw_b64=raw_b64,
            raw_bytes=len(raw) if raw_bytes is None else raw_bytes,
            raw_truncated=bool(rec.get("raw_truncated")),
            raw=raw,
            failed_at_ms=rec["failed_at_ms"],
            raw_kind=rec.get("raw_kind") or "raw",
            raw_sha256=rec.get("raw_sha256") or "",
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise RowError(f"dead-letter record is malformed: {type(exc).__name__}: {exc}") from exc


def dead_letter_row_of(dead: DeadLetter) -> list[Any]:
    """The ``dead_letters`` row of a dead letter made in the sink, without the JSON round trip:
    the row ``dead_letter_row(dead.to_json())`` gives."""
    kept = dead.kept_raw
    try:
        return _dead_letter_columns(
            topic=dead.source.topic,
            partition=dead.source.partition,
            offset=dead.source.offset,
            timestamp_ms=dead.source.timestamp_ms,
            stage=dead.stage,
            reason=dead.kept_reason,
            error_type=dead.error_type,
            raw_b64=base64.b64encode(kept).decode("ascii"),
            raw_bytes=len(dead.raw),
            raw_truncated=len(kept) < len(dead.raw),
            raw=kept,
            failed_at_ms=dead.failed_at_ms,
            raw_kind=dead.raw_kind,
            raw_sha256=dead.raw_sha256,
        )
    except (TypeError, ValueError) as exc:
        raise RowError(f"dead letter cannot become a row: {type(exc).__name__}: {exc}") from exc


def _dead_letter_columns(
    *,
    topic: Any,
    partition: Any,
    offset: Any,
    timestamp_ms: Any,
    stage: Any,
    reason: Any,
    error_type: Any,
    raw_b64: str,
    raw_bytes: Any,
    raw_truncated: bool,
    raw: bytes,
    failed_at_ms: Any,
    raw_kind: Any,
    raw_sha256: Any,
) -> list[Any]:
    if raw_kind not in RAW_KINDS:
        raise ValueError(f"raw_kind {v.show(raw_kind)} is not one of {sorted(RAW_KINDS)}")
    return [
        v.string(topic, "source.topic"),
        v.integer(partition, "source.partition", v.UINT32_MAX),
        v.integer(offset, "source.offset", v.UINT64_MAX),
        v.kafka_timestamp(timestamp_ms, "source.timestamp_ms"),
        v.string(stage, "stage"),
        v.string(reason, "reason"),
        v.optional_string(error_type, "error_type"),
        raw_b64,
        v.integer(raw_bytes, "raw_bytes", v.UINT64_MAX),
        1 if raw_truncated else 0,
        raw[: _PREVIEW_CHARS * 4].decode("utf-8", errors="replace")[:_PREVIEW_CHARS],
        v.epoch_ms(failed_at_ms, "failed_at_ms"),
        raw_kind,
        v.string(raw_sha256, "raw_sha256"),
    ]
