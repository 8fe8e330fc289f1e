"""``stream-aimass dlq replay``: dead letters sent back to where they came from.

Once the cause of a dead letter is fixed (a bad deploy, a model that failed on some
documents, a schema the producer now follows), its message can go round again: this reads
``aimass.dlq`` from the start up to its end when the replay began (no consumer group, so
nothing is committed and a replay can be repeated), keeps the dead letters the filters
select, and produces each one's original bytes with its original key to its source topic.
Replaying twice is harmless downstream: an enriched document is stored by id and version
(the newest wins), an event by its event id.

Not replayed, and counted as skipped with the reason: dead letters whose raw bytes were cut
(``raw_truncated``: the source topic still has the message, at ``source.offset``), and those
without a source message (stage ``retention``: the broker deleted it before it was read),
and those kept under a PII policy (``raw_kind`` ``redacted`` or ``hash``: not the message).
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from stream_aimass.kafka.clients import make_consumer, make_producer, topic_partitions
from stream_aimass.settings import Settings


@dataclass(frozen=True, slots=True)
class ReplayFilter:
    """Which dead letters to replay: every given condition must hold."""

    stage: str | None = None
    source_topic: str | None = None
    since_ms: int | None = None  # failed_at_ms >= since
    until_ms: int | None = None  # failed_at_ms < until
    reason_contains: str | None = None

    def __call__(self, dead: dict[str, Any]) -> bool:
        failed = dead.get("failed_at_ms", 0)
        source = dead.get("source") or {}
        return (
            (self.stage is None or dead.get("stage") == self.stage)
            and (self.source_topic is None or source.get("topic") == self.source_topic)
            and (self.since_ms is None or failed >= self.since_ms)
            and (self.until_ms is None or failed < self.until_ms)
            and (self.reason_contains is None or self.reason_contains in dead.get("reason", ""))
        )


@dataclass(slots=True)
class ReplayReport:
    scanned: int = 0
    matched: int = 0
    replayed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    to_topics: Counter[str] = field(default_factory=Counter)

    def to_dict(self, dry_run: bool) -> dict[str, Any]:
        return {
            "dry_run": dry_run, "scanned": self.scanned, "matched": self.matched,
            "replayed": self.replayed, "skipped": dict(self.skipped),
            "to_topics": dict(self.to_topics),
        }  # fmt: skip


def replayable(dead: dict[str, Any], allowed: set[str]) -> tuple[str, bytes, bytes | None] | str:
    """(source topic, raw bytes, key) of a dead letter, or why it cannot go back."""
    source = dead.get("source") or {}
    topic = source.get("topic")
    if dead.get("stage") == "retention":
        return "no source message (the broker deleted it before it was read)"
    if dead.get("raw_truncated") or dead.get("key_truncated"):
        return "raw bytes or key were truncated: re-read the source topic at source.offset"
    if dead.get("raw_kind", "raw") != "raw":
        return (
            "raw bytes were kept only as the PII policy allows (raw_kind "
            f"{dead.get('raw_kind')}): the source topic has the message at source.offset"
        )
    if topic not in allowed:
        return f"source topic {topic!r} is not an input topic"
    key = dead.get("key_b64")
    return (
        str(topic),
        base64.b64decode(dead.get("raw_b64") or ""),
        base64.b64decode(key) if key else None,
    )


async def replay_dead_letters(
    settings: Settings,
    bootstrap: str,
    selected: ReplayFilter,
    *,
    dry_run: bool = False,
    limit: int | None = None,
    progress: Callable[[int], None] = lambda _: None,
) -> ReplayReport:
    """Replay the dead letters ``selected`` chooses (at most ``limit``)."""
    allowed = {settings.topic_documents, settings.topic_items, settings.topic_events}
    report = ReplayReport()
    consumer = make_consumer(settings, bootstrap, None)
    producer = None if dry_run else make_producer(settings, bootstrap)
    await consumer.start()
    try:
        if producer is not None:
            await producer.start()
        tps = await topic_partitions(consumer, [settings.topic_dlq])
        waiting: set[TopicPartition] = set()
        if tps:
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            waiting = {tp for tp in tps if ends[tp] > 0}
        while waiting and (limit is None or report.matched < limit):
            batch = await consumer.getmany(*waiting, timeout_ms=500)
            for tp, messages in batch.items():
                for msg in messages:
                    if msg.offset >= ends[tp]:
                        break
                    report.scanned += 1
                    await _one(msg.value, selected, allowed, report, producer, limit)
                if await consumer.position(tp) >= ends[tp]:
                    waiting.discard(tp)
            progress(report.scanned)
        if producer is not None:
            await producer.flush()
    finally:
        if producer is not None:
            await producer.stop()
        await consumer.stop()
    return report


async def _one(
    value: bytes | None,
    selected: ReplayFilter,
    allowed: set[str],
    report: ReplayReport,
    producer: Any,
    limit: int | None,
) -> None:
    try:
        dead = json.loads(value or b"")
    except ValueError:
        report.skipped["not a dead letter record (unreadable JSON)"] += 1
        return
    if not isinstance(dead, dict) or not selected(dead):
        return
    if limit is not None and report.matched >= limit:
        return
    report.matched += 1
    found = replayable(dead, allowed)
    if isinstance(found, str):
        report.skipped[found] += 1
        return
    topic, raw, key = found
    if producer is not None:
        await producer.send_and_wait(topic, raw, key=key)
    report.replayed += 1
    report.to_topics[topic] += 1
