"""Restarts as users do them: README's several-processes recipe on a fresh directory, and a
worker back on its old data dir after the broker it knew is gone."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_aimass.testing import (
    BrokerProcess,
    free_port,
    produce_with_librdkafka,
    query_data_dir,
    start_broker,
    start_worker,
    wait_drained,
    wait_ready,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

README = Path(__file__).resolve().parents[2] / "README.md"
ENV = {"AIMASS_API_AUTH_ENABLED": "false", "AIMASS_LOG_LEVEL": "info"}


def _recipe() -> list[str]:
    """The commands of README's several-processes recipe, as written there."""
    text = README.read_text()
    section = text.split("### Several processes on one machine, with the embedded broker", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]


def _stream_aimass() -> list[str]:
    script = Path(sys.executable).parent / "stream-aimass"
    return [str(script)] if script.exists() else [sys.executable, "-m", "stream_aimass.cli"]


def test_readme_several_processes_recipe_runs_word_for_word(tmp_path: Path) -> None:
    """On directories that do not exist yet: every command creates what it needs."""
    commands = _recipe()
    assert [c.split()[:2] for c in commands] == [
        ["stream-aimass", "broker"],
        ["stream-aimass", "worker"],
        ["stream-aimass", "worker"],
        ["stream-aimass", "produce"],
    ]
    data = tmp_path / "fresh" / "D"  # neither exists
    ports = {"6066": str(free_port()), "6067": str(free_port())}
    docs = tmp_path / "docs.jsonl"
    docs.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"r{i}",
                    "tenant": "acme",
                    "ts": 1_767_225_600_000 + i,
                    "text": f"Recipe document {i}: the council met in Leeds on Tuesday.",
                }
            )
            + "\n"
            for i in range(12)
        )
    )

    def argv(command: str, addr: str = "") -> list[str]:
        words = shlex.split(command)
        words = [{"D": str(data), "ADDR": addr, **ports}.get(w, w) for w in words]
        assert words[0] == "stream-aimass"
        return _stream_aimass() + words[1:]

    env = {**os.environ, **ENV}
    broker = subprocess.Popen(
        argv(commands[0]),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    workers: list[subprocess.Popen[bytes]] = []
    try:
        assert broker.stdout is not None
        addr = broker.stdout.readline().strip()
        assert re.fullmatch(r"[\w.-]+:\d+", addr), addr
        assert (data / "broker.addr").read_text().strip() == addr
        for n, command in enumerate(commands[1:3]):
            log = (tmp_path / f"worker-{n}.log").open("wb")
            workers.append(
                subprocess.Popen(
                    argv(command, addr), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=env
                )
            )
        for port in ports.values():
            _wait_ready_port(int(port), workers, tmp_path)
        produced = subprocess.run(
            argv(commands[3].replace("docs.jsonl", str(docs)), addr),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert produced.returncode == 0, produced.stderr
        wait_drained(addr, timeout=180)
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(90) == 0
        # The enrich worker made its default data dir in the working directory.
        assert (tmp_path / "aimass-data" / "faust").is_dir()
        count = query_data_dir(data, "SELECT count() FROM documents FINAL")
        assert count == [[12]]
    finally:
        for proc in [*workers, broker]:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)


def _wait_ready_port(port: int, procs: list[Any], tmp_path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for n, proc in enumerate(procs):
            if proc.poll() is not None:
                log = (tmp_path / f"worker-{n}.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"worker {n} exited:\n{log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if json.loads(r.read())["ready"]:
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"port {port} not ready after {timeout}s")


def _events(first: int, count: int, user: str) -> list[tuple[bytes, bytes]]:
    return [
        (
            f"acme:{user}".encode(),
            orjson.dumps(
                {
                    "event_id": f"e{first + i}",
                    "tenant": "acme",
                    "user_id": user,
                    "item_id": f"i{i % 4}",
                    "type": "view",
                    "ts": 1_767_225_600_000 + i,
                }
            ),
        )
        for i in range(count)
    ]


def _profile_events(port: int, user: str) -> int | None:
    url = f"http://127.0.0.1:{port}/v1/recommendations/acme/{user}?k=1"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(json.loads(response.read())["profile"]["events"])
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise


def _wait_profile(port: int, user: str, events: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while (seen := _profile_events(port, user)) != events:
        assert time.monotonic() < deadline, f"{user}: {seen} events, not {events}"
        time.sleep(0.5)


def test_a_worker_on_its_old_data_dir_rebuilds_its_store_from_a_new_brokers_changelog(
    tmp_path: Path,
) -> None:
    """Broker 1: a worker applies 25 events to its on-disk profile store. Broker 2 (offsets
    from 0) gets 5 events, applied by another worker. The first worker, back on its old
    data dir: it starts (no ConsistencyError), says once that it rebuilds its store, and
    serves what broker 2's changelog holds, not broker 1's profile."""
    old_dir = tmp_path / "w1"
    first: BrokerProcess = start_broker(tmp_path / "b1")
    try:
        worker = start_worker("enrich", first.bootstrap, old_dir, "w1-a", env=ENV)
        wait_ready(worker)
        produce_with_librdkafka(
            first.bootstrap, "aimass.events", _events(0, 25, "u1"), partitioner="murmur2_random"
        )
        _wait_profile(worker.port, "u1", 25)
        assert worker.sigterm() == 0
    finally:
        first.stop()

    second = start_broker(tmp_path / "b2")
    try:
        produce_with_librdkafka(
            second.bootstrap, "aimass.events", _events(100, 5, "u1"), partitioner="murmur2_random"
        )
        other = start_worker("enrich", second.bootstrap, tmp_path / "w2", "w2", env=ENV)
        wait_ready(other)
        _wait_profile(other.port, "u1", 5)
        assert other.sigterm() == 0

        back = start_worker("enrich", second.bootstrap, old_dir, "w1-b", env=ENV)
        wait_ready(back)
        _wait_profile(back.port, "u1", 5)
        # New events after the restart are applied, not taken for replays of broker 1's.
        produce_with_librdkafka(
            second.bootstrap, "aimass.events", _events(200, 3, "u1"), partitioner="murmur2_random"
        )
        _wait_profile(back.port, "u1", 8)
        assert back.sigterm() == 0
        log = back.tail()
        assert "ConsistencyError" not in log
        assert log.count("is stale") == 1, log
    finally:
        second.stop()
