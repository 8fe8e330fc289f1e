"""Worker processes sharing a standalone embedded broker: crashes and consumer groups."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from stream_aimass.testing import (
    BrokerProcess,
    WorkerProcess,
    cli,
    produce_documents,
    query_data_dir,
    read_topic,
    start_worker,
    wait_drained,
    wait_ready,
)
from stream_aimass.tools.corpus import bad_messages, generate_documents

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEYS = {"AIMASS_API_KEYS": '{"acme": "k-acme"}'}


def _assigned(worker: WorkerProcess, role: str) -> int:
    url = f"http://127.0.0.1:{worker.port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(json.loads(response.read())["assigned"].get(role, 0))
    except OSError:
        return 0


def _wait_assigned(worker: WorkerProcess, role: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _assigned(worker, role) == 0:
        assert time.monotonic() < deadline, worker.tail()
        time.sleep(0.3)


def test_sigkill_mid_stream_loses_and_duplicates_nothing(
    broker_process: BrokerProcess, tmp_path: Path
) -> None:
    n = 400
    docs = generate_documents(n, seed=41)
    bad = [raw for raw, _ in bad_messages()][:3]
    data_dir = tmp_path / "worker"
    worker = start_worker("all", broker_process.bootstrap, data_dir, "first")
    try:
        wait_ready(worker)
        produce_documents(broker_process.bootstrap, docs, bad)
        # Kill once real work is under way: some, not all, records are enriched.
        seen = read_topic(broker_process.bootstrap, "aimass.enriched", n // 4, timeout=120)
        worker.sigkill()
        assert n // 4 <= len(seen) < n, "the kill did not land mid-stream"
    finally:
        if worker.process.poll() is None:
            worker.sigkill()
    worker = start_worker("all", broker_process.bootstrap, data_dir, "second")
    try:
        wait_ready(worker)
        wait_drained(broker_process.bootstrap)
        assert worker.sigterm() == 0, worker.tail()
    finally:
        if worker.process.poll() is None:
            worker.sigkill()
    rows = query_data_dir(data_dir, "SELECT count(), uniqExact(doc_id) FROM documents FINAL")
    assert rows == [[n, n]]
    ids = query_data_dir(data_dir, "SELECT doc_id FROM documents FINAL")
    assert {r[0] for r in ids} == {d["id"] for d in docs}
    assert query_data_dir(data_dir, "SELECT count() FROM dead_letters FINAL") == [[len(bad)]]


def test_two_enrich_workers_and_one_sink_share_the_stream(
    broker_process: BrokerProcess, tmp_path: Path
) -> None:
    n = 300
    docs = generate_documents(n, seed=51)
    bootstrap = broker_process.bootstrap
    workers = [
        start_worker("enrich", bootstrap, tmp_path / "enrich-1", "enrich-1", env=KEYS),
        start_worker("enrich", bootstrap, tmp_path / "enrich-2", "enrich-2"),
        start_worker("sink", bootstrap, tmp_path / "sink", "sink"),
    ]
    try:
        for worker in workers:
            wait_ready(worker)
        # Both enrich workers hold partitions before the stream starts.
        _wait_assigned(workers[0], "enrich")
        _wait_assigned(workers[1], "enrich")
        produce_documents(bootstrap, docs)
        wait_drained(bootstrap)
        lag = subprocess.run(
            cli("lag", "--bootstrap", bootstrap, "--json"),
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        rows = json.loads(lag.stdout)["lag"]
        assert {(r["group"], r["topic"]): r["lag"] for r in rows} == {
            ("aimass-enrich", "aimass.documents"): 0, ("aimass-enrich", "aimass.items"): 0,
            ("aimass", "aimass.events"): 0,
            ("aimass-sink", "aimass.enriched"): 0, ("aimass-sink", "aimass.events"): 0,
            ("aimass-sink", "aimass.item-vectors"): 0,
            ("aimass-sink", "aimass.recommendations"): 0, ("aimass-sink", "aimass.dlq"): 0,
        }  # fmt: skip
        enriched = read_topic(bootstrap, "aimass.enriched", n)
        url = f"http://127.0.0.1:{workers[2].port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            metrics = response.read().decode()
        assert f'aimass_rows_inserted_total{{table="documents"}} {float(n)}' in metrics
        request = urllib.request.Request(
            f"http://127.0.0.1:{workers[0].port}/v1/models", headers={"X-API-Key": "k-acme"}
        )
        with urllib.request.urlopen(request) as r:
            serving = json.loads(r.read())
        assert serving["encoder"]["name"] == "all-MiniLM-L6-v2"
        assert serving["topic"]["model"] == "zero-shot:topic" and serving["classifiers"] == []
        for worker in workers:
            assert worker.sigterm() == 0, worker.tail()
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.sigkill()
    records = [orjson.loads(m.value) for m in enriched]
    assert sorted(r["id"] for r in records) == sorted(d["id"] for d in docs)
    assert len({r["worker"] for r in records}) == 2, "both enrich workers should have worked"
    rows = query_data_dir(
        tmp_path / "sink", "SELECT count(), uniqExact(doc_id) FROM documents FINAL"
    )
    assert rows == [[n, n]]
