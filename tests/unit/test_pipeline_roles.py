"""Which services each worker role runs."""

from __future__ import annotations

import asyncio

import pytest

from stream_aimass.pipeline import ROLES, Pipeline, serves_recs
from stream_aimass.settings import Settings


@pytest.mark.parametrize(
    ("role", "runs_events", "recs_enabled", "expected"),
    [
        ("all", True, True, True),
        ("enrich", True, True, True),
        ("enrich", False, True, False),
        ("events", False, True, True),
        ("events", True, False, False),
        ("sink", True, True, False),
        ("all", False, True, True),
    ],
)
def test_the_events_path_runs_where_the_role_and_settings_say(
    role: str, runs_events: bool, recs_enabled: bool, expected: bool
) -> None:
    settings = Settings(enrich_runs_events=runs_events, recs_enabled=recs_enabled)
    assert serves_recs(settings, role) is expected  # type: ignore[arg-type]


def test_the_roles_are_a_public_interface() -> None:
    assert set(ROLES) == {"enrich", "sink", "events", "all"}


def test_an_events_worker_runs_the_recommendation_path_alone_and_stops_on_request(
    tmp_path: pytest.TempPathFactory,
) -> None:
    settings = Settings(data_dir=tmp_path, recs_store="memory://")
    pipeline = Pipeline(settings, "127.0.0.1:1", "events")
    assert pipeline.enrich is None and pipeline.sink is None
    assert pipeline.recs is not None and pipeline.services == []

    async def scenario() -> None:
        waiting = asyncio.create_task(pipeline.wait())
        await asyncio.sleep(0.05)
        assert not waiting.done()  # no batch services: it waits for stop, not for nothing
        pipeline.stop()
        await asyncio.wait_for(waiting, 5)

    asyncio.run(scenario())
