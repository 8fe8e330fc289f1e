"""``/openapi.json``: the OpenAPI 3.1 description of every HTTP endpoint of a worker.

Built here, next to nothing else, from the same record schemas the topics use
(``resources/topics/*.schema.json``), so an enriched record over HTTP is described by the
schema the stream validates against. The contract test calls every operation listed here
against a running worker and checks each answer against it.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import metadata
from typing import Any

from stream_aimass.web.openapi_schemas import SCHEMAS

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "Bad request: the reason says which field and why",
        401: "No API key (WWW-Authenticate: Bearer)",
        403: "The key is not valid, or does not grant this",
        404: "Not found, or not served by this worker's role",
        413: "Too large: more documents or bytes than allowed",
        429: "Too many documents waiting for the model: retry after Retry-After seconds",
        503: "Not ready: retry after Retry-After seconds",
    }
    return {str(s): _json(_ERROR, reasons[s]) for s in statuses}


_KEYED: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
_OPEN: list[dict[str, list[str]]] = []


def _op(
    summary: str, responses: dict[str, Any], *, tag: str, security: Any = None, **extra: Any
) -> dict[str, Any]:
    op = {"summary": summary, "tags": [tag], "responses": responses, **extra}
    op["security"] = _KEYED if security is None else security
    words = re.findall(r"[A-Za-z]+", summary)
    op["operationId"] = words[0].lower() + "".join(w.capitalize() for w in words[1:])
    return op


def _body(ref: str, example: Any) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{ref}"}
    return {
        "required": True,
        "content": {"application/json": {"schema": schema, "example": example}},
    }


def _path_param(name: str, example: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "example": example,
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _version() -> str:
    try:
        return metadata.version("stream-aimass")
    except metadata.PackageNotFoundError:  # run from a source tree
        return "0.0.0"


@cache
def openapi_document() -> dict[str, Any]:
    """The whole document (built once; the same for every worker of this version)."""
    ok = _json
    paths: dict[str, Any] = {
        "/healthz": {
            "get": _op(
                "Liveness",
                {"200": ok({"$ref": "#/components/schemas/Health"}, "Alive")},
                tag="ops",
                security=_OPEN,
            )
        },
        "/readyz": {
            "get": _op(
                "Readiness",
                {
                    "200": ok({"$ref": "#/components/schemas/Ready"}, "Ready"),
                    "503": ok({"$ref": "#/components/schemas/Ready"}, "Not ready"),
                },
                tag="ops",
                security=_OPEN,
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics",
                {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "503": {"description": "Starting"},
                },
                tag="ops",
                security=_OPEN,
            )
        },
        "/openapi.json": {
            "get": _op(
                "This document",
                {"200": ok({"type": "object"}, "OpenAPI 3.1")},
                tag="ops",
                security=_OPEN,
            )
        },
        "/v1/enrich": {
            "post": _op(
                "Enrich documents synchronously",
                {
                    "200": ok(
                        {"$ref": "#/components/schemas/EnrichResponse"}, "The enriched records"
                    ),
                    **_errors(400, 401, 403, 404, 413, 429, 503),
                },
                tag="enrichment",
                requestBody=_body("EnrichRequest", {"text": "Apple opened an office in Berlin."}),
                parameters=[
                    _query(
                        "tenant",
                        {"type": "string"},
                        "Admin key or auth off: the tenant of documents naming none",
                    )
                ],
            )
        },
        "/v1/embed": {
            "post": _op(
                "Embed texts",
                {
                    "200": ok(
                        {"$ref": "#/components/schemas/EmbedResponse"}, "L2-normalised vectors"
                    ),
                    **_errors(400, 401, 403, 404, 413, 429, 503),
                },
                tag="enrichment",
                requestBody=_body("EmbedRequest", {"texts": ["hello", "bonjour"]}),
            )
        },
        "/v1/models": {
            "get": _op(
                "Models this worker serves",
                {
                    "200": ok({"$ref": "#/components/schemas/ServingModels"}, "Serving models"),
                    **_errors(401, 403, 404, 503),
                },
                tag="models",
            )
        },
        "/v1/models/{name}": {
            "get": _op(
                "A model's versions and serving",
                {
                    "200": ok({"$ref": "#/components/schemas/ModelDetail"}, "Versions"),
                    **_errors(401, 403, 404),
                },
                tag="models",
                parameters=[_path_param("name", "banking77")],
            )
        },
        "/v1/models/{name}/use": {
            "post": _op(
                "Serve a classifier (admin)",
                {
                    "200": ok({"$ref": "#/components/schemas/UseResponse"}, "The classifiers file"),
                    **_errors(400, 401, 403, 404),
                },
                tag="models",
                parameters=[_path_param("name", "banking77")],
                requestBody={**_body("UseRequest", {"as": "intent"}), "required": False},
            )
        },
        "/v1/usage": {
            "get": _op(
                "Usage per tenant and hour",
                {
                    "200": {
                        "description": "The usage rows",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/UsageResponse"}
                            },
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(400, 401, 403, 404, 503),
                },
                tag="usage",
                parameters=[
                    _query("from", {"type": "string"}, "ISO date or time (UTC unless zoned)"),
                    _query("to", {"type": "string"}, "ISO date or time, exclusive"),
                    _query(
                        "tenant", {"type": "string"}, "Admin: one tenant; a tenant key: its own"
                    ),
                    _query("format", {"enum": ["json", "csv"]}, "json (default) or csv"),
                    _query("by", {"enum": ["source"]}, "source: per source topic (api: HTTP)"),
                ],
            )
        },
        "/console": {
            "get": _op(
                "The management console",
                {
                    "200": {
                        "description": "The console page (HTML)",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
                tag="console",
                security=_OPEN,
            )
        },
        "/v1/console/overview": {
            "get": _op(
                "Console health overview (admin)",
                {
                    "200": ok(
                        {"type": "object", "required": ["role", "ready", "records"]},
                        "This worker's metrics, summed up",
                    ),
                    **_errors(401, 403, 503),
                },
                tag="console",
            )
        },
        "/v1/library": {
            "get": _op(
                "List the model library",
                {
                    "200": ok(
                        {
                            "type": "object",
                            "required": ["models"],
                            "properties": {
                                "models": {"type": "array", "items": {"type": "object"}}
                            },
                        },
                        "Every version",
                    ),
                    **_errors(401, 403),
                },
                tag="models",
            )
        },
        "/v1/queries/{name}": {
            "get": _op(
                "Run a named query (admin)",
                {
                    "200": ok({"type": "object", "required": ["query", "rows"]}, "The rows"),
                    **_errors(400, 401, 403, 404, 503),
                },
                tag="console",
                parameters=[
                    _path_param("name", "top-entities"),
                    _query("tenant", {"type": "string"}, "One tenant ('' = all)"),
                    _query("from", {"type": "string"}, "ISO date or time"),
                    _query("to", {"type": "string"}, "ISO date or time"),
                    _query("entity", {"type": "string"}, "entity-trend: the entity id"),
                ],
            )
        },
        "/v1/dead-letters": {
            "get": _op(
                "List dead letters (admin)",
                {
                    "200": ok({"$ref": "#/components/schemas/DeadLetters"}, "Newest first"),
                    **_errors(400, 401, 403, 404, 503),
                },
                tag="dead letters",
                parameters=[
                    _query("stage", {"type": "string"}, "decode, validate, enrich, retention..."),
                    _query("topic", {"type": "string"}, "The source topic"),
                    _query("from", {"type": "string"}, "Failed at or after (ISO)"),
                    _query("to", {"type": "string"}, "Failed before (ISO)"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "At most"),
                ],
            ),
        },
        "/v1/training-jobs": {
            "get": _op(
                "List training jobs",
                {
                    "200": ok({"$ref": "#/components/schemas/TrainingJobs"}, "Oldest first"),
                    **_errors(401, 403),
                },
                tag="training",
            ),
            "post": _op(
                "Start a training job",
                {
                    "202": ok({"$ref": "#/components/schemas/TrainingJob"}, "Queued"),
                    **_errors(400, 401, 403, 413),
                },
                tag="training",
                requestBody={
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file", "kind"],
                                "properties": {
                                    "file": {
                                        "type": "string",
                                        "contentMediaType": "application/octet-stream",
                                        "description": "CSV (text,category) or CoNLL",
                                    },
                                    "dev": {
                                        "type": "string",
                                        "contentMediaType": "application/octet-stream",
                                    },
                                    "kind": {"enum": ["classifier", "ner", "multitask"]},
                                    "mode": {"enum": ["head", "finetune"]},
                                    "epochs": {"type": "integer", "minimum": 1, "maximum": 200},
                                    "name": {"type": "string"},
                                    "multi_label": {"type": "boolean"},
                                },
                            }
                        }
                    },
                },
            ),
        },
        "/v1/training-jobs/{job_id}": {
            "get": _op(
                "Get a training job",
                {
                    "200": ok({"$ref": "#/components/schemas/TrainingJob"}, "The job"),
                    **_errors(401, 403, 404),
                },
                tag="training",
                parameters=[_path_param("job_id", "20261207143000a1b2c3d4")],
            )
        },
        "/v1/training-jobs/{job_id}/log": {
            "get": _op(
                "Read a training job's log",
                {
                    "200": {
                        "description": "The log from offset; X-Log-Offset: where to go on",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors(400, 401, 403, 404),
                },
                tag="training",
                parameters=[
                    _path_param("job_id", "20261207143000a1b2c3d4"),
                    _query("offset", {"type": "integer", "minimum": 0}, "Byte offset"),
                ],
            )
        },
        "/v1/training-jobs/{job_id}/cancel": {
            "post": _op(
                "Cancel a training job",
                {
                    "200": ok({"$ref": "#/components/schemas/TrainingJob"}, "The job"),
                    **_errors(401, 403, 404),
                },
                tag="training",
                parameters=[_path_param("job_id", "20261207143000a1b2c3d4")],
            )
        },
        "/v1/recommendations/{tenant}/{user_id}": {
            "get": _op(
                "Recommendations for a user",
                {
                    "200": ok({"$ref": "#/components/schemas/Recommendations"}, "Top k items"),
                    **_errors(400, 401, 403, 404, 503),
                },
                tag="recommendations",
                parameters=[
                    _path_param("tenant", "acme"),
                    _path_param("user_id", "u-0007"),
                    _query("k", {"type": "integer", "minimum": 1}, "How many (default recs_k)"),
                    _query("cold_start", {"type": "boolean"}, "Popular items for unknown users"),
                ],
            )
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "stream-aimass worker",
            "version": _version(),
            "description": "Real-time AI enrichment: REST beside the stream (docs/api.md).",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
