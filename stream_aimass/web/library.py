"""The model library over HTTP: one model's versions and what serves them, and switching.

``GET /v1/models/{name}`` lists every version of ``name`` in the library (``models show``'s
metadata, without the files' paths), marks the newest, and says what serves each: which
classifier names the ``classifiers_file`` points at it (``configured``), which the worker
answering runs right now (``serving``: a swap takes effect between batches), and whether
it is the shared encoder or the NER model. ``POST /v1/models/{name}/use`` writes the
``classifiers_file`` exactly as ``stream-aimass models use`` does; the workers watching it
hot-swap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stream_aimass.enrich.reload import (
    classifier_spec,
    current_specs,
    write_classifier_file,
)
from stream_aimass.models.encoder import ModelLoadError
from stream_aimass.models.library import ModelInfo, list_models
from stream_aimass.records import TENANT_RE
from stream_aimass.settings import Settings
from stream_aimass.web.documents import BadRequest

# What a path in a classifier spec may look like: {"model": PATH, "head": H} or PATH.
_Spec = str | dict[str, Any]


def _spec_path(spec: _Spec) -> Path | None:
    ref = spec.get("model") if isinstance(spec, dict) else spec
    path = Path(str(ref)) if ref else None
    return path.resolve() if path is not None and path.exists() else None


def _inside(path: Path | None, version: Path) -> bool:
    return path is not None and (path == version or version in path.parents)


def _versions(settings: Settings, name: str) -> list[ModelInfo]:
    try:
        found = [m for m in list_models(settings.resolved_models_dir) if m.name == name]
    except ModelLoadError as exc:
        raise BadRequest(500, str(exc)) from None
    if not found:
        raise BadRequest(404, f"no model {name!r} in the model library")
    return found


def model_detail(settings: Settings, name: str, enricher: Any | None) -> dict[str, Any]:
    """The body of ``GET /v1/models/{name}``; ``enricher``: the worker's, when it enriches."""
    versions = _versions(settings, name)
    try:
        specs = current_specs(settings)
    except ModelLoadError:
        specs = {}
    running = enricher.classifiers.models() if enricher is not None else {}
    encoder = settings.resolved_model_dir.resolve() if settings.model_dir else None
    ner = Path(settings.ner_model).resolve() if settings.ner_model else None
    newest = max(versions, key=lambda v: (v.created, v.version))
    out = []
    for info in versions:
        here = info.path.resolve()
        summary = {k: v for k, v in info.summary().items() if k != "path"}
        out.append(
            summary
            | {
                "metrics": info.metrics,
                "newest": info is newest,
                "configured": sorted(n for n, s in specs.items() if _inside(_spec_path(s), here)),
                "serving": sorted(
                    model for model, version in running.items()
                    if version == info.version and model.split("/")[0] == name
                ),
                "encoder": _inside(encoder, here),
                "ner_model": _inside(ner, here),
            }
        )  # fmt: skip
    return {"name": name, "kind": newest.kind, "versions": out}


def use_model(settings: Settings, name: str, body: Any) -> dict[str, Any]:
    """``POST /v1/models/{name}/use``: body ``{"version", "as", "head", "remove"}``, all
    optional (newest version, served as classifier ``name``)."""
    if not isinstance(body, dict):
        raise BadRequest(400, "the body must be a JSON object")
    unknown = sorted(set(body) - {"version", "as", "head", "remove"})
    if unknown:
        raise BadRequest(
            400, f"unknown field(s) {', '.join(unknown)}: use version, as, head, remove"
        )
    for field in ("version", "as", "head"):
        if body.get(field) is not None and not isinstance(body[field], str):
            raise BadRequest(400, f"'{field}' must be a string")
    served_as = body.get("as") or name.split("/")[-1]
    if not TENANT_RE.fullmatch(served_as):  # a classifier name is a key in every record
        raise BadRequest(400, "'as' may hold letters, digits, '_', '.' and '-' only")
    try:
        specs = current_specs(settings)
    except ModelLoadError as exc:
        raise BadRequest(500, str(exc)) from None
    if body.get("remove"):
        if served_as not in specs:
            configured = ", ".join(specs) or "none"
            raise BadRequest(404, f"no classifier {served_as!r} is configured (have: {configured})")
        del specs[served_as]
        write_classifier_file(settings.resolved_classifiers_file, specs)
        return {"classifier": served_as, "removed": True, "classifiers": sorted(specs)}
    _versions(settings, name)  # 404 for a name the library does not hold
    ref = f"{name}@{body['version']}" if body.get("version") else name
    try:
        spec, info = classifier_spec(ref, body.get("head"), settings.resolved_models_dir)
    except ModelLoadError as exc:
        raise BadRequest(400, str(exc)) from None
    specs[served_as] = spec
    write_classifier_file(settings.resolved_classifiers_file, specs)
    return {
        "classifier": served_as,
        "model": info.name,
        "version": info.version,
        "classifiers": sorted(specs),
        "note": "workers watching the classifiers file hot-swap within "
        f"{settings.model_reload_interval_s:g} s, between batches",
    }
