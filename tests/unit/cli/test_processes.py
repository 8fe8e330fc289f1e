"""The enrich process group: how many processes, what each gets, and how the group starts,
stops and fails, on real child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from stream_aimass.cli.processes import (
    PARENT_ENV,
    ChildSpec,
    ProcessGroup,
    check_processes,
    child_specs,
    default_processes,
)
from stream_aimass.settings import Settings

BROKER = "127.0.0.1:9092"


def test_default_is_the_setting_else_one_on_cpu_and_for_other_roles() -> None:
    assert default_processes(Settings(enrich_processes=3), "enrich") == 3
    assert default_processes(Settings(device="cpu"), "enrich") == 1
    assert default_processes(Settings(device="auto"), "sink") == 1
    if not _cuda():
        assert default_processes(Settings(device="auto"), "enrich") == 1


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@pytest.mark.parametrize(
    ("role", "overrides", "reason"),
    [
        ("sink", {"kafka_bootstrap": BROKER}, "--role enrich only"),
        ("all", {"kafka_bootstrap": BROKER}, "--role enrich only"),
        ("enrich", {}, "--bootstrap ADDR"),
        ("enrich", {"kafka_bootstrap": BROKER, "web_advertised_url": "http://a:1"}, "unset"),
        ("enrich", {"kafka_bootstrap": BROKER, "web_port": 65535}, "exceed 65535"),
    ],
)
def test_groups_that_cannot_work_are_refused_with_the_reason(
    role: str, overrides: dict[str, object], reason: str
) -> None:
    problem = check_processes(Settings(**overrides), role, 2)  # type: ignore[arg-type]
    assert problem is not None and reason in problem


def test_one_process_is_always_fine() -> None:
    assert check_processes(Settings(), "all", 1) is None
    assert check_processes(Settings(kafka_bootstrap=BROKER), "enrich", 4) is None


def test_each_child_gets_its_port_faust_dir_threads_and_parent(tmp_path: Path) -> None:
    settings = Settings(kafka_bootstrap=BROKER, data_dir=tmp_path, web_port=7000, device="cpu")
    specs = child_specs(settings, 3)
    assert [s.argv[s.argv.index("--web-port") + 1] for s in specs] == ["7000", "7001", "7002"]
    assert all(s.argv[s.argv.index("--processes") + 1] == "1" for s in specs)
    assert all(s.argv[s.argv.index("--bootstrap") + 1] == BROKER for s in specs)
    dirs = [s.env["AIMASS_FAUST_DIR"] for s in specs]
    assert dirs == [str((tmp_path / "faust" / f"process-{i}").resolve()) for i in range(3)]
    threads = {s.env["AIMASS_TORCH_THREADS"] for s in specs}
    assert threads == {str(max(1, (os.cpu_count() or 1) // 3))}
    assert {s.env[PARENT_ENV] for s in specs} == {str(os.getpid())}
    # Port 0 stays 0 (a free port each); an explicit thread count is kept.
    specs = child_specs(settings.model_copy(update={"web_port": 0, "torch_threads": 5}), 2)
    assert [s.argv[s.argv.index("--web-port") + 1] for s in specs] == ["0", "0"]
    assert {s.env["AIMASS_TORCH_THREADS"] for s in specs} == {"5"}


def _child(index: int, body: str, tmp: Path) -> ChildSpec:
    """A Python child that writes ``started`` and then runs ``body``."""
    marker = tmp / f"child-{index}"
    code = (
        f"import pathlib, signal, sys, time\npathlib.Path({str(marker)!r}).write_text('x')\n{body}"
    )
    return ChildSpec(index, [sys.executable, "-c", code], {})


GRACEFUL = "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\nwhile True: time.sleep(0.05)"


def _wait_started(tmp: Path, count: int) -> None:
    deadline = time.monotonic() + 30
    while sum(1 for _ in tmp.glob("child-*")) < count:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_requested_stop_drains_every_child_and_exits_zero(tmp_path: Path) -> None:
    group = ProcessGroup([_child(i, GRACEFUL, tmp_path) for i in range(3)], stop_timeout_s=20)
    group.start()
    _wait_started(tmp_path, 3)
    group.request_stop()
    assert group.wait() == 0
    assert [c.returncode for c in group.children] == [0, 0, 0]


def test_a_child_that_dies_stops_the_others_and_its_status_is_the_groups(
    tmp_path: Path,
) -> None:
    specs = [_child(0, GRACEFUL, tmp_path), _child(1, "time.sleep(0.5); sys.exit(3)", tmp_path)]
    group = ProcessGroup(specs, stop_timeout_s=20)
    group.start()
    assert group.wait() == 3
    assert group.children[0].returncode == 0  # asked to stop, and it did


def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    stubborn = "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(0.05)"
    group = ProcessGroup([_child(0, stubborn, tmp_path)], stop_timeout_s=1)
    group.start()
    _wait_started(tmp_path, 1)
    group.request_stop()
    assert group.wait() != 0
    assert group.children[0].returncode == -signal.SIGKILL


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_child_does_not_outlive_a_killed_parent(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    child = textwrap.dedent(
        f"""
        import os, pathlib, time
        from stream_aimass.cli.processes import die_with_parent
        die_with_parent()
        pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))
        while True: time.sleep(0.05)
        """
    )
    parent = textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        env = {{**os.environ, {PARENT_ENV!r}: str(os.getpid())}}
        subprocess.Popen([sys.executable, "-c", {child!r}], env=env)
        while True: time.sleep(0.05)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", parent])
    deadline = time.monotonic() + 30
    while not pid_file.exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    child_pid = int(pid_file.read_text())
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while _alive(child_pid):
        assert time.monotonic() < deadline, "the child outlived its parent"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"
