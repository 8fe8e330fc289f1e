"""The component schemas of ``/openapi.json`` (:mod:`.openapi`): request and response
bodies, the enriched record as the topic's own JSON Schema."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def topic_schema(name: str) -> dict[str, Any]:
    text = resources.files("stream_aimass.resources").joinpath(f"topics/{name}.schema.json")
    schema: dict[str, Any] = json.loads(text.read_text())
    return {k: v for k, v in schema.items() if k not in ("$schema", "$id")}


_DOCUMENT = {
    "type": "object",
    "required": ["text"],
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 256},
        "tenant": {"type": "string", "description": "Must be the key's tenant, when given"},
        "ts": {"description": "Epoch ms or ISO 8601; default now"},
        "text": {"type": "string", "minLength": 1},
        "title": {"type": "string", "maxLength": 4096},
        "lang": {"type": "string", "maxLength": 32},
        "meta": {"type": "object"},
        "version": {"type": "integer", "minimum": 0},
    },
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "Document": _DOCUMENT,
    "EnrichRequest": {
        "oneOf": [
            {"$ref": "#/components/schemas/Document"},
            {
                "type": "object",
                "required": ["documents"],
                "properties": {
                    "documents": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"$ref": "#/components/schemas/Document"},
                    }
                },
            },
        ]
    },
    "EnrichedRecord": topic_schema("aimass.enriched"),
    "EnrichResponse": {
        "type": "object",
        "required": ["records", "failed"],
        "properties": {
            "records": {"type": "array", "items": {"$ref": "#/components/schemas/EnrichedRecord"}},
            "failed": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index", "id", "stage", "error"],
                    "properties": {
                        "index": {"type": "integer"},
                        "id": {"type": "string"},
                        "stage": {"type": "string"},
                        "error": {"type": "string"},
                    },
                },
            },
        },
    },
    "EmbedRequest": {
        "type": "object",
        "properties": {
            "texts": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "text": {"type": "string"},
            "documents": {"type": "array", "items": {"$ref": "#/components/schemas/Document"}},
        },
    },
    "EmbedResponse": {
        "type": "object",
        "required": ["model", "dim", "embeddings"],
        "properties": {
            "model": {"$ref": "#/components/schemas/ModelRef"},
            "dim": {"type": "integer", "minimum": 1},
            "embeddings": {
                "type": "array",
                "items": {"type": "array", "items": {"type": "number"}},
            },
        },
    },
    "ModelRef": {
        "type": "object",
        "required": ["name", "version"],
        "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
    },
    "ServingModels": {
        "type": "object",
        "required": ["role"],
        "properties": {
            "role": {"type": "string"},
            "models": {"type": "null"},
            "encoder": {"type": "object"},
            "topic": {"type": ["object", "null"]},
            "classifiers": {"type": "array"},
            "entities": {"type": ["object", "null"]},
            "summary": {"type": ["object", "null"], "description": "The extractive summarizer."},
            "generator": {
                "type": ["object", "null"],
                "description": "The summary_model generator (null: none configured).",
            },
        },
    },
    "ModelVersion": {
        "type": "object",
        "required": ["name", "kind", "version", "metrics", "newest", "configured", "serving"],
        "properties": {
            "name": {"type": "string"},
            "kind": {"type": "string"},
            "mode": {"type": "string"},
            "version": {"type": "string"},
            "labels": {"type": "integer"},
            "created": {"type": "string"},
            "metrics": {"type": "object"},
            "newest": {"type": "boolean"},
            "configured": {"type": "array", "items": {"type": "string"}},
            "serving": {"type": "array", "items": {"type": "string"}},
            "encoder": {"type": "boolean"},
            "ner_model": {"type": "boolean"},
        },
    },
    "ModelDetail": {
        "type": "object",
        "required": ["name", "kind", "versions"],
        "properties": {
            "name": {"type": "string"},
            "kind": {"type": "string"},
            "versions": {"type": "array", "items": {"$ref": "#/components/schemas/ModelVersion"}},
        },
    },
    "UseRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "version": {"type": "string", "description": "A version or its prefix; default newest"},
            "as": {"type": "string", "description": "Classifier name; default the model's"},
            "head": {"type": "string", "description": "A multitask model's classifier head"},
            "remove": {"type": "boolean"},
        },
    },
    "UseResponse": {
        "type": "object",
        "required": ["classifier", "classifiers"],
        "properties": {
            "classifier": {"type": "string"},
            "model": {"type": "string"},
            "version": {"type": "string"},
            "removed": {"type": "boolean"},
            "classifiers": {"type": "array", "items": {"type": "string"}},
            "note": {"type": "string"},
        },
    },
    "UsageResponse": {
        "type": "object",
        "required": ["query", "parameters", "rows"],
        "properties": {
            "query": {"enum": ["usage", "usage-by-source"]},
            "parameters": {"type": "object"},
            "rows": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["tenant", "hour", "documents", "tokens", "compute_ms"],
                    "properties": {
                        "tenant": {"type": "string"},
                        "hour": {"type": "string"},
                        "source": {"type": "string", "description": "by=source: topic or api"},
                        "documents": {"type": "integer"},
                        "tokens": {"type": "integer"},
                        "events": {"type": "integer"},
                        "recommendations": {"type": "integer"},
                        "compute_ms": {"type": "number"},
                    },
                },
            },
        },
    },
    "Recommendations": {
        "type": "object",
        "required": ["tenant", "user_id", "k", "cold_start", "items"],
        "properties": {
            "tenant": {"type": "string"},
            "user_id": {"type": "string"},
            "k": {"type": "integer"},
            "known_user": {"type": "boolean"},
            "cold_start": {"type": "boolean"},
            "items": {"type": "array", "items": {"type": "object"}},
            "profile": {"type": ["object", "null"]},
            "model": {},
        },
    },
    "DeadLetters": {
        "type": "object",
        "required": ["dead_letters", "parameters"],
        "properties": {
            "parameters": {"type": "object"},
            "dead_letters": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["topic", "partition", "offset", "stage", "reason", "failed_at"],
                    "properties": {
                        "topic": {"type": "string"},
                        "partition": {"type": "integer"},
                        "offset": {"type": "integer"},
                        "source_ts": {"type": "string"},
                        "stage": {"type": "string"},
                        "reason": {"type": "string"},
                        "error_type": {"type": "string"},
                        "raw_bytes": {"type": "integer"},
                        "raw_truncated": {"type": "integer"},
                        "raw_preview": {"type": "string"},
                        "raw_kind": {"type": "string", "enum": ["raw", "redacted", "hash"]},
                        "raw_sha256": {"type": "string"},
                        "failed_at": {"type": "string"},
                    },
                },
            },
        },
    },
    "TrainingJob": {
        "type": "object",
        "required": [
            "id",
            "kind",
            "name",
            "state",
            "created",
            "files",
            "progress",
            "epoch_metrics",
        ],
        "properties": {
            "id": {"type": "string"},
            "kind": {"enum": ["classifier", "ner", "multitask"]},
            "mode": {"type": ["string", "null"]},
            "name": {"type": "string"},
            "epochs": {"type": ["integer", "null"], "description": "Asked for (null: default)"},
            "state": {"enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
            "created": {"type": "string"},
            "started": {"type": ["string", "null"]},
            "finished": {"type": ["string", "null"]},
            "data": {"type": "object"},
            "dev": {"type": ["object", "null"]},
            "files": {"type": "object"},
            "progress": {
                "type": ["object", "null"],
                "description": "The current stage: stage, done, total, percent, seconds",
            },
            "epoch_metrics": {"type": "array", "description": "Per epoch: epoch, metrics (dev)"},
            "model": {"type": ["object", "null"], "description": "name, kind, version, path"},
            "metrics": {"type": "object"},
            "error": {"type": ["string", "null"]},
        },
    },
    "TrainingJobs": {
        "type": "object",
        "required": ["jobs"],
        "properties": {
            "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/TrainingJob"}}
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "role"],
        "properties": {"status": {"const": "ok"}, "role": {"type": "string"}},
    },
    "Ready": {
        "type": "object",
        "required": ["ready", "role", "assigned"],
        "properties": {
            "ready": {"type": "boolean"},
            "role": {"type": "string"},
            "assigned": {"type": "object"},
        },
    },
}
