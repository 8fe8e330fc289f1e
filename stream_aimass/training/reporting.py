"""How training reports its progress: to the CLI's progress bars, or to the log."""

from __future__ import annotations

import logging
from typing import Any, Protocol

log = logging.getLogger("stream_aimass.training")


class TrainingReporter(Protocol):
    """Where training reports progress (the CLI draws progress bars)."""

    def start(self, stage: str, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def epoch(self, epoch: int, metrics: dict[str, Any]) -> None: ...


class SilentReporter:
    def start(self, stage: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def epoch(self, epoch: int, metrics: dict[str, Any]) -> None:
        log.info("epoch %d: %s", epoch, metrics)


class ProbeReporter:
    """Progress of the linear probe before fine-tuning, without its per-epoch lines."""

    def __init__(self, inner: TrainingReporter) -> None:
        self.inner = inner

    def start(self, stage: str, total: int) -> None:
        self.inner.start("probe head", total)

    def advance(self, n: int = 1) -> None:
        self.inner.advance(n)

    def epoch(self, epoch: int, metrics: dict[str, Any]) -> None:
        pass
