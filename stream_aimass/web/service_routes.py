"""The model service's REST endpoints: enrichment, embeddings, the model library, usage.

- ``POST /v1/enrich``: documents in, enriched records out (the topic's record format),
  through the stream's own batcher and model thread; bounded (413, 429 + ``Retry-After``)
  and metered like stream documents (their ``source.topic`` is ``api``).
- ``POST /v1/embed``: embeddings only.
- ``GET /v1/models/{name}``: a model's versions, metrics and what serves;
  ``POST /v1/models/{name}/use`` (admin): serve it as a classifier, hot-swapped like
  ``stream-aimass models use``.
- ``GET /v1/usage``: the billing export (``format=json|csv``), a tenant's own rows, or every
  tenant's for the admin key; where a ClickHouse client is (role ``sink`` or ``all``).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import faust
import orjson

from stream_aimass.clickhouse.queries import ALL_TIME
from stream_aimass.enrich.direct import Refused
from stream_aimass.records import DeadLetter
from stream_aimass.settings import Settings
from stream_aimass.web.auth import (
    ApiKeyAuth,
    Caller,
    Denied,
    denied_response,
    error_response,
)
from stream_aimass.web.documents import BadRequest, embed_texts, enrich_documents, read_json
from stream_aimass.web.library import model_detail, use_model

_JSON = "application/json"


async def _body(request: Any, limit: int) -> Any:
    """The request's JSON, read no further than ``limit`` bytes."""
    length = request.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise BadRequest(413, f"the body is {length} bytes, over the limit of {limit}")
    body = await request.content.read(limit + 1)
    return read_json(body, limit)


def register_service_routes(
    app: faust.App, *, settings: Settings, role: str, service: Any, auth: ApiKeyAuth
) -> None:
    """Add the model service's pages to the worker's Faust ``app``."""

    def enrich_service() -> Any:
        pipeline = service.pipeline
        if pipeline is None:
            raise Refused(503, "the worker is starting", 1)
        if pipeline.enrich is None:
            raise BadRequest(404, f"role {role!r} does not enrich: call an enrich or all worker")
        return pipeline.enrich

    def count(endpoint: str, status: int, tenant: str | None = None, documents: int = 0) -> None:
        if service.pipeline is not None:
            metrics = service.pipeline.metrics
            metrics.api_requests.labels(endpoint, str(status)).inc()
            if documents:
                metrics.api_documents.labels(endpoint, tenant or "").inc(documents)

    def refused(web: Any, endpoint: str, exc: Refused | BadRequest) -> Any:
        count(endpoint, exc.status)
        headers = dict(getattr(exc, "headers", {}))
        retry = getattr(exc, "retry_after_s", None)
        if retry:
            headers["Retry-After"] = str(retry)
        return error_response(web, exc.status, exc.reason, headers)

    async def documents_request(request: Any) -> tuple[Caller, Any, Any]:
        """The caller, the enrich service and the JSON body of a POST of documents."""
        caller = auth.caller(request.headers)
        if isinstance(caller, Denied):
            raise BadRequest(caller.status, caller.body["error"], dict(caller.headers))
        enrich = enrich_service()
        return caller, enrich, await _body(request, settings.api_max_request_bytes)

    @app.page("/v1/enrich")
    class Enrich(faust.web.View):  # type: ignore[misc]
        async def post(self, request: Any) -> Any:
            try:
                caller, enrich, value = await documents_request(request)
                docs = enrich_documents(
                    value, caller.tenant, request.query.get("tenant"),
                    settings.api_max_documents, enrich.direct.source,
                )  # fmt: skip
                results = await enrich.enrich_now(docs)
            except (Refused, BadRequest) as exc:
                return refused(self, "enrich", exc)
            records, failed = [], []
            for n, (doc, result) in enumerate(zip(docs, results, strict=True)):
                if isinstance(result, DeadLetter):
                    failed.append({"index": n, "id": doc.id, "stage": result.stage,
                                   "error": result.reason})  # fmt: skip
                else:
                    records.append(result.record)
            count("enrich", 200, docs[0].tenant, len(records))
            body = b'{"records":[' + b",".join(records) + b'],"failed":' + orjson.dumps(failed)
            return self.bytes(body + b"}", content_type=_JSON)

    @app.page("/v1/embed")
    class Embed(faust.web.View):  # type: ignore[misc]
        async def post(self, request: Any) -> Any:
            try:
                caller, enrich, value = await documents_request(request)
                texts = embed_texts(value, settings.api_max_documents)
                vectors = await enrich.embed_now(texts)
            except (Refused, BadRequest) as exc:
                return refused(self, "embed", exc)
            count("embed", 200, caller.tenant, len(texts))
            model = enrich.enricher.model
            body = {
                "model": {"name": model.name, "version": model.version},
                "dim": int(vectors.shape[1]),
                "embeddings": vectors,
            }
            return self.bytes(
                orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), content_type=_JSON
            )

    @app.page("/v1/models/{name}")
    async def model(web: Any, request: Any, name: str) -> Any:
        denied = auth.check(request.headers, None)
        if denied is not None:
            return denied_response(web, denied)
        pipeline = service.pipeline
        enrich = pipeline.enrich if pipeline is not None else None
        try:
            detail = model_detail(settings, name, enrich.enricher if enrich else None)
        except BadRequest as exc:
            return error_response(web, exc.status, exc.reason)
        return web.json(detail)

    @app.page("/v1/models/{name}/use")
    class Use(faust.web.View):  # type: ignore[misc]
        async def post(self, request: Any, name: str) -> Any:
            denied = auth.check_admin(request.headers)
            if denied is not None:
                return denied_response(self, denied)
            try:
                value = await _body(request, 64 * 1024) if _has_body(request) else {}
                return self.json(use_model(settings, name, value))
            except BadRequest as exc:
                return error_response(self, exc.status, exc.reason)

    @app.page("/v1/dead-letters")
    async def dead_letters(web: Any, request: Any) -> Any:
        denied = auth.check_admin(request.headers)
        if denied is not None:
            return denied_response(web, denied)
        try:
            params = dead_letter_parameters(request.query)
            result = await sink_of(service, role).query("dead-letter-list", params)
        except BadRequest as exc:
            return error_response(web, exc.status, exc.reason)
        except (LookupError, TimeoutError) as exc:
            return clickhouse_unavailable(web, exc)
        return web.bytes(
            orjson.dumps({"dead_letters": result.as_dicts(), "parameters": _shown(params)},
                         option=orjson.OPT_NAIVE_UTC),
            content_type=_JSON,
        )  # fmt: skip

    @app.page("/v1/usage")
    async def usage(web: Any, request: Any) -> Any:
        caller = auth.caller(request.headers)
        if isinstance(caller, Denied):
            return denied_response(web, caller)
        try:
            params = usage_parameters(request.query, caller)
            fmt = request.query.get("format", "json")
            if fmt not in ("json", "csv"):
                raise BadRequest(400, f"format must be json or csv, not {fmt[:20]!r}")
            by = request.query.get("by", "")
            if by not in ("", "source"):
                raise BadRequest(400, f"by must be source (or left out), not {by[:20]!r}")
            name = "usage-by-source" if by else "usage"
            result = await sink_of(service, role).query(name, params)
        except BadRequest as exc:
            return error_response(web, exc.status, exc.reason)
        except (LookupError, TimeoutError) as exc:
            return clickhouse_unavailable(web, exc)
        rows = result.as_dicts()
        if fmt == "csv":
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(result.columns)
            writer.writerows(result.rows)
            return web.text(out.getvalue(), content_type="text/csv")
        return web.bytes(
            orjson.dumps({"query": name, "parameters": _shown(params), "rows": rows},
                         option=orjson.OPT_NAIVE_UTC),
            content_type=_JSON,
        )  # fmt: skip


def clickhouse_unavailable(web: Any, exc: Exception) -> Any:
    """503 for a query the sink's client cannot answer now (not connected, or busy)."""
    return error_response(web, 503, f"ClickHouse is not available: {exc}", {"Retry-After": "5"})


def sink_of(service: Any, role: str) -> Any:
    """The sink service, whose ClickHouse client answers queries; 404 where there is none."""
    pipeline = service.pipeline
    sink = pipeline.sink if pipeline is not None else None
    if sink is None:
        raise BadRequest(
            404, f"role {role!r} has no ClickHouse client: ask a sink or all worker, or run "
            "`stream-aimass query NAME` where ClickHouse is"
        )  # fmt: skip
    return sink


def _shown(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in params.items()}


def bounds(query: Any) -> tuple[datetime, datetime]:
    """``?from=&to=``: ISO dates or times, UTC unless zoned; default all time."""
    bounds = dict(zip(("from", "to"), ALL_TIME, strict=True))
    for key in ("from", "to"):
        raw = query.get(key)
        if not raw:
            continue
        try:
            when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest(
                400, f"'{key}' must be an ISO 8601 date or time (2026-11-01, "
                f"2026-11-01T08:00Z), not {raw[:40]!r}"
            ) from None  # fmt: skip
        bounds[key] = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    if bounds["from"] >= bounds["to"]:
        raise BadRequest(400, "'from' must be before 'to'")
    return bounds["from"], bounds["to"]


def dead_letter_parameters(query: Any) -> dict[str, Any]:
    """``?stage=&topic=&from=&to=&limit=`` (failed_at in [from, to); limit 1 to 1000)."""
    start, end = bounds(query)
    limit = query.get("limit", "100")
    if not limit.isdigit() or not 1 <= int(limit) <= 1000:
        raise BadRequest(400, f"limit must be a whole number from 1 to 1000, not {limit[:20]!r}")
    return {"stage": query.get("stage", ""), "topic": query.get("topic", ""), "from": start,
            "to": end, "limit": int(limit)}  # fmt: skip


def _has_body(request: Any) -> bool:
    length = request.headers.get("Content-Length")
    return bool(request.can_read_body) and length != "0"


def usage_parameters(query: Any, caller: Caller) -> dict[str, Any]:
    """The ``usage`` query's parameters from ``?from=&to=&tenant=``: a tenant's key reads
    its own rows only; the admin key every tenant's (or ``tenant``'s)."""
    start, end = bounds(query)
    tenant = query.get("tenant", "")
    if caller.tenant is not None:
        if tenant not in ("", caller.tenant):
            raise BadRequest(403, f"the API key does not grant access to tenant {tenant[:140]!r}")
        tenant = caller.tenant
    return {"tenant": tenant, "from": start, "to": end}
