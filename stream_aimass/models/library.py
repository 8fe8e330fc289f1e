"""The model library: one folder per model version, described by ``model.json``.

Layout written by the training commands::

    <models_dir>/<name>/<version>/model.json          metadata (kind, labels, metrics...)
    <models_dir>/<name>/<version>/head.safetensors    the classification head
    <models_dir>/<name>/<version>/encoder/            finetune mode: its own encoder

The version is a content hash of the weights, so the same weights always carry the same
version and a row's ``model_version`` names exactly the weights that made it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stream_aimass.models.encoder import PICKLE_SUFFIXES as PICKLE_SUFFIXES
from stream_aimass.models.encoder import ModelLoadError, check_model_dir

MODEL_FILE = "model.json"
FORMAT = "stream-aimass-model/1"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What ``model.json`` says about one model version."""

    path: Path
    name: str
    kind: str
    version: str
    created: str
    meta: dict[str, Any]

    @property
    def mode(self) -> str:
        return str(self.meta.get("mode", ""))

    @property
    def labels(self) -> list[str]:
        return [str(x) for x in self.meta.get("labels", [])]

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.meta.get("metrics") or {})

    def summary(self) -> dict[str, Any]:
        """The short form ``models list`` prints."""
        metrics = self.metrics
        summary: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "mode": self.mode,
            "version": self.version,
            "labels": len(self.labels),
            "accuracy": metrics.get("accuracy"),
            "macro_f1": metrics.get("macro_f1"),
            "created": self.created,
            "path": str(self.path),
        }
        if self.kind == "multitask":  # one encoder, a head per task: their short form
            summary["heads"] = {
                name: {
                    "kind": head.get("kind"),
                    "labels": len(head.get("labels") or []),
                    **{k: v for k, v in (head.get("metrics") or {}).items()
                       if k in ("accuracy", "macro_f1", "f1")},
                }
                for name, head in (self.meta.get("heads") or {}).items()
            }  # fmt: skip
        return summary


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_model(path: Path) -> ModelInfo:
    """Metadata of the model version in ``path``; a clear error when it is not one."""
    meta_file = path / MODEL_FILE
    if not meta_file.is_file():
        raise ModelLoadError(f"{path} is not a stream-aimass model version (no {MODEL_FILE})")
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{meta_file} is unreadable: {exc}") from None
    if not isinstance(meta, dict):
        raise ModelLoadError(f"{meta_file} must hold a JSON object")
    missing = [k for k in ("name", "kind", "version") if not meta.get(k)]
    if missing:
        raise ModelLoadError(f"{meta_file} lacks {', '.join(missing)}")
    return ModelInfo(
        path=path,
        name=str(meta["name"]),
        kind=str(meta["kind"]),
        version=str(meta["version"]),
        created=str(meta.get("created", "")),
        meta=meta,
    )


def _versions(folder: Path) -> list[ModelInfo]:
    found = []
    for child in sorted(folder.iterdir()) if folder.is_dir() else []:
        if (child / MODEL_FILE).is_file():
            found.append(read_model(child))
    return found


def list_models(models_dir: Path) -> list[ModelInfo]:
    """Every model version under ``models_dir`` (``name/version/`` or a bare version dir)."""
    if not models_dir.is_dir():
        return []
    found = []
    for child in sorted(models_dir.iterdir()):
        if (child / MODEL_FILE).is_file():
            found.append(read_model(child))
        elif child.is_dir():
            found.extend(_versions(child))
    found.sort(key=lambda m: (m.name, m.created, m.version))
    return found


def resolve_model(ref: str, models_dir: Path) -> Path:
    """The version directory ``ref`` points to.

    ``ref`` is a path (a version directory, or a model folder whose newest version is
    taken) or ``NAME`` / ``NAME@VERSION`` in the models directory.
    """
    name, _, version = ref.partition("@")
    candidates = [Path(name).expanduser(), models_dir / name]
    for folder in candidates:
        if (folder / MODEL_FILE).is_file() and not version:
            return folder
        versions = _versions(folder)
        if not versions:
            continue
        if version:
            matching = [v for v in versions if v.version.startswith(version)]
            if len(matching) != 1:
                known = ", ".join(v.version for v in versions)
                raise ModelLoadError(
                    f"{ref}: {'no' if not matching else 'ambiguous'} version {version!r} in "
                    f"{folder} (versions: {known})"
                )
            return matching[0].path
        return max(versions, key=lambda v: (v.created, v.version)).path
    raise ModelLoadError(
        f"no model {ref!r}: not a model directory and not a model in {models_dir} "
        "(see `stream-aimass models list`)"
    )


def refuse_pickle(path: Path) -> None:
    """Model directories must hold safetensors only: pickle weights can run code on load,
    and so can remote code (``*.py``, ``auto_map``), which is refused too."""
    check_model_dir(path, require_weights=False)


def weights_hash(folder: Path) -> str:
    """A hash over every ``*.safetensors`` file in ``folder`` (recursively, sorted)."""
    digest = hashlib.sha256()
    files = sorted(folder.rglob("*.safetensors"))
    if not files:
        raise ModelLoadError(f"{folder} holds no safetensors weights")
    for file in files:
        digest.update(str(file.relative_to(folder)).encode())
        with file.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()[:12]


def staging_dir(out: Path) -> Path:
    """A fresh directory inside ``out`` to write a model into before it has a version."""
    path = out / f".staging-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    return path


def publish(staging: Path, meta: dict[str, Any]) -> ModelInfo:
    """Give the staged model its version (a hash of its weights) and move it in place.

    The metadata file is written last, so a half-written model never looks like one.
    """
    version = weights_hash(staging)
    meta = {
        "format": FORMAT,
        **meta,
        "version": version,
        "created": meta.get("created") or now_iso(),
    }
    (staging / MODEL_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    final = staging.parent / version
    if final.exists():
        # Same weights trained again: keep the first copy, drop this one.
        shutil.rmtree(staging)
    else:
        staging.rename(final)
    return read_model(final)
