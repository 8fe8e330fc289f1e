"""The worker: a Faust app hosting the pipeline's aiokafka batch services.

Faust gives the worker its lifecycle (signals, graceful stop), its web server
(``/healthz``, ``/readyz``, ``/v1/...``) and the user profile table of the recommendation
path (an agent on ``aimass.events``). The document hot path runs on aiokafka batches
instead of Faust agents: Faust's per-message cost (~70 µs) is too high for a model that
eats thousands of documents a second.

The ``/v1/`` endpoints need a per-tenant API key when ``api_auth_enabled`` (see
:mod:`stream_aimass.web.auth`); the ops endpoints (``/healthz``, ``/readyz``, ``/metrics``) stay
open.

Read top to bottom, this is the whole process: stack -> pipeline -> web.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import faust
import mode

from stream_aimass.jobs.runner import JobRunner
from stream_aimass.pipeline import Pipeline, Role, Stack, make_faust_app, serves_recs
from stream_aimass.recs.service import RecsService
from stream_aimass.settings import Settings
from stream_aimass.web.auth import ApiKeyAuth, ApiKeyConfigError
from stream_aimass.web.console_routes import register_console_routes
from stream_aimass.web.jobs_routes import register_jobs_routes
from stream_aimass.web.routes import register_routes
from stream_aimass.web.service_routes import register_service_routes

log = logging.getLogger("stream_aimass.app")


class PipelineService(mode.Service):  # type: ignore[misc]
    """Runs a :class:`Pipeline` for the lifetime of the Faust worker."""

    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        role: Role,
        recs: RecsService | None = None,
        **kwargs: Any,
    ) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.role = role
        self.recs = recs
        self.pipeline: Pipeline | None = None
        self.failed: BaseException | None = None
        # Training jobs: run by this worker in child processes (one per data dir trains).
        self.jobs = JobRunner(settings)
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        self.add_future(self.jobs.run())
        loop = asyncio.get_running_loop()
        # Loading the model takes seconds: keep the event loop (and /healthz) responsive.
        self.pipeline = await loop.run_in_executor(
            None, lambda: Pipeline(self.settings, self.bootstrap, self.role, recs=self.recs)
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


def build_app(
    settings: Settings, stack: Stack, role: Role, auth: ApiKeyAuth | None = None
) -> faust.App:
    """The worker's Faust app. ``auth``: parsed from ``settings`` when not given (raises
    :class:`ApiKeyConfigError` on unusable keys)."""
    if auth is None:
        auth = ApiKeyAuth.from_settings(settings)
    if auth.misconfigured:
        log.warning(
            "API auth is on but no API keys are configured: every /v1/ request gets 401 "
            "(set AIMASS_API_KEYS, or AIMASS_API_AUTH_ENABLED=false)"
        )
    elif auth.enabled:
        log.info("API auth on: keys for %d tenant(s)", len(auth.keys))
    else:
        log.info("API auth off: /v1/ endpoints answer without an API key")
    app = make_faust_app(settings, stack.bootstrap, web=True)
    recs = None
    if serves_recs(settings, role):
        # The profile table and the events agent must exist before the app starts.
        recs = RecsService(settings, stack.bootstrap, app)
    else:
        # The document path is aiokafka batches: without the events agent Faust runs
        # without its own consumer (an empty subscription crashes it).
        app.producer_only = True
    service = PipelineService(settings, stack.bootstrap, role, recs)
    app.service(service)  # type: ignore[arg-type]
    if recs is not None:
        # Before Faust recovers the profile table from its changelog. A loop of its own that
        # is never made current: asyncio.run would leave none for the Faust worker.
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(recs.prepare_store())
        finally:
            loop.close()

    register_routes(app, settings=settings, role=role, service=service, recs=recs, auth=auth)
    register_service_routes(app, settings=settings, role=role, service=service, auth=auth)
    register_jobs_routes(app, settings=settings, runner=service.jobs, auth=auth)
    register_console_routes(app, settings=settings, role=role, service=service, auth=auth)
    return app


def run_worker(settings: Settings, role: Role) -> None:
    """Run the worker until SIGTERM/SIGINT (blocking)."""
    try:
        auth = ApiKeyAuth.from_settings(settings)
    except ApiKeyConfigError as exc:  # before anything starts; the message holds no key
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(2) from None
    stack = Stack.start(settings)
    try:
        app = build_app(settings, stack, role, auth)
        worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
        worker.execute_from_commandline()
    finally:
        stack.close()
