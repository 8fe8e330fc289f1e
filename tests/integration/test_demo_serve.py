"""`stream-aimass demo --serve`: the demo stream through a worker that stays up, with its
console and API open, until SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from stream_aimass.testing import cli, free_port

pytestmark = pytest.mark.integration


def test_demo_serve_keeps_the_worker_and_console_up_and_says_where(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    env = {**os.environ, "AIMASS_WEB_PORT": str(port), "AIMASS_LOG_LEVEL": "warning"}
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cli("demo", "--serve", "--documents", "60", "--events", "80", "--data-dir",
                str(tmp_path / "data")),
            stdout=fh, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while f"http://127.0.0.1:{port}/console" not in log.read_text(errors="replace") or (
            "keeps running" not in log.read_text(errors="replace")
        ):
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/console", timeout=10) as page:
            assert b"Pipeline health" in page.read()
        with urllib.request.urlopen(f"{base}/v1/usage", timeout=10) as usage:  # no key needed
            rows = json.loads(usage.read())["rows"]
        assert sum(r["documents"] for r in rows) == 60 and sum(r["events"] for r in rows) == 80
        (summary,) = [
            ln for ln in log.read_text(errors="replace").splitlines() if "keeps running" in ln
        ]
        assert "WARNING" not in summary  # printed as it is, not turned into a log line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text(errors="replace")[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
