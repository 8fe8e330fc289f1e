"""The management console at ``/console``, and the endpoints only it needs.

The page is static files in the package (``resources/console``: no CDN, no build step) and
holds no data: everything it shows comes from ``/v1/`` endpoints with the admin key the
user types in (auth off, as in the demo: none). Besides the public API it reads:

- ``GET /v1/console/overview`` (admin): this worker's metrics, summed up (:mod:`.console`);
- ``GET /v1/library`` (any key): every model version in the library;
- ``GET /v1/queries/{name}`` (admin): a named analytics query (``top-entities``,
  ``category-mix``...) with ``?tenant=&from=&to=&entity=``, where a ClickHouse client is.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import faust
import orjson

from stream_aimass.clickhouse.queries import query_names
from stream_aimass.models.encoder import ModelLoadError
from stream_aimass.models.library import list_models
from stream_aimass.settings import Settings
from stream_aimass.web.auth import ApiKeyAuth, denied_response, error_response
from stream_aimass.web.console import overview
from stream_aimass.web.documents import BadRequest
from stream_aimass.web.service_routes import bounds, clickhouse_unavailable, sink_of

STATIC = {
    "index.html": "text/html",
    "app.js": "application/javascript",
    "style.css": "text/css",
}
# Queries the console may run: those whose parameters a query string can give.
CONSOLE_QUERIES = {"top-entities", "category-mix", "classifier-mix", "usage", "dead-letters",
                   "popular-items", "recommendation-ctr", "latency", "model-versions",
                   "documents-count", "events-by-type", "entity-trend", "pii-summary"}  # fmt: skip


def _static(name: str) -> str:
    return resources.files("stream_aimass.resources").joinpath(f"console/{name}").read_text()


def register_console_routes(
    app: faust.App, *, settings: Settings, role: str, service: Any, auth: ApiKeyAuth
) -> None:
    @app.page("/console")
    async def console(web: Any, request: Any) -> Any:
        return web.text(_static("index.html"), content_type="text/html")

    @app.page("/console/{name}")
    async def static(web: Any, request: Any, name: str) -> Any:
        kind = STATIC.get(name)
        if kind is None:
            return error_response(web, 404, f"no console file {name[:60]!r}")
        return web.text(_static(name), content_type=kind)

    @app.page("/v1/console/overview")
    async def console_overview(web: Any, request: Any) -> Any:
        refusal = auth.check_admin(request.headers)
        if refusal is not None:
            return denied_response(web, refusal)
        pipeline = service.pipeline
        if pipeline is None:
            return error_response(web, 503, "the worker is starting", {"Retry-After": "1"})
        return web.json(overview(pipeline.metrics, role, service.ready))

    @app.page("/v1/library")
    async def library(web: Any, request: Any) -> Any:
        refusal = auth.check(request.headers, None)
        if refusal is not None:
            return denied_response(web, refusal)
        try:
            found = [m.summary() for m in list_models(settings.resolved_models_dir)]
        except ModelLoadError as exc:
            return error_response(web, 500, str(exc))
        for summary in found:
            summary.pop("path", None)
        return web.json({"models": found})

    @app.page("/v1/queries/{name}")
    async def named_query(web: Any, request: Any, name: str) -> Any:
        refusal = auth.check_admin(request.headers)
        if refusal is not None:
            return denied_response(web, refusal)
        if name not in CONSOLE_QUERIES or name not in query_names():
            have = ", ".join(sorted(CONSOLE_QUERIES))
            return error_response(web, 404, f"no query {name[:60]!r} here (have: {have})")
        try:
            start, end = bounds(request.query)
            params = {"tenant": request.query.get("tenant", ""), "from": start, "to": end,
                      "entity": request.query.get("entity", "")}  # fmt: skip
            result = await sink_of(service, role).query(name, params)
        except BadRequest as exc:
            return error_response(web, exc.status, exc.reason)
        except (LookupError, TimeoutError) as exc:
            return clickhouse_unavailable(web, exc)
        body = {"query": name, "rows": result.as_dicts()}
        return web.bytes(orjson.dumps(body, option=orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS),
                         content_type="application/json")  # fmt: skip
