"""Offset bookkeeping for at-least-once commits."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from aiokafka import TopicPartition


class OffsetTracker:
    """Which offsets of each partition are done, and so which offset may be committed.

    Offsets are added in fetch order; they finish in any order. The committable offset of a
    partition is one past the longest finished prefix: nothing after an unfinished record
    is ever committed.
    """

    def __init__(self) -> None:
        self._inflight: dict[TopicPartition, deque[list[int]]] = {}
        self._index: dict[tuple[TopicPartition, int], list[int]] = {}
        self._committable: dict[TopicPartition, int] = {}

    def add(self, tp: TopicPartition, offset: int) -> None:
        if (tp, offset) in self._index:
            return  # fetched again (seek after an error): still the same record in flight
        entry = [offset, 0]
        self._inflight.setdefault(tp, deque()).append(entry)
        self._index[(tp, offset)] = entry

    def done(self, tp: TopicPartition, offset: int) -> None:
        entry = self._index.pop((tp, offset), None)
        if entry is None:
            return  # partition was revoked and forgotten meanwhile
        entry[1] = 1
        queue = self._inflight[tp]
        while queue and queue[0][1]:
            self._committable[tp] = queue.popleft()[0] + 1

    def pending(self, tps: Iterable[TopicPartition] | None = None) -> int:
        keys = self._inflight.keys() if tps is None else tps
        return sum(len(self._inflight.get(tp, ())) for tp in keys)

    def take_committable(
        self, tps: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Offsets newly committable since the last call (only of ``tps`` when given)."""
        if tps is None:
            out = self._committable
            self._committable = {}
            return out
        return {tp: self._committable.pop(tp) for tp in set(tps) if tp in self._committable}

    def forget_all(self) -> None:
        """Drop everything in flight (the consumer that fetched it is gone)."""
        self.forget(list(self._inflight))

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            for entry in self._inflight.pop(tp, ()):
                self._index.pop((tp, entry[0]), None)
            self._committable.pop(tp, None)
