"""The worker: a Faust app hosting the pipeline's aiokafka batch services.

Faust gives the worker its lifecycle (signals, graceful stop), its web server
(``/healthz``, ``/readyz``) and, in later stages, tables for state. The document hot path
runs on aiokafka batches instead of Faust agents: Faust's per-message cost (~70 µs) is
too high for a model that eats thousands of documents a second.

Read top to bottom, this is the whole process: stack -> pipeline -> web.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
import mode

from stream_aimass.pipeline import Pipeline, Role, Stack
from stream_aimass.settings import Settings

log = logging.getLogger("stream_aimass.app")


class PipelineService(mode.Service):  # type: ignore[misc]
    """Runs a :class:`Pipeline` for the lifetime of the Faust worker."""

    def __init__(self, settings: Settings, bootstrap: str, role: Role, **kwargs: Any) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.role = role
        self.pipeline: Pipeline | None = None
        self.failed: BaseException | None = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        loop = asyncio.get_running_loop()
        # Loading the model takes seconds: keep the event loop (and /healthz) responsive.
        self.pipeline = await loop.run_in_executor(
            None, lambda: Pipeline(self.settings, self.bootstrap, self.role)
        )
        await self.pipeline.start()
        self.add_future(self._watch(self.pipeline))

    async def _watch(self, pipeline: Pipeline) -> None:
        try:
            await pipeline.wait()
        except Exception as exc:
            self.failed = exc
            log.exception("pipeline failed; stopping the worker")
            await self.crash(exc)

    async def on_stop(self) -> None:
        if self.pipeline is not None:
            await self.pipeline.stop_and_wait()

    @property
    def ready(self) -> bool:
        return self.pipeline is not None and self.pipeline.ready


def build_app(settings: Settings, stack: Stack, role: Role) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{stack.bootstrap}",
        # The embedded broker has no CreateTopics; real clusters get `topics create`.
        topic_allow_declare=False,
        topic_disable_leader=True,
        web_enabled=True,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_host=settings.web_host,
        store="memory://",
        broker_session_timeout=10,
        broker_heartbeat_interval=1,
        datadir=str(settings.data_dir / "faust"),
    )
    # No Faust agents yet: the document path is aiokafka batches, so Faust runs without its
    # own consumer (an empty subscription crashes it); tables arrive with the events path.
    app.producer_only = True
    service = PipelineService(settings, stack.bootstrap, role)
    app.service(service)  # type: ignore[arg-type]

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok", "role": role})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ok = service.ready
        assigned = service.pipeline.assigned() if service.pipeline is not None else {}
        body = {"ready": ok, "role": role, "assigned": assigned}
        return web.json(body, status=200 if ok else 503)

    @app.page("/v1/models")
    async def models(web: Any, request: Any) -> Any:
        # What serves the document path right now: encoder, topic head, classifier versions.
        pipeline = service.pipeline
        if pipeline is None or pipeline.enrich is None:
            return web.json({"role": role, "models": None}, status=404 if pipeline else 503)
        return web.json({"role": role, **pipeline.enrich.enricher.describe()})

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        if service.pipeline is None:
            return web.text("", content_type="text/plain", status=503)
        body = service.pipeline.metrics.render().decode()
        return web.text(body, content_type="text/plain; version=0.0.4")

    return app


def run_worker(settings: Settings, role: Role) -> None:
    """Run the worker until SIGTERM/SIGINT (blocking)."""
    stack = Stack.start(settings)
    try:
        app = build_app(settings, stack, role)
        worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
        worker.execute_from_commandline()
    finally:
        stack.close()
