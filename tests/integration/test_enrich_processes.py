"""``worker --role enrich --processes N``: N processes share the stream, every document is
enriched exactly once, and one SIGTERM drains them all."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_aimass.kafka.topics import load_specs
from stream_aimass.testing import (
    cli,
    committed,
    free_ports,
    produce_with_librdkafka,
    read_topic,
    start_broker,
    start_worker,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROCESSES = 2


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _readyz(port: int) -> dict[str, Any]:
    try:
        status, body = _get(f"http://127.0.0.1:{port}/readyz")
    except (urllib.error.URLError, OSError):
        return {"ready": False}
    return dict(json.loads(body)) if status in (200, 503) else {"ready": False}


def _enriched(port: int) -> float:
    _, text = _get(f"http://127.0.0.1:{port}/metrics")
    found = re.search(r'aimass_records_total\{outcome="enriched",role="enrich"\} (\S+)', text)
    if found is None:
        found = re.search(r'aimass_records_total\{role="enrich",outcome="enriched"\} (\S+)', text)
    return float(found.group(1)) if found else 0.0


def _pids_of_children(parent: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(parent)], capture_output=True, text=True, check=False
    )
    return [int(p) for p in out.stdout.split()]


def test_processes_share_the_stream_each_document_once_and_sigterm_drains_all(
    tmp_path: Path,
) -> None:
    broker = start_broker(tmp_path / "broker")
    specs = load_specs()
    # The enrich role reads documents and items (item vectors for the recommender).
    partitions = specs["aimass.documents"].partitions + specs["aimass.items"].partitions
    base = free_ports(PROCESSES)
    ports = [base + i for i in range(PROCESSES)]
    enrich = start_worker(
        "enrich", broker.bootstrap, tmp_path / "enrich", "enrich",
        {"AIMASS_API_AUTH_ENABLED": "false"},
        args=["--processes", str(PROCESSES)], port=base,
    )  # fmt: skip
    try:
        # Both processes in the group, the partitions spread over them.
        deadline = time.monotonic() + 180
        while True:
            states = [_readyz(p) for p in ports]
            held = [int(s.get("assigned", {}).get("enrich", 0)) for s in states]
            if all(s["ready"] for s in states) and sum(held) == partitions and min(held) > 0:
                break
            assert enrich.process.poll() is None, enrich.tail()
            assert time.monotonic() < deadline, f"{states}\n{enrich.tail()}"
            time.sleep(0.5)
        children = _pids_of_children(enrich.process.pid)
        assert len(children) == PROCESSES
        docs = [
            {
                "id": f"p{i}",
                "tenant": "acme" if i % 2 else "globex",
                "ts": 1_767_225_600_000 + i,
                "text": f"Processes document {i}: the board met in Leeds about rail fares.",
            }
            for i in range(240)
        ]
        produce_with_librdkafka(
            broker.bootstrap,
            "aimass.documents",
            [(f"{d['tenant']}:{d['id']}".encode(), orjson.dumps(d)) for d in docs],
            codec="lz4",
        )
        records = read_topic(broker.bootstrap, "aimass.enriched", len(docs), timeout=180)
        ids = sorted(orjson.loads(r.value)["id"] for r in records)
        assert ids == sorted(d["id"] for d in docs)  # each exactly once
        counts = [_enriched(p) for p in ports]
        assert sum(counts) == len(docs) and min(counts) > 0, counts
        deadline = time.monotonic() + 60  # every offset committed
        while committed(broker.bootstrap, "aimass-enrich", "aimass.documents") < len(docs):
            assert time.monotonic() < deadline, enrich.tail()
            time.sleep(0.5)
        enrich.process.send_signal(signal.SIGTERM)
        assert enrich.process.wait(90) == 0, enrich.tail()
        for pid in children:
            assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), pid
    finally:
        if enrich.process.poll() is None:
            enrich.sigkill()
        broker.stop()


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--role", "sink", "--processes", "2", "--bootstrap", "127.0.0.1:1"], "--role enrich"),
        (["--role", "all", "--processes", "2", "--bootstrap", "127.0.0.1:1"], "--role enrich"),
        (["--role", "enrich", "--processes", "2"], "--bootstrap ADDR"),
        (["--role", "enrich", "--processes", "0", "--bootstrap", "127.0.0.1:1"], "greater than"),
    ],
)
def test_processes_refused_where_they_cannot_work(
    tmp_path: Path, args: list[str], reason: str
) -> None:
    out = subprocess.run(
        cli("worker", "--data-dir", str(tmp_path), *args),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode != 0
    assert reason in out.stdout + out.stderr
