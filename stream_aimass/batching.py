"""Token-budget micro-batching with an injected clock.

A batch costs what the model pays for it: padded to its longest member, so
``len(batch) * max(tokens)``. Items are sorted by length before they are cut into batches,
which keeps padding (wasted compute) small.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Batch(Generic[T]):
    items: list[T]
    costs: list[int]
    oldest_enqueued: float

    @property
    def padded_cost(self) -> int:
        return len(self.costs) * max(self.costs) if self.costs else 0

    def __len__(self) -> int:
        return len(self.items)


class TokenBudgetBatcher(Generic[T]):
    """Collects items with a token cost and releases length-sorted batches.

    :meth:`next_batch` gives the model its next batch when the model is free: once the
    pending items fill a batch (padded cost reaches ``max_tokens`` or ``max_items``), once
    the oldest pending item has waited ``max_wait_s``, or at once when asked.
    :meth:`flush` cuts everything pending into batches (a drain, or a benchmark's fixed set).

    Pending items are kept sorted by cost (then arrival) as they come, and in arrival order
    beside it, so forming a batch costs a binary search and a slice, not a sort of
    everything pending (thousands of items at GPU rates).
    """

    def __init__(
        self,
        max_tokens: int,
        max_items: int,
        max_wait_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_tokens < 1 or max_items < 1 or max_wait_s < 0:
            raise ValueError("max_tokens and max_items must be >= 1, max_wait_s >= 0")
        self.max_tokens = max_tokens
        self.max_items = max_items
        self.max_wait_s = max_wait_s
        self._clock = clock
        # (cost, seq, enqueued_at, item), sorted: (cost, seq) is unique, so the tuples
        # never compare past it.
        self._pending: list[tuple[int, int, float, T]] = []
        self._arrivals: deque[int] = deque()  # seqs in arrival order; taken ones skipped
        self._live: dict[int, tuple[int, float]] = {}  # seq -> (cost, enqueued_at)
        self._seq = 0
        self._pending_tokens = 0

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def pending_tokens(self) -> int:
        return self._pending_tokens

    def add(self, item: T, cost: int) -> None:
        # An item over budget still runs, alone: the budget bounds batches, never drops work.
        cost = max(1, cost)
        now = self._clock()
        self._seq += 1
        bisect.insort(self._pending, (cost, self._seq, now, item))
        self._arrivals.append(self._seq)
        self._live[self._seq] = (cost, now)
        self._pending_tokens += cost

    def set_limits(self, max_tokens: int, max_wait_s: float) -> None:
        """Change the budget and wait (adaptive batching); applies to pending items too."""
        if max_tokens < 1 or max_wait_s < 0:
            raise ValueError("max_tokens must be >= 1, max_wait_s >= 0")
        self.max_tokens = max_tokens
        self.max_wait_s = max_wait_s

    def _oldest(self) -> int | None:
        """The seq of the oldest pending item."""
        while self._arrivals and self._arrivals[0] not in self._live:
            self._arrivals.popleft()
        return self._arrivals[0] if self._arrivals else None

    def deadline(self) -> float | None:
        """When the oldest pending item must go (clock units), or None when empty."""
        oldest = self._oldest()
        if oldest is None:
            return None
        return self._live[oldest][1] + self.max_wait_s

    def _full(self) -> bool:
        if len(self._pending) >= self.max_items:
            return True
        # Cheapest possible padded cost of everything pending is at least the raw sum.
        return self._pending_tokens >= self.max_tokens

    def next_batch(self, *, now: bool = False) -> Batch[T] | None:
        """The batch to run now, or None while it pays to wait (for when the model is free).

        A batch goes when the pending items fill one (``max_tokens`` or ``max_items``), when
        the oldest has waited ``max_wait_s``, or at once with ``now`` (an idle model that
        should not wait, or draining). It is formed when the model can take it, so the
        documents that arrived while the model was busy all join it: batches grow with the
        load by themselves. It holds the oldest pending item with the items just shorter
        than it (then just longer, if there is room), so padding stays small and nothing
        waits behind a stream of newer documents.
        """
        seq = self._oldest()
        if seq is None:
            return None
        width, enqueued = self._live[seq]
        expired = self._clock() >= enqueued + self.max_wait_s
        if not (now or expired or self._full()):
            return None
        ordered = self._pending
        oldest = bisect.bisect_left(ordered, (width, seq))  # a prefix sorts first
        # Everything up to the oldest is no longer than it: padded cost = count * width.
        fit = max(1, min(self.max_items, self.max_tokens // width))
        lo, hi = max(0, oldest + 1 - fit), oldest + 1
        while (
            hi < len(ordered)
            and hi - lo < self.max_items
            and (hi - lo + 1) * ordered[hi][0] <= self.max_tokens
        ):
            hi += 1
        chosen = ordered[lo:hi]
        del ordered[lo:hi]
        for cost, taken, _, _ in chosen:
            del self._live[taken]
            self._pending_tokens -= cost
        return Batch([p[3] for p in chosen], [p[0] for p in chosen], enqueued)

    def flush(self) -> list[Batch[T]]:
        """Everything pending, as length-sorted batches."""
        if not self._pending:
            return []
        batches = self._cut(self._pending)
        self._pending = []
        self._live.clear()
        self._arrivals.clear()
        self._pending_tokens = 0
        return batches

    def _cut(self, ordered: list[tuple[int, int, float, T]]) -> list[Batch[T]]:
        batches: list[Batch[T]] = []
        items: list[T] = []
        costs: list[int] = []
        oldest = float("inf")
        for cost, _, enqueued, item in ordered:
            # Sorted ascending, so the new item is the longest: padded cost = n * cost.
            if items and (
                (len(items) + 1) * cost > self.max_tokens or len(items) >= self.max_items
            ):
                batches.append(Batch(items, costs, oldest))
                items, costs, oldest = [], [], float("inf")
            items.append(item)
            costs.append(cost)
            oldest = min(oldest, enqueued)
        if items:
            batches.append(Batch(items, costs, oldest))
        return batches


@dataclass(frozen=True, slots=True)
class AdaptiveBatching:
    """The batch token budget and wait as a function of the backlog.

    A quiet stream (backlog near 0) gets small batches released at once: latency is the
    model's time for a few documents. As the backlog grows toward ``full_backlog``
    documents, the budget grows linearly to ``max_tokens`` and the wait to ``max_wait_s``:
    large batches, which is where the model is fastest per document.
    """

    min_tokens: int
    max_tokens: int
    max_wait_s: float
    full_backlog: int

    def __post_init__(self) -> None:
        if not 1 <= self.min_tokens <= self.max_tokens or self.full_backlog < 1:
            raise ValueError("need 1 <= min_tokens <= max_tokens and full_backlog >= 1")

    def limits(self, backlog: int) -> tuple[int, float]:
        """(token budget, wait in seconds) for ``backlog`` documents not yet enriched."""
        fill = min(1.0, max(0, backlog) / self.full_backlog)
        tokens = round(self.min_tokens + fill * (self.max_tokens - self.min_tokens))
        return tokens, self.max_wait_s * fill
