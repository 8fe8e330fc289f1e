"""``worker --role enrich --processes N``: N enrich processes sharing one device.

Each process is a whole enrich worker (its own model copy, its own web port, its own Faust
state) and a member of the same consumer groups, so the partitions of the documents topic
(and the profile table's) are spread over them by the broker, as across machines. This
parent only starts them, forwards SIGTERM and SIGINT to all, and waits: one SIGTERM drains
every process. One that dies on its own stops the others, and the parent exits with its
status, so a supervisor (systemd, Kubernetes) restarts the group as it would one worker.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream_aimass.settings import Settings

log = logging.getLogger("stream_aimass.processes")

CUDA_DEFAULT_PROCESSES = 4  # enrich processes per CUDA device when enrich_processes is 0
POLL_S = 0.2
# Set by the parent in each child's environment: the pid the child must not outlive.
PARENT_ENV = "AIMASS_SUPERVISOR_PID"
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child of a process group: get SIGTERM when the parent dies, even by SIGKILL
    (Linux ``prctl``), so no enrich process outlives its group; exit at once if the parent
    is already gone. Does nothing outside a group."""
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(parent):
        log.error("the process group's parent (pid %s) is gone: exiting", parent)
        raise SystemExit(1)


def default_processes(settings: Settings, role: str) -> int:
    """``enrich_processes``, or its default: 1 on CPU (and for roles other than enrich),
    :data:`CUDA_DEFAULT_PROCESSES` on CUDA."""
    if settings.enrich_processes:
        return settings.enrich_processes
    if role != "enrich" or settings.device == "cpu":
        return 1
    from stream_aimass.models.encoder import resolve_device

    return CUDA_DEFAULT_PROCESSES if resolve_device(settings.device) == "cuda" else 1


def check_processes(settings: Settings, role: str, processes: int) -> str | None:
    """Why ``processes`` cannot run for ``role`` with these settings, or None."""
    if processes == 1:
        return None
    if role != "enrich":
        return (
            "--processes applies to --role enrich only: the sink's chdb data dir opens in one "
            "process (run one sink per data dir, or several against a ClickHouse server)"
        )
    if settings.embedded_kafka:
        return (
            "--processes needs a broker the processes share: --bootstrap ADDR (Kafka, or "
            "the address `stream-aimass broker` prints)"
        )
    if settings.web_advertised_url:
        return (
            "--processes gives each process its own web port; unset web_advertised_url "
            "(each process advertises http://<web_host>:<web_port + i>)"
        )
    if settings.web_port and settings.web_port + processes - 1 > 65535:
        return f"web ports {settings.web_port}..{settings.web_port + processes - 1} exceed 65535"
    return None


@dataclass(frozen=True)
class ChildSpec:
    """One enrich process: its command line and the environment it adds."""

    index: int
    argv: list[str]
    env: dict[str, str]


def child_specs(settings: Settings, processes: int) -> list[ChildSpec]:
    """The command line and environment of each of ``processes`` enrich processes.

    Process ``i`` listens on ``web_port + i`` (0 stays 0: a free port each), keeps its
    Faust state in ``<faust dir>/process-<i>`` and, on CPU with ``torch_threads`` 0, runs
    torch on its share of the cores. Every other setting comes from the environment the
    parent was started with.
    """
    base = settings.resolved_faust_dir.resolve()
    threads = settings.torch_threads
    if not threads and settings.device != "cuda":
        threads = max(1, (os.cpu_count() or 1) // processes)
    specs = []
    for i in range(processes):
        port = settings.web_port + i if settings.web_port else 0
        argv = [
            sys.executable, "-m", "stream_aimass.cli", "worker", "--role", "enrich",
            "--processes", "1", "--bootstrap", settings.kafka_bootstrap,
            "--data-dir", str(settings.data_dir), "--web-host", settings.web_host,
            "--web-port", str(port),
        ]  # fmt: skip
        env = {"AIMASS_FAUST_DIR": str(base / f"process-{i}"), PARENT_ENV: str(os.getpid())}
        if threads:
            env["AIMASS_TORCH_THREADS"] = str(threads)
        specs.append(ChildSpec(i, argv, env))
    return specs


class ProcessGroup:
    """Runs child processes until a signal or the first one that exits."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        stop_timeout_s: float,
        spawn: Callable[..., subprocess.Popen[Any]] = subprocess.Popen,
    ) -> None:
        self.specs = list(specs)
        self.stop_timeout_s = stop_timeout_s
        self._spawn = spawn
        self.children: list[subprocess.Popen[Any]] = []
        self.stopping = False

    def start(self) -> None:
        for spec in self.specs:
            child = self._spawn(spec.argv, env={**os.environ, **spec.env})
            self.children.append(child)
            log.info("enrich process %d started (pid %d)", spec.index, child.pid)

    def request_stop(self, *_: Any) -> None:
        self.stopping = True

    def wait(self) -> int:
        """Until a stop is requested or a child exits; then stop all. The exit status:
        0 after a requested stop that every child completed, else the first failure's."""
        status = 0
        while not self.stopping:
            exited = [
                (i, c.returncode) for i, c in enumerate(self.children) if c.poll() is not None
            ]
            if exited:
                index, code = exited[0]
                log.error(
                    "enrich process %d exited with status %s; stopping the others", index, code
                )
                status = code if code else 1
                break
            time.sleep(POLL_S)
        return self.stop() or status

    def stop(self) -> int:
        """SIGTERM every live child, wait up to ``stop_timeout_s``, SIGKILL the rest.
        Returns the first non-zero status of a child that was asked to stop (0 if none)."""
        live = [c for c in self.children if c.poll() is None]
        for child in live:
            child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        status = 0
        for child in live:
            try:
                code = child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("enrich process pid %d did not stop in time: killed", child.pid)
                child.kill()
                code = child.wait()
            if code and not status:
                status = code if code > 0 else 1
        return status


def run_processes(settings: Settings, processes: int) -> int:
    """Run ``processes`` enrich workers until SIGTERM/SIGINT; returns the exit status."""
    group = ProcessGroup(
        child_specs(settings, processes),
        # Each child drains for up to shutdown_timeout_s; leave it time to report.
        stop_timeout_s=settings.shutdown_timeout_s + 30.0,
    )
    signal.signal(signal.SIGTERM, group.request_stop)
    signal.signal(signal.SIGINT, group.request_stop)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    group.start()
    log.info("%d enrich processes on web ports %s", processes, [s.argv[-1] for s in group.specs])
    return group.wait()
