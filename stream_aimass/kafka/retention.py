"""Records the broker deleted before a role read them: found, counted and told, never silent.

A broker deletes old records by retention (the embedded broker keeps about 5 MiB per
partition, whatever was consumed). A consumer whose position was deleted is moved on to the
oldest record left (``auto_offset_reset``), which skips the deleted ones without a word.
:class:`LossWatch` notices: it knows where each partition's next record should be (the
offset after the last one fetched, else the group's committed offset), and when a fetch
starts later than that it asks the broker for the partition's first offset. Only when that
is past the expected offset were records deleted; any other gap (a compacted topic, the
markers of transactions) is not a loss.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stream_aimass.records import DeadLetter, Source

log = logging.getLogger("stream_aimass.kafka")

STAGE_RETENTION = "retention"

RETENTION_HINT = (
    "deleted by the broker's retention before they were read (the embedded broker keeps "
    "about 5 MiB per partition: a role that falls that far behind loses records; use a "
    "Kafka cluster with enough retention)"
)


@dataclass(frozen=True, slots=True)
class Lost:
    """Offsets ``start`` to ``end`` (exclusive) of a partition were deleted unread."""

    topic: str
    partition: int
    start: int
    end: int

    @property
    def count(self) -> int:
        return self.end - self.start

    def describe(self, role: str) -> str:
        return (
            f"{self.count} records of {self.topic}[{self.partition}] (offsets {self.start} to "
            f"{self.end - 1}) were {RETENTION_HINT}; the {role} role never saw them"
        )

    def dead_letter(self, role: str, timestamp_ms: int) -> DeadLetter:
        """The dead letter that keeps the loss on record (stage ``retention``, at the first
        lost offset; ``timestamp_ms``: the Kafka timestamp of the first record after it)."""
        return DeadLetter(
            stage=STAGE_RETENTION,
            reason=self.describe(role),
            raw=b"",
            source=Source(self.topic, self.partition, self.start, timestamp_ms),
            failed_at_ms=time.time_ns() // 1_000_000,
            error_type="RecordsLost",
        )


class LossWatch:
    """Finds records deleted before they were fetched, partition by partition.

    Call :meth:`check` with every non-empty fetch, before anything else moves the positions;
    :meth:`forget` the partitions a rebalance takes away (their next owner checks them).
    """

    def __init__(self) -> None:
        self._next: dict[Any, int] = {}

    def forget(self, partitions: Iterable[Any] | None = None) -> None:
        if partitions is None:
            self._next.clear()
        else:
            for tp in partitions:
                self._next.pop(tp, None)

    async def check(self, consumer: Any, records: dict[Any, list[Any]]) -> list[Lost]:
        lost: list[Lost] = []
        for tp, messages in records.items():
            if not messages:
                continue
            first = messages[0].offset
            expected = self._next.get(tp)
            if expected is None:
                expected = await consumer.committed(tp)
            self._next[tp] = messages[-1].offset + 1
            if expected is None or first <= expected:
                continue
            begins = await consumer.beginning_offsets([tp])
            begin = begins.get(tp)
            if begin is not None and begin > expected:
                gone = Lost(tp.topic, tp.partition, expected, min(begin, first))
                lost.append(gone)
        return lost


def report(lost: Iterable[Lost], role: str, counter: Any) -> None:
    """Log each loss as an error and count it in ``counter`` (labels role, topic)."""
    for gone in lost:
        log.error("%s", gone.describe(role))
        counter.labels(role, gone.topic).inc(gone.count)
