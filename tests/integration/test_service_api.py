"""The model service's REST API on a running worker (real broker, chdb, MiniLM): enrich and
embed through the stream's model thread, the model library and hot swap, the usage export;
auth on every endpoint; curl as the client where a user would use it."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from stream_aimass.settings import Settings
from stream_aimass.testing import (
    BrokerProcess,
    WorkerProcess,
    cli,
    produce,
    read_topic,
    ready_worker,
    write_intent_csv,
)
from stream_aimass.tools.corpus import generate_documents
from stream_aimass.training.classifier import TrainConfig, train_classifier
from stream_aimass.training.data import LabelledTexts

pytestmark = pytest.mark.integration

KEYS = {"acme": "acme-key", "globex": "globex-key"}
ADMIN = "admin-key"
SCHEMA = Path(__file__).parents[2] / "stream_aimass/resources/topics/aimass.enriched.schema.json"


def call(
    worker: WorkerProcess, path: str, key: str | None = None, body: Any = None,
    method: str | None = None, raw: bytes | None = None,
) -> tuple[int, dict[str, str], Any]:  # fmt: skip
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(
        f"http://127.0.0.1:{worker.port}{path}", data=data, method=method,
        headers={"Authorization": f"Bearer {key}"} if key else {},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            status, headers, text = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        status, headers, text = exc.code, dict(exc.headers), exc.read()
    kind = headers.get("Content-Type", "")
    return status, headers, json.loads(text) if "json" in kind else text.decode()


def curl(worker: WorkerProcess, *args: str) -> tuple[int, str]:
    """curl as a user runs it: the status code and the body."""
    done = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", *args[:-1], f"http://127.0.0.1:{worker.port}{args[-1]}"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def embedding(record: dict[str, Any]) -> np.ndarray:
    raw = base64.b64decode(record["embedding"]["b64"])
    return np.frombuffer(raw, dtype="<f2").astype(np.float32)


@pytest.fixture(scope="module")
def topic_head(tmp_path_factory: pytest.TempPathFactory, enricher: Any) -> Path:
    """A models dir holding one real classifier head on MiniLM (the demo's categories)."""
    models = tmp_path_factory.mktemp("library") / "models"
    docs = generate_documents(140, seed=101)
    data = LabelledTexts(
        [str(d["text"]) for d in docs],
        [(str(d["meta"]["category_hint"]),) for d in docs],
        False,  # type: ignore[index]
    )
    train_classifier(
        data, None, models / "topic-head", name="topic-head",
        encoder_dir=enricher.encoder.model_dir, encoder_name="all-MiniLM-L6-v2",
        config=TrainConfig(mode="head", epochs=15, seed=1),
    )  # fmt: skip
    return models


@pytest.fixture()
def worker(broker_process: BrokerProcess, tmp_path: Path, topic_head: Path) -> Any:
    env = {
        "AIMASS_API_KEYS": json.dumps(KEYS), "AIMASS_API_ADMIN_KEY": ADMIN,
        "AIMASS_MODELS_DIR": str(topic_head), "AIMASS_MODEL_RELOAD_INTERVAL_S": "0.2",
        "AIMASS_API_MAX_DOCUMENTS": "8", "AIMASS_API_MAX_REQUEST_BYTES": "4096",
        "AIMASS_API_MAX_PENDING_DOCUMENTS": "16",
        "AIMASS_CLASSIFIERS_FILE": str(tmp_path / "classifiers.json"),
    }  # fmt: skip
    with ready_worker("all", broker_process.bootstrap, tmp_path / "worker", "api", env) as proc:
        yield proc


def test_enrich_embed_models_and_usage_over_http(
    worker: WorkerProcess, broker_process: BrokerProcess
) -> None:
    schema = json.loads(SCHEMA.read_text())
    # One document, as a user sends it with curl: the tenant comes from the key.
    status, text = curl(
        worker, "-X", "POST", "-H", "Authorization: Bearer acme-key",
        "-d", '{"text": "Apple opened an office in Berlin.", "title": "Apple in Berlin"}',
        "/v1/enrich",
    )  # fmt: skip
    assert status == 200, text
    answer = json.loads(text)
    (record,) = answer["records"]
    assert answer["failed"] == []
    jsonschema.validate(record, schema)
    assert record["tenant"] == "acme" and record["source"]["topic"] == "api"
    assert {e["entity_id"] for e in record["entities"]} >= {"company/apple", "city/berlin"}

    # Several, with ids; same text as the stream's corpus gives the same embedding as /embed.
    docs = [{"id": f"g-{i}", "text": str(d["text"]), "title": str(d["title"])}
            for i, d in enumerate(generate_documents(6, seed=7))]  # fmt: skip
    status, _, answer = call(worker, "/v1/enrich", KEYS["globex"], {"documents": docs})
    assert status == 200, answer
    records = answer["records"]
    assert [r["id"] for r in records] == [d["id"] for d in docs]
    assert all(r["tenant"] == "globex" for r in records)
    status, _, embedded = call(
        worker, "/v1/embed", KEYS["globex"], {"texts": [d["text"] for d in docs]}
    )
    assert status == 200 and embedded["dim"] == 384, embedded
    vectors = np.array(embedded["embeddings"], dtype=np.float32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)
    for vector, r in zip(vectors, records, strict=True):
        assert float(vector @ embedding(r)) > 0.999  # the record's float16 copy

    # What the API enriched went to the enriched topic too (the sink stores and meters it).
    published = read_topic(broker_process.bootstrap, Settings().topic_enriched, 7)
    assert {json.loads(m.value)["id"] for m in published} >= {r["id"] for r in records}

    # The model library: look, then serve the head with the admin key; records carry it.
    status, _, detail = call(worker, "/v1/models/topic-head", KEYS["acme"])
    assert status == 200, detail
    (version,) = detail["versions"]
    assert version["kind"] == "classifier" and version["serving"] == [] and version["newest"]
    assert call(worker, "/v1/models/topic-head/use", KEYS["acme"], {})[0] == 403
    assert call(worker, "/v1/models/topic-head/use", None, {})[0] == 401
    status, _, used = call(worker, "/v1/models/topic-head/use", ADMIN, {"as": "topic"})
    assert status == 200 and used["version"] == version["version"], used
    deadline = time.monotonic() + 60
    while True:
        _, _, answer = call(worker, "/v1/enrich", KEYS["acme"], {"text": "The match ended 2-1."})
        classified = answer["records"][0].get("classifications") or []
        if [c["classifier"] for c in classified] == ["topic"]:
            break
        assert time.monotonic() < deadline, answer
        time.sleep(0.3)
    status, _, detail = call(worker, "/v1/models/topic-head", KEYS["acme"])
    assert detail["versions"][0]["serving"] == ["topic-head"]
    assert detail["versions"][0]["configured"] == ["topic"]

    # Usage: each tenant its own rows; the admin every tenant's, as JSON or CSV.
    deadline = time.monotonic() + 60
    while True:
        status, _, usage = call(worker, "/v1/usage", ADMIN)
        tenants = {row["tenant"]: row["documents"] for row in usage.get("rows", [])}
        if tenants.get("globex") == 6 and tenants.get("acme", 0) >= 2:
            break
        assert time.monotonic() < deadline, usage
        time.sleep(0.3)
    status, _, sources = call(worker, "/v1/usage?by=source", ADMIN)
    assert status == 200 and sources["query"] == "usage-by-source"
    assert {(r["tenant"], r["source"]) for r in sources["rows"]} == {
        ("acme", "api"),
        ("globex", "api"),
    }
    status, _, own = call(worker, "/v1/usage", KEYS["globex"])
    assert status == 200 and {r["tenant"] for r in own["rows"]} == {"globex"}
    assert call(worker, "/v1/usage?tenant=acme", KEYS["globex"])[0] == 403
    status, text = curl(worker, "-H", f"X-API-Key: {ADMIN}", "/v1/usage?format=csv")
    assert status == 200 and text.splitlines()[0].startswith("tenant,hour,documents,tokens")
    assert call(worker, "/v1/usage?from=yesterday", ADMIN)[0] == 400


def test_bad_requests_get_their_reason_and_the_worker_goes_on(worker: WorkerProcess) -> None:
    key = KEYS["acme"]
    cases = [
        (None, {"text": "x"}, 401, "API key is required"),
        ("wrong-key", {"text": "x"}, 403, "not valid"),
        (key, {"documents": [{"tenant": "globex", "text": "x"}]}, 403, "tenant 'globex'"),
        (key, {"documents": [{"text": "fine"}, {"text": " "}]}, 400, "documents[1]: field 'text'"),
        (key, {"documents": [{"text": "x"}] * 9}, 413, "over the limit of 8"),
        (key, {"text": "x" * 5000}, 413, "over the limit of 4096"),
        (key, {"title": "no text"}, 400, "needs 'documents'"),
        (key, [1, 2], 400, "must be a JSON object"),
    ]
    for k, body, status, reason in cases:
        got, _, answer = call(worker, "/v1/enrich", k, body)
        assert (got, reason in answer["error"]) == (status, True), (body, answer)
    got, _, answer = call(worker, "/v1/enrich", key, raw=b'{"text": ')
    assert got == 400 and "not valid JSON" in answer["error"]
    got, _, answer = call(worker, "/v1/embed", key, {"texts": ["ok", 3]})
    assert got == 400 and "texts[1] must be a string" in answer["error"]
    assert call(worker, "/v1/models/nope", key)[0] == 404
    assert call(worker, "/v1/models/nope/use", ADMIN, {})[0] == 404
    got, _, answer = call(worker, "/v1/models/topic-head/use", ADMIN, {"versoin": "x"})
    assert got == 400 and "unknown field" in answer["error"]
    # Concurrent requests past the queue's bound are refused with Retry-After, never lost.
    body = {"documents": [{"text": str(d["text"])} for d in generate_documents(8, seed=3)]}
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: call(worker, "/v1/enrich", key, body), range(12)))
    assert any(got == 200 for got, _, _ in answers)
    for got, headers, answer in answers:
        assert got in (200, 429), answer
        if got == 429:
            assert headers["Retry-After"] and "retry" in answer["error"]
        else:
            assert len(answer["records"]) == 8
    assert call(worker, "/v1/enrich", key, {"text": "still here"})[0] == 200


def test_every_documented_operation_answers_as_documented(worker: WorkerProcess) -> None:
    """The contract: /openapi.json passes an OpenAPI 3.1 validator, and every operation it
    lists, called with its examples (with the admin key, and with no key), answers with a
    documented status and a body its schema accepts."""
    from openapi_spec_validator import validate

    status, _, document = call(worker, "/openapi.json")
    assert status == 200
    validate(document)
    components = document["components"]
    values = {"name": "topic-head", "tenant": "acme", "user_id": "u-1", "job_id": "nojob"}
    checked = 0
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            url = path.format(**{k: v for k, v in values.items() if "{" + k + "}" in path})
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            keys: list[str | None] = [ADMIN, None] if op["security"] else [None]
            for key in keys:
                got, headers, answer = call(
                    worker, url, key, body.get("example"), method=method.upper()
                )
                documented = op["responses"].get(str(got))
                assert documented is not None, (method, path, key is None, got, answer)
                kind = headers.get("Content-Type", "").split(";")[0]
                content = documented.get("content", {})
                if kind in content and kind == "application/json":
                    schema = {**content[kind]["schema"], "components": components}
                    jsonschema.Draft202012Validator(schema).validate(answer)
                checked += 1
            if op["security"]:
                assert got == 401  # the last call had no key
    assert checked >= 18


def upload(worker: WorkerProcess, key: str | None, *fields: str) -> tuple[int, Any]:
    args = [a for f in fields for a in ("-F", f)]
    status, text = curl(worker, *(["-H", f"X-API-Key: {key}"] if key else []), *args,
                        "/v1/training-jobs")  # fmt: skip
    return status, json.loads(text)


def test_training_jobs_run_in_their_own_process_and_land_in_the_library(
    worker: WorkerProcess, broker_process: BrokerProcess, tmp_path: Path, topic_head: Path
) -> None:
    data = write_intent_csv(tmp_path / "intents.csv")
    one_label = tmp_path / "one.csv"
    one_label.write_text("text,category\na,x\nb,x\n")
    conll = tmp_path / "tags.conll"
    conll.write_text("Paris B-LOC\nis O\nnice O\n\nAcme B-ORG\nhired O\nBob B-PER\n")

    # Refusals: who, and what the CLI would say of the file.
    assert upload(worker, None, f"file=@{data}", "kind=classifier")[0] == 401
    assert upload(worker, KEYS["acme"], f"file=@{data}", "kind=classifier")[0] == 403
    status, answer = upload(worker, ADMIN, f"file=@{one_label}", "kind=classifier")
    assert status == 400 and "only one label" in answer["error"] and "one.csv" in answer["error"]
    status, answer = upload(worker, ADMIN, f"file=@{data}", "kind=ner")
    assert status == 400 and "CoNLL" in answer["error"]
    status, answer = upload(worker, ADMIN, f"file=@{conll}", "kind=translator")
    assert status == 400 and "kind must be one of" in answer["error"]
    status, answer = upload(worker, ADMIN, f"file=@{data}", "kind=classifier", "epochs=0")
    assert status == 400 and "epochs" in answer["error"]
    got = call(worker, "/v1/training-jobs", ADMIN, {"kind": "classifier"}, method="POST")
    assert got[0] == 400 and "multipart/form-data" in got[2]["error"]

    status, job = upload(
        worker, ADMIN, f"file=@{data}", f"dev=@{data}", "kind=classifier", "epochs=3",
        "name=intent",
    )  # fmt: skip
    assert status == 202 and job["state"] == "queued", job
    assert job["data"] == {"file": "intents.csv", "examples": 8, "labels": 2}
    deadline = time.monotonic() + 300
    while True:
        status, _, job = call(worker, f"/v1/training-jobs/{job['id']}", ADMIN)
        if job["state"] in ("succeeded", "failed", "cancelled"):
            break
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    status, _, log = call(worker, f"/v1/training-jobs/{job['id']}/log", ADMIN)
    assert job["state"] == "succeeded", (job, log)
    assert [e["epoch"] for e in job["epoch_metrics"]] == [1, 2, 3]
    assert {"train_loss", "accuracy", "macro_f1"} <= set(job["epoch_metrics"][-1]["metrics"])
    assert job["progress"]["percent"] == 100.0
    assert job["model"]["name"] == "intent" and job["model"]["version"]
    assert "train classifier" in log and "epoch 3" in log
    status, _, detail = call(worker, "/v1/models/intent", ADMIN)
    assert status == 200 and [v["version"] for v in detail["versions"]] == [job["model"]["version"]]
    assert (topic_head / "intent" / job["model"]["version"] / "model.json").is_file()

    # A queued job can be cancelled; the list keeps every job, oldest first.
    status, queued = upload(worker, ADMIN, f"file=@{conll}", "kind=ner", "epochs=1", "name=tags")
    assert status == 202
    status, _, cancelled = call(worker, f"/v1/training-jobs/{queued['id']}/cancel", ADMIN, {},
                                method="POST")  # fmt: skip
    assert status == 200 and cancelled["state"] in ("cancelled", "running")
    assert call(worker, "/v1/training-jobs/nope/log", ADMIN)[0] == 404
    status, _, listed = call(worker, "/v1/training-jobs", ADMIN)
    assert [j["id"] for j in listed["jobs"]] == [job["id"], queued["id"]]


def test_dead_letters_over_http_and_replayed_once_the_cause_is_fixed(
    broker_process: BrokerProcess, tmp_path: Path
) -> None:
    """A document too large for the first worker's limit is a dead letter (GET
    /v1/dead-letters shows it, admin only); with the limit raised, `dlq replay` sends it back
    to aimass.documents with its key, and it is enriched and stored like any other."""
    bootstrap = broker_process.bootstrap
    env = {"AIMASS_API_KEYS": json.dumps(KEYS), "AIMASS_API_ADMIN_KEY": ADMIN,
           "AIMASS_MAX_DOCUMENT_BYTES": "2000"}  # fmt: skip
    big = {"id": "big-1", "tenant": "acme", "ts": 1_796_000_000_000,
           "text": "Apple opened an office in Berlin. " * 80}  # fmt: skip
    with ready_worker("all", bootstrap, tmp_path / "w", "first", env) as first:
        produce(bootstrap, "aimass.documents", [json.dumps(big).encode(), b"{not json"],
                [b"acme:big-1", None])  # fmt: skip
        deadline = time.monotonic() + 90
        while True:
            status, _, answer = call(first, "/v1/dead-letters?stage=validate", ADMIN)
            if status == 200 and answer["dead_letters"]:
                break
            assert time.monotonic() < deadline, answer
            time.sleep(0.5)
        (dead,) = answer["dead_letters"]
        assert dead["topic"] == "aimass.documents" and "over the limit of 2000" in dead["reason"]
        status, _, everything = call(first, "/v1/dead-letters", ADMIN)
        assert {d["stage"] for d in everything["dead_letters"]} == {"validate", "decode"}
        assert call(first, "/v1/dead-letters", KEYS["acme"])[0] == 403
        assert call(first, "/v1/dead-letters?limit=0", ADMIN)[0] == 400

    replay = ["dlq", "replay", "--bootstrap", bootstrap, "--json"]
    dry = subprocess.run(cli(*replay, "--stage", "validate", "--dry-run"), capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    report = json.loads(dry.stdout[dry.stdout.index("{") :])
    assert (report["matched"], report["replayed"], report["dry_run"]) == (1, 1, True)

    env["AIMASS_MAX_DOCUMENT_BYTES"] = "262144"  # the cause, fixed
    with ready_worker("all", bootstrap, tmp_path / "w", "second", env) as second:
        done = subprocess.run(cli(*replay, "--reason", "over the limit"), capture_output=True,
                              text=True, timeout=120, check=True)  # fmt: skip
        report = json.loads(done.stdout[done.stdout.index("{") :])
        assert report["replayed"] == 1 and report["to_topics"] == {"aimass.documents": 1}
        deadline = time.monotonic() + 90
        while True:
            status, _, usage = call(second, "/v1/usage?tenant=acme", ADMIN)
            if usage.get("rows") and usage["rows"][0]["documents"] == 1:
                break
            assert time.monotonic() < deadline, (usage, second.tail())
            time.sleep(0.5)
        # Where it went: aimass.documents again, with its key (read back with kcat when here).
        if shutil.which("kcat"):
            got = subprocess.run(
                ["kcat", "-C", "-b", bootstrap, "-t", "aimass.documents", "-e", "-q",
                 "-f", "%k\\n"], capture_output=True, text=True, timeout=60, check=True,
            ).stdout.split()  # fmt: skip
            assert got.count("acme:big-1") == 2  # the original and the replay
