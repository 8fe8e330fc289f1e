"""Crash safety: a worker SIGKILLed at seeded random points, again and again, then restarted.

Documents, bad messages and user events arrive in chunks, one chunk before each run; each
run starts a worker (role ``all``, RocksDB profile store on disk), waits until it is ready,
lets it work for a seeded random time and kills it with SIGKILL, so kills land in decode,
the model, produce, commit, the sink's inserts and the Faust table alike. A last worker
drains everything and stops with SIGTERM. Then: every document exactly once in
``documents`` FINAL, every event once in ``events`` FINAL, every bad message once in
``dead_letters``, and every user's profile counts each of their events exactly once.

CI runs 3 kills over a small stream; ``pytest --long`` runs the issue's 10.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from stream_aimass.testing import (
    BrokerProcess,
    WorkerProcess,
    pipeline_lag,
    produce_documents,
    produce_events,
    query_data_dir,
    start_worker,
    wait_drained,
    wait_ready,
)
from stream_aimass.tools.corpus import bad_messages, generate_documents, generate_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ENV = {"AIMASS_API_AUTH_ENABLED": "false"}
SEED = 20261124


def _profile(worker: WorkerProcess, tenant: str, user: str) -> dict[str, Any] | None:
    url = f"http://127.0.0.1:{worker.port}/v1/recommendations/{tenant}/{user}?k=1"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            profile: dict[str, Any] = json.loads(response.read())["profile"]
            return profile
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise


def _chunks(items: list[Any], n: int) -> list[list[Any]]:
    size = -(-len(items) // n)
    return [items[i * size : (i + 1) * size] for i in range(n)]


def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    broker_process: BrokerProcess, tmp_path: Path, long_mode: bool
) -> None:
    runs = 10 if long_mode else 3
    n_docs = 120 * runs
    n_events = 200 * runs
    rng = random.Random(SEED)
    docs = generate_documents(n_docs, seed=SEED)
    events = generate_events(docs, n_events, seed=SEED, users_per_tenant=8)
    bad = [raw for raw, _ in bad_messages()]
    bootstrap = broker_process.bootstrap
    data_dir = tmp_path / "worker"
    kills: list[dict[str, Any]] = []
    started = time.monotonic()
    # Documents sent again with a new title in later runs (updates): the last one must win.
    latest: dict[str, str] = {d["id"]: str(d.get("title", "")) for d in docs}
    sent: list[dict[str, Any]] = []

    for run, (doc_chunk, event_chunk) in enumerate(
        zip(_chunks(docs, runs), _chunks(events, runs), strict=True)
    ):
        updates = [
            {**d, "title": f"revision {run}.{n}"} for n, d in enumerate(rng.sample(sent, 15))
        ] if sent else []  # fmt: skip
        produce_documents(bootstrap, doc_chunk + updates, [bad[run % len(bad)]])  # one per run
        for d in updates:
            latest[d["id"]] = d["title"]
        sent.extend(doc_chunk)
        produce_events(bootstrap, event_chunk)
        worker = start_worker("all", bootstrap, data_dir, f"run-{run}", env=ENV)
        try:
            wait_ready(worker, timeout=180)
            delay = rng.uniform(0.1, 2.5)
            time.sleep(delay)
            worker.sigkill()
            # What the kill left uncommitted, per group: proof it landed mid-stream.
            kills.append({"after_s": round(delay, 2), "uncommitted": pipeline_lag(bootstrap)})
        finally:
            if worker.process.poll() is None:
                worker.sigkill()

    worker = start_worker("all", bootstrap, data_dir, "final", env=ENV)
    try:
        wait_ready(worker, timeout=180)
        wait_drained(bootstrap, timeout=300, events=True)
        expected = Counter((e["tenant"], e["user_id"]) for e in events)
        wrong = {}
        for (tenant, user), count in sorted(expected.items()):
            profile = _profile(worker, str(tenant), str(user))
            applied = profile["events"] if profile is not None else 0
            if applied != count:
                wrong[f"{tenant}:{user}"] = (applied, count)
        t0 = time.monotonic()
        exit_code = worker.sigterm(timeout=90)
        stop_s = time.monotonic() - t0
    finally:
        if worker.process.poll() is None:
            worker.sigkill()
    assert exit_code == 0, worker.tail()

    bad_sent = runs
    documents = query_data_dir(
        data_dir, "SELECT count(), uniqExact(doc_id), (SELECT count() FROM documents) "
        "FROM documents FINAL"
    )[0]  # fmt: skip
    stored_events = query_data_dir(
        data_dir, "SELECT count(), uniqExact(event_id), (SELECT count() FROM events) "
        "FROM events FINAL"
    )[0]  # fmt: skip
    dead = query_data_dir(data_dir, "SELECT count() FROM dead_letters FINAL")[0][0]
    doc_ids = {r[0] for r in query_data_dir(data_dir, "SELECT doc_id FROM documents FINAL")}
    event_ids = {r[0] for r in query_data_dir(data_dir, "SELECT event_id FROM events FINAL")}
    recommendations = query_data_dir(data_dir, "SELECT count() FROM recommendations FINAL")[0][0]
    titles = dict(query_data_dir(data_dir, "SELECT doc_id, title FROM documents FINAL"))
    item_titles = dict(query_data_dir(data_dir, "SELECT item_id, title FROM items FINAL"))
    rolled_back = {i: (titles.get(i), t) for i, t in latest.items() if titles.get(i) != t}
    print(
        f"RELIABILITY crash: runs={runs} kills={kills} documents={n_docs} events={n_events} "
        f"bad={bad_sent} stored_documents={documents[0]} stored_events={stored_events[0]} "
        f"dead_letters={dead} lost_documents={n_docs - len(doc_ids & {d['id'] for d in docs})} "
        f"lost_events={n_events - len(event_ids & {e['event_id'] for e in events})} "
        f"duplicate_rows_before_final={documents[2] - documents[0]}+"
        f"{stored_events[2] - stored_events[0]} profiles_checked={len(expected)} "
        f"profiles_wrong={len(wrong)} recommendations={recommendations} "
        f"updates={sum(t.startswith('revision') for t in latest.values())} "
        f"rolled_back={len(rolled_back)} "
        f"sigterm_exit_s={stop_s:.1f} wall_s={time.monotonic() - started:.0f}"
    )
    assert any(sum(k["uncommitted"].values()) for k in kills), "no kill landed mid-stream"
    assert documents[:2] == [n_docs, n_docs]
    assert doc_ids == {d["id"] for d in docs}
    assert stored_events[:2] == [n_events, n_events]
    assert event_ids == {e["event_id"] for e in events}
    assert dead == bad_sent
    assert not wrong, f"profiles (applied, produced) off: {wrong}"
    assert not rolled_back, f"updates rolled back (stored, last sent): {rolled_back}"
    assert {i: item_titles.get(i) for i in latest} == latest
