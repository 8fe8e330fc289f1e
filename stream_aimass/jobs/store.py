"""Training jobs on disk: one folder per job, so a restarted worker still lists them.

``<data_dir>/jobs/<id>/``:

- ``job.json``: what was asked (kind, mode, epochs, name, the files), the state
  (``queued | running | succeeded | failed | cancelled``), times, the resulting model and the
  error; replaced atomically.
- ``train.csv`` / ``train.conll`` (and ``dev.*``): the uploads.
- ``log.txt``: the training process's own output, as the CLI prints it.
- ``progress.jsonl``: what the training process reports as it goes (``AIMASS_PROGRESS_FILE``,
  written by the CLI's progress reporter): a line per tenth of a stage, a line per epoch with
  its dev metrics. :meth:`JobStore.get` folds it into the job.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Set for the training process: its progress reporter appends JSON lines to that file.
PROGRESS_FILE_ENV = "AIMASS_PROGRESS_FILE"
JOB_FILE = "job.json"
LOG_FILE = "log.txt"
PROGRESS_FILE = "progress.jsonl"
KINDS = ("classifier", "ner", "multitask")
MODES = ("head", "finetune")
FINAL_STATES = ("succeeded", "failed", "cancelled")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _write_json(path: Path, value: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(value, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)


def read_progress(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The last stage line and every epoch line of a ``progress.jsonl`` (a half-written
    last line, while the process writes it, is skipped)."""
    stage: dict[str, Any] | None = None
    epochs: list[dict[str, Any]] = []
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return None, []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        if "epoch" in event:
            epochs.append(event)
        elif "stage" in event:
            stage = event
    return stage, epochs


class JobStore:
    """Create, read and update the jobs under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, job_id: str) -> Path:
        if not job_id.isalnum():  # ids are ours: hex; anything else is no job
            raise KeyError(job_id)
        return self.root / job_id

    def create(self, job: dict[str, Any], files: dict[str, Path]) -> dict[str, Any]:
        """A queued job of ``job`` (kind, mode, epochs, name...); ``files``: role (``data``,
        ``dev``) -> an upload already on disk, moved into the job's folder."""
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        job_id = f"{stamp}{secrets.token_hex(4)}"
        folder = self.root / job_id
        folder.mkdir(parents=True)
        stored = {}
        for role, path in files.items():
            target = folder / f"{'train' if role == 'data' else role}{path.suffix}"
            os.replace(path, target)
            stored[role] = target.name
        record = {
            **job, "id": job_id, "state": "queued", "created": now_iso(), "started": None,
            "finished": None, "files": stored, "model": None, "error": None,
        }  # fmt: skip
        _write_json(folder / JOB_FILE, record)
        return record

    def _read(self, job_id: str) -> dict[str, Any]:
        try:
            value: dict[str, Any] = json.loads((self.folder(job_id) / JOB_FILE).read_text())
        except (FileNotFoundError, ValueError):
            raise KeyError(job_id) from None
        return value

    def get(self, job_id: str) -> dict[str, Any]:
        """The job with its progress folded in; KeyError when there is none."""
        job = self._read(job_id)
        stage, epochs = read_progress(self.folder(job_id) / PROGRESS_FILE)
        job["progress"] = stage
        job["epoch_metrics"] = epochs
        return job

    def jobs(self, *, progress: bool = True) -> list[dict[str, Any]]:
        """Every job, oldest first; ``progress=False``: ``job.json`` only (the runner's poll
        needs states, not each job's progress file)."""
        if not self.root.is_dir():
            return []
        found = []
        for child in sorted(self.root.iterdir()):
            if (child / JOB_FILE).is_file():
                try:
                    found.append(self.get(child.name) if progress else self._read(child.name))
                except KeyError:
                    continue
        return found

    def update(self, job_id: str, **changes: Any) -> dict[str, Any]:
        job = self._read(job_id) | changes
        _write_json(self.folder(job_id) / JOB_FILE, job)
        return job

    def recover(self) -> list[str]:
        """Jobs left ``running`` by a worker that stopped: queued again (their uploads are
        here). Returns their ids."""
        again = []
        for job in self.jobs(progress=False):
            if job["state"] == "running":
                self.update(job["id"], state="queued", started=None,
                            note="queued again: the worker stopped while it ran")  # fmt: skip
                (self.folder(job["id"]) / PROGRESS_FILE).unlink(missing_ok=True)
                again.append(job["id"])
        return again
