"""Graceful shutdown: SIGTERM mid-stream drains in-flight batches, flushes the sink, commits
what it finished, and exits 0 within ``shutdown_timeout_s``; the next worker redoes nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from stream_aimass.testing import (
    BrokerProcess,
    committed,
    pipeline_lag,
    produce_documents,
    produce_events,
    query_data_dir,
    read_topic,
    start_worker,
    wait_drained,
    wait_ready,
)
from stream_aimass.tools.corpus import generate_documents, generate_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHUTDOWN_TIMEOUT_S = 20
ENV = {
    "AIMASS_API_AUTH_ENABLED": "false",
    "AIMASS_SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_TIMEOUT_S),
    # A small in-flight window, so the stop leaves most of the stream unread.
    "AIMASS_MAX_PENDING_DOCUMENTS": "64",
    "AIMASS_FETCH_MAX_RECORDS": "32",
}


def test_sigterm_mid_stream_drains_commits_and_exits_zero(
    broker_process: BrokerProcess, tmp_path: Path
) -> None:
    n_docs, n_events = 600, 600
    docs = generate_documents(n_docs, seed=71)
    events = generate_events(docs, n_events, seed=71, users_per_tenant=10)
    bootstrap = broker_process.bootstrap
    data_dir = tmp_path / "worker"
    worker = start_worker("all", bootstrap, data_dir, "first", env=ENV)
    try:
        wait_ready(worker, timeout=180)
        produce_documents(bootstrap, docs)
        produce_events(bootstrap, events)
        # Stop once real work is under way, with most of the stream still to come.
        read_topic(bootstrap, "aimass.enriched", 40, timeout=120)
        t0 = time.monotonic()
        exit_code = worker.sigterm(timeout=SHUTDOWN_TIMEOUT_S + 60)
        stop_s = time.monotonic() - t0
    finally:
        if worker.process.poll() is None:
            worker.sigkill()
    assert exit_code == 0, worker.tail()
    assert stop_s < SHUTDOWN_TIMEOUT_S + 30, f"took {stop_s:.1f}s to stop\n{worker.tail()}"
    log = worker.log.read_text(errors="replace")
    assert "shutdown: drained" in log, worker.tail()

    # Everything the worker enriched is committed, and nothing it did not enrich.
    enriched = read_topic(bootstrap, "aimass.enriched", n_docs, timeout=5)
    assert 0 < len(enriched) < n_docs, "the stop did not land mid-stream"
    committed_docs = committed(bootstrap, "aimass-enrich", "aimass.documents")
    assert committed_docs == len(enriched)
    # The sink flushed: every row it stored is committed (its committed position on
    # aimass.enriched equals the rows in ClickHouse).
    rows = query_data_dir(data_dir, "SELECT count() FROM documents")[0][0]
    assert rows == committed(bootstrap, "aimass-sink", "aimass.enriched")
    left = pipeline_lag(bootstrap)

    worker = start_worker("all", bootstrap, data_dir, "second", env=ENV)
    try:
        wait_ready(worker, timeout=180)
        wait_drained(bootstrap, timeout=300, events=True)
        assert worker.sigterm(timeout=SHUTDOWN_TIMEOUT_S + 60) == 0, worker.tail()
    finally:
        if worker.process.poll() is None:
            worker.sigkill()
    # No document was enriched twice: the first worker's commits covered all it produced.
    assert len(read_topic(bootstrap, "aimass.enriched", n_docs + 1, timeout=10)) == n_docs
    documents = query_data_dir(data_dir, "SELECT count(), uniqExact(doc_id) FROM documents")
    stored_events = query_data_dir(data_dir, "SELECT count(), uniqExact(event_id) FROM events")
    print(
        f"RELIABILITY sigterm: documents={n_docs} events={n_events} "
        f"enriched_before_stop={len(enriched)} exit_code={exit_code} stop_s={stop_s:.1f} "
        f"uncommitted_after_stop={left} rows_after_restart={documents[0]}+{stored_events[0]}"
    )
    assert documents == [[n_docs, n_docs]]
    assert stored_events == [[n_events, n_events]]
