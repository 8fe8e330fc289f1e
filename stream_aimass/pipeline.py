"""The running pipeline: the embedded stack when configured, and the roles' services.

``Pipeline`` is what the Faust worker hosts, and what ``demo``, ``bench`` and the tests run
directly in asyncio.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from dataclasses import dataclass
from typing import Any, Literal

import faust

from stream_aimass.clickhouse.client import get_client
from stream_aimass.clickhouse.migrations import migrate
from stream_aimass.enrich.enricher import DocumentEnricher
from stream_aimass.enrich.service import EnrichService
from stream_aimass.kafka import compat
from stream_aimass.kafka.clients import adapt_to_broker
from stream_aimass.kafka.embedded import EmbeddedBroker
from stream_aimass.kafka.topics import configured_topics, events_partitions
from stream_aimass.models.encoder import resolve_device
from stream_aimass.observability import Metrics
from stream_aimass.recs.service import RecsService
from stream_aimass.settings import Settings
from stream_aimass.sink.service import SinkService

log = logging.getLogger("stream_aimass.pipeline")

Role = Literal["enrich", "sink", "events", "all"]
ROLES: tuple[str, ...] = ("enrich", "sink", "events", "all")


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
        # The embedded broker starts empty: table state from an earlier broker (profiles
        # with offsets this one has never had) would swallow the new events as replays.
        shutil.rmtree(settings.resolved_faust_dir, ignore_errors=True)
        broker = EmbeddedBroker()
        broker.create_topics((t.name, t.partitions) for t in configured_topics(settings))
        log.info("embedded Kafka-protocol broker at %s", broker.bootstrap)
        return cls(settings, broker.bootstrap, broker)

    def close(self) -> None:
        if self.broker is not None:
            self.broker.close()
            self.broker = None


def serves_recs(settings: Settings, role: Role) -> bool:
    """Whether a worker of ``role`` runs the recommendation path (events, profiles,
    recommendations): ``events`` and ``all`` do, ``enrich`` unless ``enrich_runs_events`` is
    off (a separate ``events`` deployment runs it)."""
    if not settings.recs_enabled:
        return False
    return role in ("events", "all") or (role == "enrich" and settings.enrich_runs_events)


def make_faust_app(settings: Settings, bootstrap: str, *, web: bool) -> faust.App:
    """The Faust app of a worker: lifecycle, web server, and the profile table."""
    # Faust creates its data dir without parents: a new --data-dir would crash the worker.
    settings.resolved_faust_dir.parent.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{bootstrap}",
        # The embedded broker has no CreateTopics; real clusters get `topics create`.
        topic_allow_declare=False,
        topic_disable_leader=True,
        topic_partitions=events_partitions(settings),
        web_enabled=web,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_host=settings.web_host,
        canonical_url=settings.advertised_url,
        store=settings.recs_store,
        broker_session_timeout=10,
        broker_heartbeat_interval=1,
        datadir=str(settings.resolved_faust_dir),
        producer_compression_type=settings.aiokafka_compression,
        **settings.faust_client_options(),
    )
    compat.faust_fetch_wait(app, settings.fetch_max_wait_ms)
    adapt_to_broker(settings, bootstrap)
    compat.install_unreadable_batch_guard()
    return app


def open_clickhouse(settings: Settings) -> Any:
    """A client with the schema migrated (the sink role owns an embedded data dir)."""
    client = get_client(settings)
    applied = migrate(client, settings.clickhouse_cluster)
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
        recs: RecsService | None = None,
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        self.settings = settings
        self.role = role
        self.metrics = Metrics()
        adapt_to_broker(settings, bootstrap)
        self.enrich: EnrichService | None = None
        self.sink: SinkService | None = None
        self.recs: RecsService | None = None
        # Run by the pipeline itself when nothing hosts it (demo, bench, tests); a Faust
        # worker passes ``recs`` registered on its own app.
        self._faust: Any = None
        if role in ("enrich", "all"):
            enricher = enricher or DocumentEnricher.from_settings(settings)
            self.enrich = EnrichService(settings, bootstrap, enricher, metrics=self.metrics)
        if serves_recs(settings, role):
            if recs is None:
                self._faust = make_faust_app(settings, bootstrap, web=False)
                recs = RecsService(settings, bootstrap, self._faust)
            recs.metrics = self.metrics
            recs.scorer.device = (
                enricher.encoder.device if enricher is not None else resolve_device(settings.device)
            )
            self.recs = recs
        if role in ("sink", "all"):
            if clickhouse is None and settings.resolved_clickhouse_dsn.startswith("chdb://"):
                # A locked or unusable data dir is a configuration error: fail at start.
                clickhouse = open_clickhouse(settings)
            # A server may be down: the sink connects (and migrates) with backoff, not ready
            # meanwhile, instead of crashing the worker.
            self.sink = SinkService(
                settings,
                bootstrap,
                clickhouse,
                metrics=self.metrics,
                connect=None if clickhouse is not None else (lambda: open_clickhouse(settings)),
            )
        self._tasks: list[asyncio.Task[None]] = []
        # Set by stop(): what an events-only pipeline (no batch services) waits for.
        self._stopped = asyncio.Event()

    @property
    def services(self) -> list[EnrichService | SinkService]:
        return [s for s in (self.enrich, self.sink) if s is not None]

    @property
    def ready(self) -> bool:
        recs_ready = self.recs is None or self.recs.ready
        return recs_ready and all(s.ready for s in self.services)

    def assigned(self) -> dict[str, int]:
        """Partitions each role's consumer holds now (0 while joining or idle)."""
        out = {}
        for name, service in (("enrich", self.enrich), ("sink", self.sink)):
            if service is not None and service.consumer is not None:
                out[name] = len(service.consumer.assignment())
        return out

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(s.run()) for s in self.services]
        if self.recs is not None:
            if self._faust is not None:
                await self.recs.prepare_store()
            await self.recs.start()
            if self._faust is not None:
                self._faust.finalize()
                await self._faust.start()

    async def wait(self) -> None:
        """Until every service has stopped; the first failure stops the others."""
        if not self._tasks:  # the events role: Faust runs the recommendation path
            await self._stopped.wait()
            return
        done, pending = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = [t for t in done if t.exception() is not None]
        if failed:
            self.stop()
            await asyncio.gather(*pending, return_exceptions=True)
            raise failed[0].exception()  # type: ignore[misc]
        await asyncio.gather(*pending)

    def stop(self) -> None:
        self._stopped.set()
        # Enrich first: it produces what the sink stores.
        for service in self.services:
            service.stop()

    async def stop_and_wait(self) -> None:
        """Drain: finish in-flight batches, produce, flush the sinks and commit; bounded by
        ``shutdown_timeout_s`` (past it, what is left uncommitted is re-delivered)."""
        timeout = self.settings.shutdown_timeout_s
        try:
            await asyncio.wait_for(self._drain(), timeout)
        except TimeoutError:
            log.warning(
                "shutdown: not drained after %.0fs; stopping now (uncommitted records are "
                "re-delivered on the next start)",
                timeout,
            )
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _drain(self) -> None:
        t0 = time.monotonic()
        if self.enrich is not None:
            self.enrich.stop()
            await asyncio.gather(*self._tasks[:1], return_exceptions=True)
        await self._stop_recs()
        self.stop()
        await self.wait()
        log.info("shutdown: drained in %.1fs", time.monotonic() - t0)

    async def _stop_recs(self) -> None:
        if self.recs is None:
            return
        if self._faust is not None:
            await self._faust.stop()
            self._faust = None
        await self.recs.stop()
