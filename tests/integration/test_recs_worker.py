"""The recommendations HTTP endpoint of a real worker process, and profiles that survive a
restart (recovered from the Faust changelog, with the in-memory store: nothing on disk).
API auth is on (the default): the requests carry acme's key (tests/integration/
test_tenant_isolation.py covers the key checks)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_aimass.testing import (
    BrokerProcess,
    WorkerProcess,
    produce,
    produce_documents,
    start_worker,
    wait_ready,
)
from stream_aimass.tools.corpus import generate_documents

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ACME_KEY = "acme-test-key"
ENV = {"AIMASS_RECS_STORE": "memory://", "AIMASS_API_KEYS": json.dumps({"acme": ACME_KEY})}
T0 = 1_767_225_600_000


def get(worker: WorkerProcess, path: str, key: str | None = ACME_KEY) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    request = urllib.request.Request(f"http://127.0.0.1:{worker.port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def poll(worker: WorkerProcess, path: str, ok: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        status, body = get(worker, path)
        if ok(status, body):
            return body
        assert time.monotonic() < deadline, f"{path}: {status} {body}\n{worker.tail()}"
        time.sleep(0.5)


def events(user: str, items: list[str], first_offset: int) -> tuple[list[bytes], list[bytes]]:
    values = [
        orjson.dumps(
            {
                "event_id": f"{user}-{first_offset + i}",
                "tenant": "acme",
                "user_id": user,
                "item_id": item,
                "type": "click",
                "ts": T0 + first_offset + i,
            }
        )
        for i, item in enumerate(items)
    ]
    return values, [f"acme:{user}".encode()] * len(values)


def test_http_recommendations_and_profiles_survive_a_restart(
    broker_process: BrokerProcess, tmp_path: Path
) -> None:
    bootstrap = broker_process.bootstrap
    docs = generate_documents(60, seed=61)
    acme = [str(d["id"]) for d in docs if d["tenant"] == "acme"]
    assert len(acme) >= 12
    data_dir = tmp_path / "worker"
    worker = start_worker("all", bootstrap, data_dir, "first", env=ENV)
    try:
        wait_ready(worker)
        produce_documents(bootstrap, docs)
        poll(
            worker,
            "/v1/recommendations/acme/nobody?cold_start=true&k=12",
            lambda status, body: status == 200 and len(body["items"]) == 12,
        )
        produce(bootstrap, "aimass.events", *events("u-1", acme[:4], 0))
        body = poll(
            worker,
            "/v1/recommendations/acme/u-1?k=3",
            lambda status, body: status == 200 and body["profile"]["events"] == 4,
        )
        assert body["known_user"] and not body["cold_start"] and body["k"] == 3
        items = [i["item_id"] for i in body["items"]]
        assert len(items) == 3 and not set(items) & set(acme[:4])
        assert set(items) <= set(acme), "only the user's tenant's items"
        assert all(i["title"] for i in body["items"])
        assert body["profile"]["recent_items"] == acme[:4][::-1]

        status, body = get(worker, "/v1/recommendations/acme/nobody")
        assert status == 404 and "unknown user" in body["error"]
        assert get(worker, "/v1/recommendations/acme/u-1?k=3", key=None)[0] == 401
        for path, reason in [
            ("/v1/recommendations/acme/u-1?k=0", "k must be"),
            ("/v1/recommendations/acme/u-1?k=101", "k must be"),
            ("/v1/recommendations/acme/u-1?k=ten", "k must be"),
            (f"/v1/recommendations/acme/{'x' * 300}", "user_id must be"),
        ]:
            status, body = get(worker, path)
            assert status == 400 and reason in body["error"], (path, body)
        # acme's key grants no other tenant, a malformed one included (auth comes first).
        status, body = get(worker, "/v1/recommendations/bad%21tenant/u-1")
        assert status == 403 and "does not grant" in body["error"], body
        assert worker.sigterm() == 0
    finally:
        if worker.process.poll() is None:
            worker.sigkill()

    restarted = start_worker("all", bootstrap, data_dir, "second", env=ENV)
    try:
        wait_ready(restarted)
        body = poll(
            restarted,
            "/v1/recommendations/acme/u-1?k=3",
            lambda status, body: status == 200,
        )
        # Recovered from the changelog (memory store): the same profile, not a cold start.
        assert body["profile"]["events"] == 4 and not body["cold_start"]
        assert body["profile"]["recent_items"] == acme[:4][::-1]
        produce(bootstrap, "aimass.events", *events("u-1", acme[4:5], 4))
        body = poll(
            restarted,
            "/v1/recommendations/acme/u-1?k=3",
            lambda status, body: status == 200 and body["profile"]["events"] >= 5,
        )
        time.sleep(2)  # a replayed event would show up as a sixth
        status, body = get(restarted, "/v1/recommendations/acme/u-1?k=3")
        assert body["profile"]["events"] == 5
        assert body["profile"]["recent_items"][0] == acme[4]
        assert restarted.sigterm() == 0
    finally:
        if restarted.process.poll() is None:
            restarted.sigkill()


def _curl(port: int, path: str, key: str = ACME_KEY) -> tuple[int, dict[str, Any]]:
    """The endpoint called with curl, as a user would."""
    import subprocess

    out = subprocess.run(
        [
            "curl",
            "-s",
            "-H",
            f"Authorization: Bearer {key}",
            "-w",
            "\n%{http_code}",
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    body, _, code = out.stdout.rpartition("\n")
    return int(code), json.loads(body)


def test_any_worker_answers_for_users_held_by_another(
    broker_process: BrokerProcess, tmp_path: Path
) -> None:
    """Two workers share the profile table's partitions. Users' events come from librdkafka
    producers with its default partitioner (CRC32) and with Kafka's (murmur2): whichever
    worker a request reaches answers 200 with the user's profile; 404 only for a user no
    worker holds."""
    from stream_aimass.testing import pipeline_lag, produce_with_librdkafka

    bootstrap = broker_process.bootstrap
    workers = [
        start_worker("enrich", bootstrap, tmp_path / f"w{n}", f"w{n}", env=ENV) for n in range(2)
    ]
    try:
        for worker in workers:
            wait_ready(worker)
        expected: dict[str, int] = {}
        for partitioner in ("consistent_random", "murmur2_random"):
            messages = []
            for u in range(12):
                user = f"{partitioner[:3]}-{u}"
                expected[user] = 1 + u % 3
                for i in range(expected[user]):
                    value = orjson.dumps(
                        {
                            "event_id": f"{user}-{i}",
                            "tenant": "acme",
                            "user_id": user,
                            "item_id": f"item-{i}",
                            "type": "view",
                            "ts": T0 + i,
                        }
                    )
                    messages.append((f"acme:{user}".encode(), value))
            produce_with_librdkafka(bootstrap, "aimass.events", messages, partitioner=partitioner)
        deadline = time.monotonic() + 120
        while pipeline_lag(bootstrap)["aimass"] > 0:  # the events agents' group (no sink here)
            assert time.monotonic() < deadline, pipeline_lag(bootstrap)
            time.sleep(1)
        for user, count in expected.items():
            for worker in workers:
                body = poll(
                    worker,
                    f"/v1/recommendations/acme/{user}?k=3",
                    lambda status, body: status == 200,
                    timeout=60,
                )
                assert body["profile"]["events"] == count, (user, worker.port)
        for worker in workers:
            status, body = _curl(worker.port, "/v1/recommendations/acme/nobody?k=3")
            assert status == 404 and "unknown user" in body["error"], body
            status, body = _curl(worker.port, "/v1/recommendations/acme/con-4?k=3")
            assert status == 200 and body["profile"]["events"] == 2, body
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.sigterm()
