"""Training jobs over HTTP (admin key): upload a file, start a job, follow it.

- ``POST /v1/training-jobs``: ``multipart/form-data`` with ``file`` (CSV for classifiers,
  CoNLL for NER; either for ``multitask``), optional ``dev``, and fields ``kind``
  (``classifier|ner|multitask``), ``mode`` (``head|finetune``), ``epochs``, ``name``,
  ``multi_label``. The upload is checked with the CLI's readers first (400 with their reason);
  202 with the queued job.
- ``GET /v1/training-jobs``, ``GET /v1/training-jobs/{id}``: state, progress, dev metrics per
  epoch, the resulting model.
- ``GET /v1/training-jobs/{id}/log?offset=N``: the training's output from byte ``N``
  (``X-Log-Offset`` says where to go on from).
- ``POST /v1/training-jobs/{id}/cancel``.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import faust

from stream_aimass.jobs.runner import JobRunner
from stream_aimass.jobs.store import KINDS, LOG_FILE, MODES
from stream_aimass.jobs.uploads import check_upload, data_format
from stream_aimass.settings import Settings
from stream_aimass.training.data import DataError
from stream_aimass.web.auth import ApiKeyAuth, denied_response, error_response
from stream_aimass.web.documents import BadRequest

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_FIELDS = {"kind", "mode", "epochs", "name", "multi_label"}
HOW = "send multipart/form-data, e.g. curl -F file=@train.csv -F kind=classifier -F name=intent"


async def _save(part: Any, folder: Path, limit: int) -> tuple[Path, str]:
    """A file part, streamed to ``folder``; (path, the name it was sent with)."""
    sent = Path(part.filename or "upload").name
    path = folder / f"{part.name}{Path(sent).suffix.lower()}"
    size = 0
    with path.open("wb") as fh:
        while chunk := await part.read_chunk(256 * 1024):
            size += len(chunk)
            if size > limit:
                raise BadRequest(413, f"{sent} is over the limit of {limit} bytes")
            fh.write(chunk)
    return path, sent


async def read_job_request(request: Any, folder: Path, limit: int) -> dict[str, Any]:
    """The job a multipart request asks for, its files saved in ``folder`` and checked."""
    if not request.content_type.startswith("multipart/"):
        raise BadRequest(400, HOW)
    reader = await request.multipart()
    fields: dict[str, str] = {}
    files: dict[str, tuple[Path, str]] = {}
    while (part := await reader.next()) is not None:
        if part.name in ("file", "dev") and part.filename is not None:
            files["data" if part.name == "file" else "dev"] = await _save(part, folder, limit)
        elif part.name in _FIELDS:
            fields[part.name] = (await part.text()).strip()[:200]
        else:
            raise BadRequest(400, f"unknown part {str(part.name)[:40]!r}: use file, dev, "
                             f"{', '.join(sorted(_FIELDS))}")  # fmt: skip
    return _job(fields, files)


def _job(fields: dict[str, str], files: dict[str, tuple[Path, str]]) -> dict[str, Any]:
    kind = fields.get("kind", "")
    if kind not in KINDS:
        raise BadRequest(400, f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if "data" not in files:
        raise BadRequest(400, f"no training file: {HOW}")
    mode = fields.get("mode") or "head"
    if mode not in MODES or (kind == "multitask" and fields.get("mode") not in (None, "")):
        allowed = "multitask jobs take no mode" if kind == "multitask" else "head or finetune"
        raise BadRequest(400, f"mode {mode!r}: {allowed}")
    epochs = fields.get("epochs") or None
    if epochs is not None and not (epochs.isdigit() and 1 <= int(epochs) <= 200):
        raise BadRequest(400, f"epochs must be a whole number from 1 to 200, not {epochs!r}")
    multi_label = fields.get("multi_label", "").lower() in ("1", "true", "yes", "on")
    data_path, sent = files["data"]
    name = fields.get("name") or Path(sent).stem
    if not _NAME.fullmatch(name):
        raise BadRequest(400, f"name {name[:70]!r}: letters, digits, '_', '.', '-', 1 to 64")
    try:
        fmt = data_format(kind, sent)
        if multi_label and fmt != "csv":
            raise DataError("multi_label applies to CSV (classifier) data only")
        data = check_upload(data_path, fmt, multi_label, sent)
        dev = None
        if "dev" in files:
            dev_path, dev_sent = files["dev"]
            if data_format(kind, dev_sent) != fmt:
                raise DataError(f"the dev file {dev_sent!r} is not in the format of {sent!r}")
            dev = check_upload(dev_path, fmt, multi_label, dev_sent)
    except DataError as exc:
        raise BadRequest(400, str(exc)) from None
    job = {
        "kind": kind, "mode": mode if kind != "multitask" else None, "format": fmt,
        "epochs": int(epochs) if epochs else None, "name": name, "multi_label": multi_label,
        "data": {"file": sent, **data}, "dev": dev and {"file": files["dev"][1], **dev},
    }  # fmt: skip
    return {"job": job, "files": {role: path for role, (path, _) in files.items()}}


def register_jobs_routes(
    app: faust.App, *, settings: Settings, runner: JobRunner, auth: ApiKeyAuth
) -> None:
    store = runner.store

    def denied(web: Any, request: Any) -> Any | None:
        refusal = auth.check_admin(request.headers)
        return None if refusal is None else denied_response(web, refusal)

    @app.page("/v1/training-jobs")
    class Jobs(faust.web.View):  # type: ignore[misc]
        async def get(self, request: Any) -> Any:
            return denied(self, request) or self.json({"jobs": store.jobs()})

        async def post(self, request: Any) -> Any:
            if (refusal := denied(self, request)) is not None:
                return refusal
            store.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=store.root, prefix=".upload-") as tmp:
                try:
                    asked = await read_job_request(
                        request, Path(tmp), settings.training_max_upload_bytes
                    )
                except BadRequest as exc:
                    return error_response(self, exc.status, exc.reason)
                job = store.create(asked["job"], asked["files"])
            runner.submitted()
            location = f"/v1/training-jobs/{job['id']}"
            return self.json(store.get(job["id"]), status=202, headers={"Location": location})

    @app.page("/v1/training-jobs/{job_id}")
    async def job(web: Any, request: Any, job_id: str) -> Any:
        if (refusal := denied(web, request)) is not None:
            return refusal
        try:
            return web.json(store.get(job_id))
        except KeyError:
            return error_response(web, 404, f"no training job {job_id[:40]!r}")

    @app.page("/v1/training-jobs/{job_id}/log")
    async def job_log(web: Any, request: Any, job_id: str) -> Any:
        if (refusal := denied(web, request)) is not None:
            return refusal
        offset = request.query.get("offset", "0")
        if not offset.isdigit():
            return error_response(web, 400, f"offset must be a byte offset, not {offset[:20]!r}")
        try:
            store.get(job_id)
            path = store.folder(job_id) / LOG_FILE
        except KeyError:
            return error_response(web, 404, f"no training job {job_id[:40]!r}")
        data = path.read_bytes() if path.is_file() else b""
        start = min(int(offset), len(data))
        return web.text(
            data[start:].decode("utf-8", errors="replace"), content_type="text/plain",
            headers={"X-Log-Offset": str(len(data))},
        )  # fmt: skip

    @app.page("/v1/training-jobs/{job_id}/cancel")
    class Cancel(faust.web.View):  # type: ignore[misc]
        async def post(self, request: Any, job_id: str) -> Any:
            if (refusal := denied(self, request)) is not None:
                return refusal
            try:
                return self.json(runner.cancel(job_id))
            except KeyError:
                return error_response(self, 404, f"no training job {job_id[:40]!r}")
