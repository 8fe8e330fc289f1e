"""The worker: a Faust app hosting the pipeline's aiokafka batch services.

Faust gives the worker its lifecycle (signals, graceful stop), its web server
(``/healthz``, ``/readyz``, ``/v1/...``) and the user profile table of the recommendation
path (an agent on ``aimass.events``). The document hot path runs on aiokafka batches
instead of Faust agents: Faust's per-message cost (~70 µs) is too high for a model that
eats thousands of documents a second.

The ``/v1/`` endpoints need a per-tenant API key when ``api_auth_enabled`` (see
:mod:`stream_aimass.auth`); the ops endpoints (``/healthz``, ``/readyz``, ``/metrics``) stay
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

from stream_aimass.auth import ApiKeyAuth, ApiKeyConfigError, Denied
from stream_aimass.pipeline import Pipeline, Role, Stack, make_faust_app, serves_recs
from stream_aimass.recs import lookup
from stream_aimass.recs.service import RecsService, validate_request
from stream_aimass.settings import Settings

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
        super().__init__(**kwargs)

    async def on_start(self) -> None:
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


def _denied(web: Any, denied: Denied) -> Any:
    return web.json(denied.body, status=denied.status, headers=dict(denied.headers))


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
        denied = auth.check(request.headers, None)
        if denied is not None:
            return _denied(web, denied)
        # What serves the document path right now: encoder, topic head, classifier versions.
        pipeline = service.pipeline
        if pipeline is None or pipeline.enrich is None:
            return web.json({"role": role, "models": None}, status=404 if pipeline else 503)
        return web.json({"role": role, **pipeline.enrich.enricher.describe()})

    @app.page("/v1/recommendations/{tenant}/{user_id}")
    async def recommendations(web: Any, request: Any, tenant: str, user_id: str) -> Any:
        # Before routing: a request another worker answers is checked here first (and again
        # there: Faust forwards the headers).
        denied = auth.check(request.headers, tenant)
        if denied is not None:
            return _denied(web, denied)
        if recs is None:
            return web.json({"error": f"role {role!r} serves no recommendations"}, status=404)
        if not recs.ready:
            return web.json(
                {"error": "the recommendation path is not ready (the item index is loading, "
                 "or its reader is reconnecting); retry"},
                status=503,
                headers={"Retry-After": "1"},
            )  # fmt: skip
        try:
            k = int(request.query.get("k", str(settings.recs_k)))
        except ValueError:
            return web.json({"error": validate_request(tenant, user_id, None)}, status=400)
        error = validate_request(tenant, user_id, k)
        if error is not None:
            return web.json({"error": error}, status=400)
        cold_start = request.query.get("cold_start", "").lower() in ("1", "true", "yes")
        # Profiles are partitioned: this worker's store, else the workers holding the rest.
        answer = await lookup.recommendations(recs, app, tenant, user_id, k, cold_start, request)
        if isinstance(answer.body, str):
            return web.text(answer.body, content_type="application/json", status=answer.status)
        return web.json(answer.body, status=answer.status, headers=answer.headers)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        if service.pipeline is None:
            return web.text("", content_type="text/plain", status=503)
        body = service.pipeline.metrics.render().decode()
        return web.text(body, content_type="text/plain; version=0.0.4")

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
