"""Running training jobs: one at a time (by default), each in a process of its own.

A job is ``stream-aimass train classifier|ner|multitask`` on its uploaded files, run by the
worker as a child process (``python -m stream_aimass.cli``), never inside the worker: the
training would hold the GIL the hot path needs. Its output goes to the job's ``log.txt``,
its progress to ``progress.jsonl`` (the CLI's progress reporter writes it), its JSON summary
to ``result.json``; the model lands in the model library like any ``train`` run
(``<models_dir>/<name>/<version>``).

Only one process runs the jobs of a store (an exclusive lock on ``runner.lock``): several
workers sharing a data dir all accept and list jobs, one trains them. At start the holder
queues again what a stopped worker left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import sys
from pathlib import Path
from typing import IO, Any

from stream_aimass.jobs.store import (
    LOG_FILE,
    PROGRESS_FILE,
    PROGRESS_FILE_ENV,
    JobStore,
    now_iso,
)
from stream_aimass.settings import Settings

log = logging.getLogger("stream_aimass.jobs")

RESULT_FILE = "result.json"


def train_command(job: dict[str, Any], folder: Path, models_dir: Path) -> list[str]:
    """The ``stream-aimass train ...`` command line of ``job``."""
    files = job["files"]
    data, dev = folder / files["data"], files.get("dev")
    out = models_dir / job["name"]
    cmd = [sys.executable, "-m", "stream_aimass.cli", "train", job["kind"]]
    if job["kind"] == "multitask":
        option = "--ner" if job["format"] == "conll" else "--classifier"
        spec = f"{job['name']}={data}" + (f",{folder / dev}" if dev else "")
        cmd += ["--out", str(out), option, spec, "--name", job["name"]]
    else:
        cmd += ["--data", str(data), "--out", str(out), "--name", job["name"]]
        cmd += ["--mode", job["mode"]]
        if dev:
            cmd += ["--dev", str(folder / dev)]
    if job.get("epochs"):
        cmd += ["--epochs", str(job["epochs"])]
    if job.get("multi_label"):
        cmd += ["--multi-label"]
    return [*cmd, "--json"]


class JobRunner:
    """Queues and runs the jobs of a :class:`JobStore`, ``concurrency`` at a time."""

    def __init__(self, settings: Settings, store: JobStore | None = None) -> None:
        self.settings = settings
        self.store = store or JobStore(settings.data_dir / "jobs")
        self.concurrency = settings.training_jobs_concurrency
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.subprocess.Process] = {}
        self._cancelled: set[str] = set()
        self._lock: IO[str] | None = None

    # -- accepting ---------------------------------------------------------------------

    def submitted(self) -> None:
        """A job was queued: look for work now."""
        self._wake.set()

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job (KeyError: no such job)."""
        job = self.store.get(job_id)
        if job["state"] == "queued":
            return self.store.update(job_id, state="cancelled", finished=now_iso())
        process = self._running.get(job_id)
        if job["state"] == "running" and process is not None:
            self._cancelled.add(job_id)
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        return self.store.get(job_id)

    # -- running -----------------------------------------------------------------------

    def _take_lock(self) -> bool:
        self.store.root.mkdir(parents=True, exist_ok=True)
        handle = (self.store.root / "runner.lock").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock = handle
        return True

    async def run(self) -> None:
        """Until cancelled: run queued jobs, oldest first. Stopping terminates the running
        ones, which are queued again at the next start."""
        while not self._take_lock():  # another worker of this data dir runs the jobs
            await asyncio.sleep(5)
        again = self.store.recover()
        if again:
            log.info("training jobs queued again after a restart: %s", ", ".join(again))
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                self._wake.clear()
                queued = [j for j in self.store.jobs(progress=False) if j["state"] == "queued"]
                for job in queued[: max(0, self.concurrency - len(tasks))]:
                    self.store.update(job["id"], state="running", started=now_iso())
                    task = asyncio.create_task(self._run(job["id"]))
                    tasks.add(task)
                    task.add_done_callback(self._done(tasks))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 2.0)
        finally:
            for process in self._running.values():
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._lock is not None:
                self._lock.close()

    def _done(self, tasks: set[asyncio.Task[None]]) -> Any:
        def finished(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            self._wake.set()  # a slot is free

        return finished

    async def _run(self, job_id: str) -> None:
        job = self.store.get(job_id)
        folder = self.store.folder(job_id)
        cmd = train_command(job, folder, self.settings.resolved_models_dir)
        env = {
            **os.environ,
            PROGRESS_FILE_ENV: str(folder / PROGRESS_FILE),
            "AIMASS_MODEL_DIR": str(self.settings.resolved_model_dir),
            "AIMASS_MODELS_DIR": str(self.settings.resolved_models_dir),
            "AIMASS_DATA_DIR": str(self.settings.data_dir),
            "COLUMNS": "160",
        }
        log.info("training job %s: %s", job_id, " ".join(cmd[1:]))
        with (folder / LOG_FILE).open("ab") as log_fh, (folder / RESULT_FILE).open("wb") as out:
            log_fh.write(f"$ stream-aimass {' '.join(cmd[3:])}\n".encode())
            log_fh.flush()
            process = await asyncio.create_subprocess_exec(
                *cmd, stdout=out, stderr=log_fh, stdin=asyncio.subprocess.DEVNULL, env=env
            )
            self._running[job_id] = process
            try:
                code = await process.wait()
            except asyncio.CancelledError:  # the worker stops: the job runs again next start
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                await asyncio.shield(process.wait())
                raise
            finally:
                self._running.pop(job_id, None)
        self._finish(job_id, code, folder)

    def _finish(self, job_id: str, code: int, folder: Path) -> None:
        if job_id in self._cancelled:
            self._cancelled.discard(job_id)
            self.store.update(job_id, state="cancelled", finished=now_iso(), exit_code=code)
            return
        text = (folder / RESULT_FILE).read_text(errors="replace")
        summary: dict[str, Any] | None = None
        if code == 0 and "{" in text:
            with contextlib.suppress(ValueError):
                summary = json.loads(text[text.index("{") :])
        if summary is None:
            tail = (folder / LOG_FILE).read_text(errors="replace").strip().splitlines()
            reason = next((line for line in reversed(tail) if "error" in line.lower()), None)
            self.store.update(
                job_id, state="failed", finished=now_iso(), exit_code=code,
                error=reason or f"training exited with status {code} (see the log)",
            )  # fmt: skip
            return
        model = {k: summary.get(k) for k in ("name", "kind", "version", "path")}
        metrics = {k: v for k, v in summary.items() if k not in model and k != "labels"}
        self.store.update(
            job_id, state="succeeded", finished=now_iso(), exit_code=0, model=model,
            metrics=metrics,
        )  # fmt: skip
        log.info("training job %s: model %s version %s", job_id, model["name"], model["version"])
