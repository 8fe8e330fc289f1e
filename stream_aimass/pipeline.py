"""The running pipeline: the embedded stack when configured, and the roles' services.

``Pipeline`` is what the Faust worker hosts, and what ``demo``, ``bench`` and the tests run
directly in asyncio.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Literal

from stream_aimass.clickhouse import get_client, migrate
from stream_aimass.embedded import EmbeddedBroker
from stream_aimass.enrich import DocumentEnricher, EnrichService
from stream_aimass.observability import Metrics
from stream_aimass.settings import Settings
from stream_aimass.sink import SinkService
from stream_aimass.topics import configured_topics

log = logging.getLogger("stream_aimass.pipeline")

Role = Literal["enrich", "sink", "all"]
ROLES: tuple[str, ...] = ("enrich", "sink", "all")


@dataclass
class Stack:
    """Where the pipeline's broker and ClickHouse are (started here when embedded)."""

    settings: Settings
    bootstrap: str
    broker: EmbeddedBroker | None = None

    @classmethod
    def start(cls, settings: Settings) -> Stack:
        if not settings.embedded_kafka:
            return cls(settings, settings.kafka_bootstrap)
        broker = EmbeddedBroker()
        broker.create_topics((t.name, t.partitions) for t in configured_topics(settings))
        log.info("embedded Kafka-protocol broker at %s", broker.bootstrap)
        return cls(settings, broker.bootstrap, broker)

    def close(self) -> None:
        if self.broker is not None:
            self.broker.close()
            self.broker = None


def open_clickhouse(settings: Settings) -> Any:
    """A client with the schema migrated (the sink role owns an embedded data dir)."""
    client = get_client(settings)
    applied = migrate(client)
    if applied:
        log.info("applied ClickHouse migrations: %s", ", ".join(applied))
    return client


class Pipeline:
    """The services of one worker process for ``role``."""

    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        role: Role = "all",
        *,
        enricher: DocumentEnricher | None = None,
        clickhouse: Any = None,
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        self.settings = settings
        self.role = role
        self.metrics = Metrics()
        self.enrich: EnrichService | None = None
        self.sink: SinkService | None = None
        if role in ("enrich", "all"):
            enricher = enricher or DocumentEnricher.from_settings(settings)
            self.enrich = EnrichService(settings, bootstrap, enricher, metrics=self.metrics)
        if role in ("sink", "all"):
            self.sink = SinkService(
                settings, bootstrap, clickhouse or open_clickhouse(settings), metrics=self.metrics
            )
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def services(self) -> list[EnrichService | SinkService]:
        return [s for s in (self.enrich, self.sink) if s is not None]

    @property
    def ready(self) -> bool:
        return all(s.ready for s in self.services)

    def assigned(self) -> dict[str, int]:
        """Partitions each role's consumer holds now (0 while joining or idle)."""
        out = {}
        for name, service in (("enrich", self.enrich), ("sink", self.sink)):
            if service is not None and service.consumer is not None:
                out[name] = len(service.consumer.assignment())
        return out

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(s.run()) for s in self.services]

    async def wait(self) -> None:
        """Until every service has stopped; the first failure stops the others."""
        done, pending = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = [t for t in done if t.exception() is not None]
        if failed:
            self.stop()
            await asyncio.gather(*pending, return_exceptions=True)
            raise failed[0].exception()  # type: ignore[misc]
        await asyncio.gather(*pending)

    def stop(self) -> None:
        # Enrich first: it produces what the sink stores.
        for service in self.services:
            service.stop()

    async def stop_and_wait(self) -> None:
        if self.enrich is not None:
            self.enrich.stop()
            await asyncio.gather(*self._tasks[:1], return_exceptions=True)
        self.stop()
        await self.wait()
