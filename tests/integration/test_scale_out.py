"""Scale-out on a 3-broker embedded cluster with 12 partitions: 4 enrich and 2 sink processes,
workers added and removed mid-stream, a broker taken down and brought back (the mock API).

Every document must be enriched and stored, every event stored and counted in its user's
profile exactly once. The two sinks keep their own chdb data dirs (one process per dir): a
partition that moves between them mid-stream may leave a row in both, as a shared ClickHouse
server would hold it twice before ReplacingMergeTree collapses it. So the stores are read as
one server would read them: rows by their key, and a key stored twice must be the same row.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_aimass.kafka.embedded import EmbeddedBroker
from stream_aimass.kafka.topics import configured_topics
from stream_aimass.settings import Settings
from stream_aimass.testing import (
    WorkerProcess,
    produce,
    produce_documents,
    query_data_dir,
    read_topic,
    start_worker,
    wait_drained,
    wait_ready,
)
from stream_aimass.tools.corpus import generate_documents

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 12
T0 = 1_767_225_600_000


def _events(users: int, first: int) -> tuple[list[bytes], list[bytes | None], dict[str, int]]:
    values: list[bytes] = []
    keys: list[bytes | None] = []
    counts: dict[str, int] = {}
    for u in range(users):
        user = f"u{u}"
        for i in range(1 + (u + first) % 3):
            values.append(
                orjson.dumps(
                    {
                        "event_id": f"{user}-{first}-{i}",
                        "tenant": "acme",
                        "user_id": user,
                        "item_id": f"item-{i}",
                        "type": "view",
                        "ts": T0 + first * 100 + i,
                    }
                )
            )
            keys.append(f"acme:{user}".encode())
            counts[user] = counts.get(user, 0) + 1
    return values, keys, counts


def _profile_events(worker: WorkerProcess, user: str) -> int:
    url = f"http://127.0.0.1:{worker.port}/v1/recommendations/acme/{user}?k=1"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(json.loads(response.read())["profile"]["events"])
    except OSError:
        return -1


def _union(dirs: list[Path], sql: str) -> list[list[Any]]:
    return [row for d in dirs for row in query_data_dir(d, sql)]


def test_four_enrich_two_sink_processes_on_three_brokers_through_scaling_and_a_broker_outage(
    tmp_path: Path, tiny_encoder_dir: Path
) -> None:
    settings = Settings(topic_partitions=PARTITIONS)
    env = {
        "AIMASS_TOPIC_PARTITIONS": str(PARTITIONS),
        "AIMASS_MODEL_DIR": str(tiny_encoder_dir),
        "AIMASS_ENTITIES_ENABLED": "false",
        "AIMASS_RECS_STORE": "memory://",
        "AIMASS_API_AUTH_ENABLED": "false",
    }
    docs = generate_documents(480, seed=2020)
    chunks = [docs[i : i + 120] for i in range(0, len(docs), 120)]
    expected_profiles: dict[str, int] = {}
    produced_events = 0
    with EmbeddedBroker(num_brokers=3) as broker:
        broker.create_topics((t.name, t.partitions) for t in configured_topics(settings))
        bootstrap = broker.bootstrap

        def worker(role: str, name: str) -> WorkerProcess:
            return start_worker(role, bootstrap, tmp_path / name, name, env=env)

        def send(first: int, chunk: list[dict[str, Any]]) -> None:
            nonlocal produced_events
            produce_documents(bootstrap, chunk)
            values, keys, counts = _events(40, first)
            produce(bootstrap, "aimass.events", values, keys)
            produced_events += len(values)
            for user, n in counts.items():
                expected_profiles[user] = expected_profiles.get(user, 0) + n

        enrich = {n: worker("enrich", n) for n in ("enrich-1", "enrich-2", "enrich-3")}
        sinks = {"sink-1": worker("sink", "sink-1")}
        everyone = [*enrich.values(), *sinks.values()]
        try:
            for w in everyone:
                wait_ready(w, timeout=240)
            send(0, chunks[0])
            # Scale out mid-stream: a fourth enrich process and a second sink join the groups.
            enrich["enrich-4"] = worker("enrich", "enrich-4")
            sinks["sink-2"] = worker("sink", "sink-2")
            everyone += [enrich["enrich-4"], sinks["sink-2"]]
            send(1, chunks[1])
            wait_ready(enrich["enrich-4"], timeout=240)
            wait_ready(sinks["sink-2"], timeout=240)
            # A broker goes down while records are produced, and comes back.
            broker.set_down(2)
            sending = threading.Thread(target=send, args=(2, chunks[2]))
            sending.start()
            time.sleep(5)
            broker.set_up(2)
            sending.join(120)
            assert not sending.is_alive(), "producing did not resume after the broker came back"
            # Scale in mid-stream: one enrich process leaves (SIGTERM: drain, then go).
            assert enrich.pop("enrich-1").sigterm(90) == 0
            send(3, chunks[3])
            wait_drained(bootstrap, timeout=300, events=True)
            # Drained: everything is there. Rebalances may have re-enriched a few documents
            # (at-least-once on the topic), so read past len(docs), for a while; again while
            # a document is missing (one read of 12 partitions on three brokers can take
            # longer than its window: once it missed 80 records the sinks had stored).
            wanted = {d["id"] for d in docs}
            reading_until = time.monotonic() + 120
            while True:
                enriched = read_topic(bootstrap, "aimass.enriched", 3 * len(docs), timeout=30)
                seen = {orjson.loads(m.value)["id"] for m in enriched}
                if seen >= wanted or time.monotonic() > reading_until:
                    break
            stayed = list(enrich.values())
            deadline = time.monotonic() + 60
            while True:
                # Any enrich process answers for any user (it asks the holder).
                answers = {
                    user: [_profile_events(w, user) for w in stayed] for user in expected_profiles
                }
                wrong = {
                    u: (a, expected_profiles[u])
                    for u, a in answers.items()
                    if set(a) != {expected_profiles[u]}
                }
                if not wrong or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert not wrong, f"profiles (answers per worker, expected): {wrong}"
            for w in [*enrich.values(), *sinks.values()]:
                assert w.sigterm(90) == 0, w.tail()
        finally:
            for w in everyone:
                if w.process.poll() is None:
                    w.sigkill()
    records = [orjson.loads(m.value) for m in enriched]
    by_id: dict[str, set[str]] = {}
    for r in records:
        by_id.setdefault(r["id"], set()).add(r["worker"])
    assert set(by_id) == {d["id"] for d in docs}
    assert len({r["worker"] for r in records}) >= 3, "the enrich processes shared the work"
    dirs = [tmp_path / name for name in sinks]
    stored = _union(dirs, "SELECT doc_id, toString(version) FROM documents FINAL")
    versions: dict[str, set[str]] = {}
    for doc_id, version in stored:
        versions.setdefault(doc_id, set()).add(version)
    assert set(versions) == {d["id"] for d in docs}
    assert all(len(v) == 1 for v in versions.values()), "a document stored in two versions"
    assert all(query_data_dir(d, "SELECT count() FROM documents FINAL")[0][0] > 0 for d in dirs)
    event_ids = {r[0] for r in _union(dirs, "SELECT event_id FROM events FINAL")}
    assert len(event_ids) == produced_events
