"""The worker's HTTP endpoints, on Faust's web server.

Ops endpoints (``/healthz``, ``/readyz``, ``/metrics``, ``/openapi.json``) are open; every
``/v1/`` endpoint checks the API key first (:mod:`.auth`). The model service's endpoints are
in :mod:`.service_routes`.
"""

from __future__ import annotations

from typing import Any

import faust

from stream_aimass.recs import lookup
from stream_aimass.recs.service import RecsService, validate_request
from stream_aimass.settings import Settings
from stream_aimass.web.auth import ApiKeyAuth, denied_response
from stream_aimass.web.openapi import openapi_document


def register_routes(
    app: faust.App,
    *,
    settings: Settings,
    role: str,
    service: Any,
    recs: RecsService | None,
    auth: ApiKeyAuth,
) -> None:
    """Add every page to the worker's Faust ``app``; ``service`` is the
    :class:`~stream_aimass.app.PipelineService` whose pipeline they read."""

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
            return denied_response(web, denied)
        # What serves the document path right now: encoder, topic head, classifier versions.
        pipeline = service.pipeline
        if pipeline is None or pipeline.enrich is None:
            return web.json({"role": role, "models": None}, status=404 if pipeline else 503)
        generation = pipeline.enrich.generation
        generator = generation.describe() if generation is not None else None
        return web.json({"role": role, **pipeline.enrich.enricher.describe(),
                         "generator": generator})  # fmt: skip

    @app.page("/v1/recommendations/{tenant}/{user_id}")
    async def recommendations(web: Any, request: Any, tenant: str, user_id: str) -> Any:
        # Before routing: a request another worker answers is checked here first (and again
        # there: Faust forwards the headers).
        denied = auth.check(request.headers, tenant)
        if denied is not None:
            return denied_response(web, denied)
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

    @app.page("/openapi.json")
    async def openapi(web: Any, request: Any) -> Any:
        return web.json(openapi_document())

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        if service.pipeline is None:
            return web.text("", content_type="text/plain", status=503)
        body = service.pipeline.metrics.render().decode()
        return web.text(body, content_type="text/plain; version=0.0.4")
