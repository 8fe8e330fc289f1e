"""Rows of the recommendation path's tables: ``items`` (item vectors and their tombstones)
and ``recommendations``, each value checked against its column (:mod:`.values`).
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from stream_aimass.records import (
    record_key,
    row_version,
    split_key,
)
from stream_aimass.sink import values as v
from stream_aimass.sink.rows import RowError, source_version

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
        rec = v.json_object(orjson.loads(value), "item vector")
        tenant = v.identifier(rec["tenant"], "tenant")
        item_id = v.identifier(rec["item_id"], "item_id")
        if key is not None and key != record_key(tenant, item_id):
            # Compaction and tombstones go by the key: a row under another id could never
            # be deleted.
            raise ValueError(f"key {v.show(key)} is not {tenant}:{item_id}")
        kind = v.string(rec["kind"], "kind")
        if kind not in ITEM_KINDS:
            raise ValueError(f"kind {v.show(kind)} is not one of {', '.join(ITEM_KINDS)}")
        _check_embedding(rec["embedding"])
        model = v.json_object(rec["model"], "model")
        updated_at_ms = v.integer(rec["updated_at_ms"], "updated_at_ms", v.MAX_EPOCH_MS)
        # The version of the document the vector came from; a record without a source (an
        # older producer, or vectors published by hand) by its updated_at_ms, then offset.
        if rec.get("source"):
            version = source_version(rec, "item vector")
        else:
            version = row_version(None, updated_at_ms, offset)
        return [
            tenant,
            item_id,
            kind,
            v.optional_string(rec.get("title"), "title"),
            v.optional_string(rec.get("category"), "category"),
            v.epoch_ms(rec["ts"], "ts"),
            v.string(model.get("name"), "model.name"),
            v.string(model.get("version"), "model.version"),
            0,
            topic,
            partition,
            offset,
            v.utc_datetime(updated_at_ms),
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
        raise RowError(f"item-vector tombstone key {v.show(key)} is not tenant:item_id")
    tenant, item_id = parts
    if not 0 <= timestamp_ms <= v.MAX_EPOCH_MS:
        # updated_at orders the tombstone against the item's updates: it needs a real time.
        raise RowError(f"item-vector tombstone {v.show(key)} has no usable Kafka timestamp")
    deleted_at = v.utc_datetime(timestamp_ms)
    return [
        tenant, item_id, "", "", "", deleted_at, "", "",
        1, topic, partition, offset, deleted_at, row_version(None, timestamp_ms, offset),
    ]  # fmt: skip


def _check_embedding(value: Any) -> None:
    """The embedding the workers' item index would load: float16, ``dim`` values."""
    embedding = v.json_object(value, "embedding")
    dtype = embedding.get("dtype")
    if dtype != "float16":
        raise ValueError(f"embedding dtype {v.show(dtype)} is not float16")
    dim = embedding.get("dim")
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise ValueError(f"embedding.dim must be a positive integer, not {v.show(dim)}")
    size = len(base64.b64decode(v.string(embedding.get("b64"), "embedding.b64")))
    if size != 2 * dim:
        raise ValueError(f"embedding.b64 holds {size} bytes, not {2 * dim} for dim {dim}")


def recommendation_row(value: bytes, topic: str, partition: int, offset: int) -> list[Any]:
    """A ``recommendations`` row from an ``aimass.recommendations`` record.

    Items are kept in the order given (rank order). Optional keys: ``event_ts`` (default:
    ``ts``), ``cold_start`` (false) and ``k`` (the number of items).
    """
    try:
        rec = v.json_object(orjson.loads(value), "recommendation")
        items = rec["items"]
        if not isinstance(items, list):
            raise TypeError(f"items must be a list, not {type(items).__name__}")
        item_ids: list[str] = []
        scores: list[float] = []
        seen: set[str] = set()
        for i, entry in enumerate(items):
            item = v.json_object(entry, f"items[{i}]")
            item_id = v.identifier(item.get("item_id"), f"items[{i}].item_id")
            if item_id in seen:
                # A duplicate would count twice in recommendation-ctr.
                raise ValueError(f"item {v.show(item_id)} appears twice")
            seen.add(item_id)
            item_ids.append(item_id)
            scores.append(v.float32(item.get("score"), f"items[{i}].score"))
        ts = v.epoch_ms(rec["ts"], "ts")
        event_ts = rec.get("event_ts")
        cold_start = rec.get("cold_start")
        cold_start = False if cold_start is None else cold_start
        if not isinstance(cold_start, bool):
            raise TypeError(f"cold_start must be true or false, not {v.show(cold_start)}")
        k = rec.get("k")
        k = len(item_ids) if k is None else k
        latency_ms = v.float32(rec["latency_ms"], "latency_ms")
        if latency_ms < 0:
            raise ValueError(f"latency_ms {latency_ms} is negative")
        model = v.json_object(rec["model"], "model")
        return [
            v.identifier(rec["tenant"], "tenant"),
            v.identifier(rec["user_id"], "user_id"),
            v.identifier(rec["trigger_event_id"], "trigger_event_id"),
            ts,
            ts if event_ts is None else v.epoch_ms(event_ts, "event_ts"),
            item_ids,
            scores,
            int(cold_start),
            v.integer(k, "k", v.UINT16_MAX),
            v.string(model.get("name"), "model.name"),
            v.string(model.get("version"), "model.version"),
            latency_ms,
            topic,
            partition,
            offset,
        ]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise RowError(f"recommendation is malformed: {type(exc).__name__}: {exc}") from exc
