"""Admission of HTTP documents: bounded, refused with a reason and a retry time, and
every reply still waiting fails when the worker stops."""

from __future__ import annotations

import asyncio

import pytest

from stream_aimass.enrich.direct import DirectRequests, Refused


def test_admission_is_bounded_and_released() -> None:
    direct = DirectRequests(limit=10)
    direct.admit(6, ready=True)
    with pytest.raises(Refused) as full:
        direct.admit(5, ready=True)
    assert full.value.status == 429 and full.value.retry_after_s == 1
    assert "6 documents" in full.value.reason and "at most 10" in full.value.reason
    direct.admit(4, ready=True)
    direct.release(10)
    direct.admit(10, ready=True)
    with pytest.raises(Refused) as starting:
        DirectRequests(limit=10).admit(1, ready=False)
    assert starting.value.status == 503


def test_sources_number_the_requests() -> None:
    direct = DirectRequests(limit=1)
    first, second = direct.source(), direct.source()
    assert (first.topic, second.offset - first.offset) == ("api", 1)


def test_closing_fails_waiting_replies_and_refuses_new_ones() -> None:
    async def run() -> None:
        direct = DirectRequests(limit=4)
        done, waiting = direct.reply(), direct.reply()
        done.set_result("ok")
        direct.close("stopping")
        with pytest.raises(Refused):
            await waiting
        assert await done == "ok"
        with pytest.raises(Refused) as refused:
            direct.admit(1, ready=True)
        assert refused.value.status == 503 and refused.value.reason == "stopping"

    asyncio.run(run())
