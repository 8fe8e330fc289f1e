"""Capped exponential backoff with jitter, shared by every retry loop."""

from __future__ import annotations

import asyncio

import pytest

from stream_aimass.retry import Backoff, sleep_unless


def test_backoff_doubles_up_to_the_ceiling_with_jitter() -> None:
    top = Backoff(0.1, 1.0, rand=lambda: 1.0)
    assert [top.next_delay() for _ in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    bottom = Backoff(0.1, 1.0, rand=lambda: 0.0)
    assert [bottom.next_delay() for _ in range(5)] == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.5])
    assert bottom.attempts == 5
    assert Backoff(5.0, 2.0, rand=lambda: 1.0).next_delay() == 2.0  # initial above the ceiling


def test_sleep_unless_returns_early_once_the_event_is_set() -> None:
    async def run() -> float:
        event = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, event.set)
        t0 = loop.time()
        await sleep_unless(event, 30)
        return loop.time() - t0

    assert asyncio.run(run()) < 10
