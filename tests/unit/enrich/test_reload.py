"""Hot swap: a changed classifiers file swaps the set between batches; a bad one changes nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stream_aimass.enrich.enricher import DocumentEnricher
from stream_aimass.enrich.reload import (
    ClassifierWatcher,
    current_specs,
    read_classifier_file,
    write_classifier_file,
)
from stream_aimass.models.encoder import Encoder
from stream_aimass.observability import Metrics
from stream_aimass.settings import Settings
from stream_aimass.testing import make_head_model as head_model


@pytest.fixture()
def setup(tmp_path: Path, tiny_encoder: Encoder) -> tuple[Settings, DocumentEnricher, Metrics]:
    settings = Settings(data_dir=tmp_path, model_reload_interval_s=0.01)
    metrics = Metrics()
    enricher = DocumentEnricher(
        tiny_encoder, None, "tiny", models_dir=settings.resolved_models_dir, metrics=metrics
    )
    return settings, enricher, metrics


def test_file_wins_over_setting_and_round_trips(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, classifiers={"a": "x"})
    assert current_specs(settings) == {"a": "x"}
    write_classifier_file(settings.resolved_classifiers_file, {"b": "y"})
    assert current_specs(settings) == {"b": "y"}
    assert read_classifier_file(settings.resolved_classifiers_file) == {"b": "y"}


def test_watcher_swaps_on_change_and_keeps_old_set_on_error(
    setup: tuple[Settings, DocumentEnricher, Metrics], tiny_encoder: Encoder
) -> None:
    settings, enricher, metrics = setup
    models = settings.resolved_models_dir
    v1 = head_model(models / "intent", tiny_encoder, ["a", "b"], seed=1)
    v2 = head_model(models / "intent", tiny_encoder, ["a", "b"], seed=2)
    watcher = ClassifierWatcher(settings, enricher, metrics)

    async def scenario() -> None:
        assert not await watcher.check()  # no file yet, nothing changed
        write_classifier_file(settings.resolved_classifiers_file, {"intent": str(v1)})
        assert await watcher.check()
        assert enricher.classifiers.models() == {"intent": v1.name}
        assert not await watcher.check()  # unchanged file: no reload
        write_classifier_file(settings.resolved_classifiers_file, {"intent": "missing-model"})
        assert not await watcher.check()
        assert enricher.classifiers.models() == {"intent": v1.name}  # the old set serves on
        settings.resolved_classifiers_file.write_text("{broken")
        assert not await watcher.check()
        write_classifier_file(settings.resolved_classifiers_file, {"intent": str(v2)})
        assert await watcher.check()
        assert enricher.classifiers.models() == {"intent": v2.name}

    asyncio.run(scenario())
    assert metrics.value("aimass_model_reloads_total", outcome="swapped") == 2
    assert metrics.value("aimass_model_reloads_total", outcome="failed") == 2
    assert (
        metrics.value("aimass_model_info", classifier="intent", model="intent", version=v2.name)
        == 1
    )
    assert (
        metrics.value("aimass_model_info", classifier="intent", model="intent", version=v1.name)
        == 0
    )


def test_run_polls_until_cancelled(
    setup: tuple[Settings, DocumentEnricher, Metrics], tiny_encoder: Encoder
) -> None:
    settings, enricher, metrics = setup
    v1 = head_model(settings.resolved_models_dir / "intent", tiny_encoder, ["a", "b"])
    watcher = ClassifierWatcher(settings, enricher, metrics)

    async def scenario() -> None:
        task = asyncio.create_task(watcher.run())
        write_classifier_file(settings.resolved_classifiers_file, {"intent": str(v1)})
        for _ in range(500):
            if enricher.classifiers.models():
                break
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert enricher.classifiers.models() == {"intent": v1.name}
