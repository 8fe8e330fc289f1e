"""Hot swap: the worker watches ``classifiers_file`` and swaps classifier sets between batches.

A change to the file loads the new set in a background thread and warms it up; only then
does the enricher's reference switch, and the model thread reads that reference once per
batch. So no batch is lost, no batch sees a half-loaded model, and every record names the
versions that made it. A set that fails to load is logged and counted; the old one stays.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stream_aimass.files import signature, write_json_atomically
from stream_aimass.models.encoder import ModelLoadError
from stream_aimass.observability import Metrics
from stream_aimass.settings import Settings

if TYPE_CHECKING:
    from stream_aimass.enrich.enricher import DocumentEnricher
    from stream_aimass.models.library import ModelInfo

log = logging.getLogger("stream_aimass.models")


def read_classifier_file(path: Path) -> dict[str, Any]:
    """The classifiers a ``classifiers_file`` declares (name -> spec)."""
    try:
        specs = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: cannot read classifiers: {exc}") from None
    if not isinstance(specs, dict):
        raise ModelLoadError(f"{path}: expected a JSON object name -> model reference")
    return specs


def current_specs(settings: Settings) -> dict[str, Any]:
    """The classifiers to serve: the file when it exists, else the ``classifiers`` setting."""
    path = settings.resolved_classifiers_file
    if path.exists():
        return read_classifier_file(path)
    return dict(settings.classifiers)


def classifier_spec(ref: str, head: str | None, models_dir: Path) -> tuple[Any, ModelInfo]:
    """The ``classifiers_file`` entry that serves model ``ref`` (directory, NAME or
    NAME@VERSION; ``head``: which classifier head of a multitask model), pinned to the exact
    version, and what the library says of it. Raises ModelLoadError for what cannot serve
    as a classifier."""
    from stream_aimass.models.classify import head_view
    from stream_aimass.models.library import read_model, resolve_model

    path = resolve_model(ref, models_dir)
    info = read_model(path)
    if info.kind == "multitask":
        info = head_view(info, head, "classifier")
    elif head is not None:
        raise ModelLoadError(f"head {head!r}: {ref} is a {info.kind} model, not multitask")
    elif info.kind != "classifier":
        raise ModelLoadError(
            f"{ref} is a {info.kind} model: only classifiers (and a multitask model's "
            "classifier heads) hot swap"
        )
    # Pin the exact version: the file says which weights serve, not "newest".
    pinned = str(path.resolve())
    spec = {"model": pinned, "head": info.meta["head"]} if "head" in info.meta else pinned
    return spec, info


def write_classifier_file(path: Path, specs: dict[str, Any]) -> None:
    """Replace the file atomically: a watcher never reads half of it."""
    write_json_atomically(path, specs)


class ClassifierWatcher:
    """Polls ``classifiers_file`` and hot-swaps the enricher's classifiers when it changes."""

    def __init__(
        self,
        settings: Settings,
        enricher: DocumentEnricher,
        metrics: Metrics,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.enricher = enricher
        self.metrics = metrics
        self.path = settings.resolved_classifiers_file
        self._sleep = sleep
        self._seen = signature(self.path)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="aimass-model-load")

    async def run(self) -> None:
        interval = self.settings.model_reload_interval_s
        if interval <= 0:
            return
        try:
            while True:
                await self._sleep(interval)
                await self.check()
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def check(self) -> bool:
        """Reload when the file changed since the last look; True when a new set is live."""
        now_seen = signature(self.path)
        if now_seen == self._seen:
            return False
        self._seen = now_seen
        return await self.reload()

    async def reload(self) -> bool:
        loop = asyncio.get_running_loop()
        try:
            specs = current_specs(self.settings)
            new = await loop.run_in_executor(self._pool, self.enricher.load_classifiers, specs)
        except Exception as exc:  # a bad file or model must not take the worker down
            self.metrics.model_reloads.labels("failed").inc()
            log.error(
                "classifier reload from %s failed, keeping the current set: %s", self.path, exc
            )
            return False
        old = self.enricher.swap(new)
        self.metrics.model_reloads.labels("swapped").inc()
        log.info(
            "classifiers swapped: %s -> %s",
            {c.name: c.model.version for c in old.classifiers},
            {c.name: c.model.version for c in new.classifiers},
        )
        return True
