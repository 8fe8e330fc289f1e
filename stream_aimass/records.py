"""The records that flow through the pipeline and their wire encodings."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
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


# Tenants name ClickHouse roles, users and row policies, and appear in paths and keys: no
# dot-only or path-like names ('.', '..', '.hidden', 'a..b').
TENANT_RE = re.compile(r"(?!\.)(?!.*\.\.)[A-Za-z0-9_.-]{1,128}")
TENANT_RULE = "must match ^[A-Za-z0-9_.-]{1,128}$, not start with '.' and not contain '..'"


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


def embedding_field(halves: bytes, dim: int) -> dict[str, Any]:
    """The ``embedding`` of a record: little-endian float16 values, base64."""
    return {"dtype": "float16", "dim": dim, "b64": base64.b64encode(halves).decode("ascii")}


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
    pii: tuple[Any, ...] = ()  # privacy.redact.Applied: anything with to_dict()
    include_text: bool = False  # the text (as the PII policy left it) goes in the record
    summary: Any = None  # summaries.extractive.Summary: anything with to_dict()
    # The generative stage's output: {"summary", "headline", "model": {"name", "version"}}.
    generated: dict[str, Any] | None = None

    @property
    def key(self) -> bytes:
        return record_key(self.document.tenant, self.document.id)

    def to_json(self, embedding: dict[str, Any] | None = None) -> bytes:
        """The record; ``embedding``: :func:`embedding_field` of :attr:`embedding` when the
        caller has it already (an enrich batch encodes each vector once for both records)."""
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
                "embedding": embedding or embedding_field(self.embedding, self.embedding_dim),
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
                "pii_findings": [f.to_dict() for f in self.pii],
                "summary": self.summary.to_dict() if self.summary is not None else None,
                **({"generated": self.generated} if self.generated is not None else {}),
                **({"text": doc.text} if self.include_text else {}),
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
    # What ``raw`` is: the message ("raw"), a copy under the PII policy ("redacted"), or
    # nothing but ``raw_sha256`` of the message ("hash"); the source coordinates say where
    # the message itself is.
    raw_kind: str = "raw"
    raw_sha256: str = ""

    @property
    def kept_reason(self) -> str:
        """The reason as the record keeps it (cut at MAX_DLQ_REASON_CHARS)."""
        if len(self.reason) > MAX_DLQ_REASON_CHARS:
            return self.reason[:MAX_DLQ_REASON_CHARS] + " [truncated]"
        return self.reason

    @property
    def kept_raw(self) -> bytes:
        """The raw bytes as the record keeps them (a prefix past MAX_DLQ_RAW_BYTES)."""
        return self.raw[:MAX_DLQ_RAW_BYTES]

    def to_json(self) -> bytes:
        """The ``aimass.dlq`` record: at most about 750 KB whatever the input was."""
        key = self.key[:MAX_DLQ_KEY_BYTES] if self.key else None
        return orjson.dumps(
            {
                "stage": self.stage,
                "reason": self.kept_reason,
                "error_type": self.error_type,
                "raw_b64": base64.b64encode(self.kept_raw).decode("ascii"),
                "raw_bytes": len(self.raw),
                "raw_truncated": len(self.raw) > MAX_DLQ_RAW_BYTES,
                "key_b64": base64.b64encode(key).decode("ascii") if key else None,
                "key_truncated": self.key is not None and len(self.key) > MAX_DLQ_KEY_BYTES,
                "source": self.source.to_dict(),
                "failed_at_ms": self.failed_at_ms,
                "raw_kind": self.raw_kind,
                "raw_sha256": self.raw_sha256 or None,
            }
        )

    @property
    def dlq_key(self) -> bytes:
        s = self.source
        return f"{s.topic}:{s.partition}:{s.offset}".encode()


class ItemVectorError(ValueError):
    """An item-vector record that cannot be used (the reason is the message)."""


@dataclass(frozen=True, slots=True)
class ItemVector:
    """One item as published on ``aimass.item-vectors`` (key ``tenant:item_id``)."""

    tenant: str
    item_id: str
    kind: str
    ts_ms: int
    vector: np.ndarray  # float32, unit norm
    model: ModelRef
    updated_at_ms: int
    title: str = ""
    category: str = ""
    source: dict[str, Any] = field(default_factory=dict)
    version: int | None = None  # the source document's own ``version`` field, if any

    @property
    def key(self) -> bytes:
        return item_key(self.tenant, self.item_id)

    def row_version(self, offset: int = 0) -> int:
        """The order of this item's versions (see ``row_version``): from the document it came
        from; a record without a source (an older producer, or vectors published by hand) by
        its ``updated_at_ms``, then its own message's ``offset``."""
        ts, off = self.source.get("timestamp_ms"), self.source.get("offset")
        if isinstance(ts, int) and isinstance(off, int):
            return row_version(self.version, ts, off)
        return row_version(self.version, self.updated_at_ms, offset)

    def to_json(self, embedding: dict[str, Any] | None = None) -> bytes:
        """The record; ``embedding``: :func:`embedding_field` of :attr:`vector` as float16
        when the caller has it already."""
        if embedding is None:
            halves = self.vector.astype("<f2")
            embedding = embedding_field(halves.tobytes(), int(halves.shape[0]))
        return orjson.dumps(
            {
                "tenant": self.tenant,
                "item_id": self.item_id,
                "kind": self.kind,
                "title": self.title,
                "category": self.category,
                "ts": self.ts_ms,
                "embedding": embedding,
                "model": {"name": self.model.name, "version": self.model.version},
                "source": self.source,
                "version": self.version,
                "updated_at_ms": self.updated_at_ms,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> ItemVector:
        try:
            obj = orjson.loads(raw)
            embedding = obj["embedding"]
            if embedding.get("dtype") != "float16":
                raise ItemVectorError(f"embedding dtype {embedding.get('dtype')!r} is not float16")
            vector = np.frombuffer(base64.b64decode(embedding["b64"]), dtype="<f2")
            if vector.shape[0] != int(embedding["dim"]):
                raise ItemVectorError("embedding length does not match its dim")
            model = obj["model"]
            version = obj.get("version")
            if version is not None and (
                not isinstance(version, int) or isinstance(version, bool) or version < 0
            ):
                raise ItemVectorError(f"version {version!r} is not a non-negative integer")
            return cls(
                tenant=str(obj["tenant"]),
                item_id=str(obj["item_id"]),
                kind=str(obj.get("kind", "document")),
                ts_ms=int(obj["ts"]),
                vector=vector.astype(np.float32),
                model=ModelRef(str(model["name"]), str(model["version"])),
                updated_at_ms=int(obj.get("updated_at_ms", 0)),
                title=str(obj.get("title", "")),
                category=str(obj.get("category", "")),
                source=dict(obj.get("source") or {}),
                version=version,
            )
        except ItemVectorError:
            raise
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ItemVectorError(f"bad item vector: {type(exc).__name__}: {exc}") from exc


def record_key(tenant: str, ident: str) -> bytes:
    """The one key format of every keyed topic: ``tenant:id`` (documents, enriched records,
    items and item vectors) and ``tenant:user_id`` (events, profiles, recommendations)."""
    return f"{tenant}:{ident}".encode()


def item_key(tenant: str, item_id: str) -> bytes:
    return record_key(tenant, item_id)


def split_key(key: bytes | None) -> tuple[str, str] | None:
    """``(tenant, item_id)`` from a ``tenant:item_id`` key (split on the first ':'), or None."""
    if not key:
        return None
    try:
        tenant, sep, item_id = key.decode("utf-8").partition(":")
    except UnicodeDecodeError:
        return None
    return (tenant, item_id) if sep and tenant and item_id else None


@dataclass(frozen=True, slots=True)
class UnreadableBatch:
    """A record batch the consumer could not decode, as its marker record describes it.

    The marker has the batch's last offset (committing past it moves on), no key and no
    value; its headers say which offsets it covered, why, and hold the raw batch.
    """

    first_offset: int
    last_offset: int
    codec: str
    reason: str
    raw: bytes

    @property
    def records(self) -> int:
        return self.last_offset - self.first_offset + 1

    def describe(self) -> str:
        return (
            f"record batch at offsets {self.first_offset}-{self.last_offset} ({self.records} "
            f"records, codec {self.codec}) cannot be read: {self.reason}; its records are "
            "skipped, raw_b64 holds the batch as fetched"
        )


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One recommendation (topic ``aimass.recommendations``, key ``tenant:user_id``): the
    top items for a user after their events ``trigger_event_ids`` (the last one is
    ``trigger_event_id``), in rank order."""

    tenant: str
    user_id: str
    trigger_event_ids: tuple[str, ...]
    items: tuple[dict[str, Any], ...]  # item_id, score, rank, category
    cold_start: bool
    k: int
    model: dict[str, str]
    event: Source  # where the last trigger event was
    event_ts_ms: int
    ts_ms: int
    worker: str = ""

    @property
    def key(self) -> bytes:
        return record_key(self.tenant, self.user_id)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "tenant": self.tenant,
                "user_id": self.user_id,
                "trigger_event_id": self.trigger_event_ids[-1],
                "trigger_event_ids": list(self.trigger_event_ids),
                "items": list(self.items),
                "cold_start": self.cold_start,
                "k": self.k,
                "model": self.model,
                "latency_ms": max(0, self.ts_ms - self.event.timestamp_ms),
                "ts": self.ts_ms,
                "event_ts": self.event_ts_ms,
                "source": self.event.to_dict(),
                "worker": self.worker,
            }
        )
