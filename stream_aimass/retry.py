"""Capped exponential backoff, shared by every retry loop: Kafka produces (enrich role),
ClickHouse inserts and ClickHouse connects (sink role)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable

INITIAL_S = 0.1


class Backoff:
    """Capped exponential backoff with jitter.

    The delay starts at ``initial_s`` and doubles after each wait up to ``max_s``; each wait
    is drawn uniformly from the upper half of the current delay, so workers that failed
    together do not retry in lockstep.
    """

    def __init__(
        self,
        initial_s: float = INITIAL_S,
        max_s: float = 30.0,
        rand: Callable[[], float] | None = None,
    ) -> None:
        self.max_s = max_s
        self._delay = min(initial_s, max_s)
        self._rand = rand
        self.attempts = 0

    def next_delay(self) -> float:
        """The next wait in seconds (and count an attempt)."""
        delay = self._delay
        self._delay = min(delay * 2, self.max_s)
        self.attempts += 1
        r = self._rand() if self._rand is not None else random.random()
        return delay * (0.5 + r / 2)


async def sleep_unless(event: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``event`` is set meanwhile (a stop cuts a backoff short)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
