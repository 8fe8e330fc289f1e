"""The records that flow through the pipeline and their wire encodings."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson

# Dead letters keep the raw message whole up to this size (Kafka's default message limit is
# about 1 MiB); larger ones keep this prefix, the full size, and where to find the original.
MAX_DLQ_RAW_BYTES = 512 * 1024
# Keys and reasons are bounded too, so a dead letter always fits in one Kafka message: a
# hostile producer can send megabyte keys, and reasons can quote what they reject.
MAX_DLQ_KEY_BYTES = 16 * 1024
MAX_DLQ_REASON_CHARS = 4096
# The largest explicit ``version`` a document may carry: the row version keeps it in the high
# 64 bits of a UInt128, the source offset in the low 64.
MAX_EXPLICIT_VERSION = 2**63 - 1


def row_version(explicit: int | None, timestamp_ms: int, offset: int) -> int:
    """The order of one key's versions: the last *produced* version has the highest.

    ``explicit`` (a document's own ``version`` field) when given, else the Kafka timestamp of
    the source message, then its partition offset for messages of the same millisecond.
    ClickHouse keeps the row with the highest value (``ReplacingMergeTree(version)``) and the
    item index skips older vectors, so batching, retries and re-delivery cannot roll an update
    back. Negative timestamps (a message without one) count as 0.
    """
    major = explicit if explicit is not None else max(0, timestamp_ms)
    return (major << 64) | max(0, offset)


@dataclass(frozen=True, slots=True)
class Source:
    """Where a record came from: enough to find it again and to derive idempotency keys."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
        }


@dataclass(frozen=True, slots=True)
class Document:
    """A validated input document (topic ``aimass.documents``)."""

    id: str
    tenant: str
    ts_ms: int
    text: str
    source: Source
    title: str = ""
    lang: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    version: int | None = None  # the producer's own revision number, when it sends one

    @property
    def row_version(self) -> int:
        return row_version(self.version, self.source.timestamp_ms, self.source.offset)


@dataclass(frozen=True, slots=True)
class Event:
    """A validated user event (topic ``aimass.events``)."""

    event_id: str
    tenant: str
    user_id: str
    item_id: str
    type: str
    ts_ms: int
    source: Source


@dataclass(frozen=True, slots=True)
class Category:
    label: str
    score: float


@dataclass(frozen=True, slots=True)
class ModelRef:
    name: str
    version: str


@dataclass(frozen=True, slots=True)
class Classification:
    """What one configured classifier said about one document."""

    classifier: str  # its name in settings (e.g. "intent")
    model: ModelRef
    multi_label: bool
    labels: list[str]
    scores: list[float]
    predicted: tuple[str, ...]
    top: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "classifier": self.classifier,
            "model": {"name": self.model.name, "version": self.model.version},
            "multi_label": self.multi_label,
            "labels": self.labels,
            "scores": self.scores,
            "predicted": list(self.predicted),
            "top": self.top,
        }


@dataclass(frozen=True, slots=True)
class EnrichedDocument:
    """A document with everything the models said about it (topic ``aimass.enriched``)."""

    document: Document
    tokens: int
    categories: tuple[Category, ...]
    embedding: bytes  # little-endian float16
    embedding_dim: int
    model: ModelRef
    timings_ms: dict[str, float]
    enriched_at_ms: int
    worker: str = ""  # host:pid of the enrich worker, for operators tracing a record
    classifications: tuple[Classification, ...] = ()
    compute_ms: float = 0.0  # this document's share (by tokens) of its batch's model time
    models: dict[str, str] = field(default_factory=dict)  # every model used: name -> version
    entities: tuple[Any, ...] = ()  # LinkedEntity: anything with to_dict()
    entities_model: dict[str, dict[str, str]] | None = None  # {"ner": ref, "kb": ref}

    @property
    def key(self) -> bytes:
        return f"{self.document.tenant}:{self.document.id}".encode()

    def to_json(self) -> bytes:
        doc = self.document
        top = max(self.categories, key=lambda c: c.score).label if self.categories else ""
        return orjson.dumps(
            {
                "id": doc.id,
                "tenant": doc.tenant,
                "ts": doc.ts_ms,
                "title": doc.title,
                "lang": doc.lang,
                "meta": doc.meta,
                "version": doc.version,
                "text_chars": len(doc.text),
                "tokens": self.tokens,
                "categories": [{"label": c.label, "score": c.score} for c in self.categories],
                "top_category": top,
                "embedding": {
                    "dtype": "float16",
                    "dim": self.embedding_dim,
                    "b64": base64.b64encode(self.embedding).decode("ascii"),
                },
                "model": {"name": self.model.name, "version": self.model.version},
                "source": doc.source.to_dict(),
                "timings_ms": self.timings_ms,
                "enriched_at_ms": self.enriched_at_ms,
                "worker": self.worker,
                "classifications": [c.to_dict() for c in self.classifications],
                "compute_ms": self.compute_ms,
                "models": self.models or {self.model.name: self.model.version},
                "entities": [e.to_dict() for e in self.entities],
                "entities_model": self.entities_model,
            }
        )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message the pipeline could not use, kept whole with the reason (topic ``aimass.dlq``)."""

    stage: str
    reason: str
    raw: bytes
    source: Source
    failed_at_ms: int
    error_type: str = ""
    key: bytes | None = None

    def to_json(self) -> bytes:
        """The ``aimass.dlq`` record: at most about 750 KB whatever the input was."""
        reason = self.reason
        if len(reason) > MAX_DLQ_REASON_CHARS:
            reason = reason[:MAX_DLQ_REASON_CHARS] + " [truncated]"
        key = self.key[:MAX_DLQ_KEY_BYTES] if self.key else None
        return orjson.dumps(
            {
                "stage": self.stage,
                "reason": reason,
                "error_type": self.error_type,
                "raw_b64": base64.b64encode(self.raw[:MAX_DLQ_RAW_BYTES]).decode("ascii"),
                "raw_bytes": len(self.raw),
                "raw_truncated": len(self.raw) > MAX_DLQ_RAW_BYTES,
                "key_b64": base64.b64encode(key).decode("ascii") if key else None,
                "key_truncated": self.key is not None and len(self.key) > MAX_DLQ_KEY_BYTES,
                "source": self.source.to_dict(),
                "failed_at_ms": self.failed_at_ms,
            }
        )

    @property
    def dlq_key(self) -> bytes:
        s = self.source
        return f"{s.topic}:{s.partition}:{s.offset}".encode()
