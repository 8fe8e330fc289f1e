"""What the sink holds for its next insert round: a buffer of rows per table, each row with
the message it came from, and the deduplication token that names them."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from stream_aimass.sink.item_rows import ITEM_COLUMNS, RECOMMENDATION_COLUMNS
from stream_aimass.sink.rows import (
    CLASSIFICATION_COLUMNS,
    DEAD_LETTER_COLUMNS,
    DOCUMENT_COLUMNS,
    ENTITY_MENTION_COLUMNS,
    EVENT_COLUMNS,
    PII_FINDING_COLUMNS,
)


def message_digest(msg: Any) -> bytes:
    """What identifies one Kafka message: its position, Kafka timestamp, key and value.

    Offsets alone do not: they start again at 0 on a new broker or a recreated topic, and a
    new message at a reused offset must never pass for a retry of an old one.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(struct.pack(">qq", msg.offset, int(msg.timestamp)))
    for part in (msg.key, msg.value):
        if part is None:
            h.update(b"\xff" * 8)
        else:
            h.update(struct.pack(">q", len(part)))
            h.update(part)
    return h.digest()


@dataclass(slots=True)
class TableBuffer:
    table: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    # The message each row came from (for a dead letter, should ClickHouse refuse the row).
    sources: list[tuple[TopicPartition, Any]] = field(default_factory=list)
    ranges: dict[TopicPartition, list[int]] = field(default_factory=dict)
    first_at: float = 0.0
    _content: Any = field(default_factory=lambda: hashlib.blake2b(digest_size=16))

    def add(self, row: list[Any], tp: TopicPartition, msg: Any, now: float, digest: bytes) -> None:
        """Buffer ``row``, derived from the message ``msg`` of ``tp`` whose
        :func:`message_digest` is ``digest``."""
        if not self.rows:
            self.first_at = now
        self.rows.append(row)
        self.sources.append((tp, msg))
        self._content.update(digest)
        span = self.ranges.get(tp)
        if span is None:
            self.ranges[tp] = [msg.offset, msg.offset]
        else:
            span[1] = msg.offset

    def token(self) -> str:
        """The insert's deduplication token: ClickHouse drops an insert whose token it has
        seen, so it must name these rows, not only where they came from. The offset ranges
        are there for people reading the logs; the digest of the messages is what decides."""
        parts = ",".join(
            f"{tp.topic}:{tp.partition}:{a}-{b}"
            for tp, (a, b) in sorted(
                self.ranges.items(), key=lambda kv: (kv[0].topic, kv[0].partition)
            )
        )
        return f"{self.table}|{parts}|{self._content.hexdigest()}"

    def clear(self) -> None:
        self.rows = []
        self.sources = []
        self.ranges = {}
        self._content = hashlib.blake2b(digest_size=16)


class Round:
    """One round of rows, a buffer per table: filled from fetches, then written as a whole
    and its offsets committed. Dead letters come last: rows ClickHouse refuses in the other
    tables join them, so they are stored before the round commits."""

    def __init__(self) -> None:
        self.documents = TableBuffer("documents", DOCUMENT_COLUMNS)
        self.classifications = TableBuffer("classifications", CLASSIFICATION_COLUMNS)
        self.entity_mentions = TableBuffer("entity_mentions", ENTITY_MENTION_COLUMNS)
        self.pii_findings = TableBuffer("pii_findings", PII_FINDING_COLUMNS)
        self.events = TableBuffer("events", EVENT_COLUMNS)
        self.items = TableBuffer("items", ITEM_COLUMNS)
        self.recommendations = TableBuffer("recommendations", RECOMMENDATION_COLUMNS)
        self.dead = TableBuffer("dead_letters", DEAD_LETTER_COLUMNS)
        self.buffers = (
            self.documents,
            self.classifications,
            self.entity_mentions,
            self.pii_findings,
            self.events,
            self.items,
            self.recommendations,
            self.dead,
        )
