"""Issue 21 end to end: a worker with a generator (a tiny random GPT-2 built from a config,
beam search) summarises articles produced with librdkafka in every codec and one sent with
curl; kcat reads the enriched records; ClickHouse holds the summaries and headlines.

The extractive summary's offsets must point into the text as stored, the generated part must
name the generator's version (in ``generated`` and in ``models``), a two-sentence document
is its own summary, and a malformed document is a dead letter as ever.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import jsonschema
import orjson
import pytest

from stream_aimass.models.encoder import weights_version
from stream_aimass.settings import Settings
from stream_aimass.testing import (
    KAFKA_CODECS,
    BrokerProcess,
    make_tiny_generator,
    produce_with_librdkafka,
    query_data_dir,
    ready_worker,
    wait_drained,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed"),
]

TS = 1_767_225_600_000
ARTICLES = resources.files("stream_aimass") / "resources" / "summaries" / "news-test.jsonl"
SCHEMA = resources.files("stream_aimass") / "resources" / "topics" / "aimass.enriched.schema.json"


def articles(n: int) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in ARTICLES.read_text().splitlines()[:n]]
    return [{"id": r["id"], "tenant": "acme", "ts": TS, "title": r["title"], "text": r["text"]}
            for r in rows]  # fmt: skip


def kcat_values(bootstrap: str, topic: str) -> list[dict[str, object]]:
    done = subprocess.run(
        ["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\n"],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    return [json.loads(line) for line in done.stdout.decode().splitlines() if line.strip()]


def test_articles_get_extractive_and_generated_summaries_in_topics_and_clickhouse(
    broker_process: BrokerProcess, tmp_path: Path
) -> None:
    bootstrap = broker_process.bootstrap
    model_dir = make_tiny_generator(tmp_path / "tiny-gpt2", kind="causal")
    version = weights_version(model_dir)
    env = {
        "AIMASS_SUMMARY_MODEL": str(model_dir),
        "AIMASS_SUMMARY_SEARCH": "beam",
        "AIMASS_SUMMARY_NUM_BEAMS": "2",
        "AIMASS_SUMMARY_MAX_NEW_TOKENS": "6",
        "AIMASS_HEADLINE_MAX_NEW_TOKENS": "3",
        "AIMASS_SUMMARY_BATCH_SIZE": "4",
        "AIMASS_ENRICHED_INCLUDE_TEXT": "true",
        "AIMASS_API_KEYS": json.dumps({"acme": "acme-key"}),
    }
    s = Settings()
    docs = articles(10)
    docs.append({"id": "short-1", "tenant": "acme", "ts": TS,
                 "text": "Only two sentences here. That is all."})  # fmt: skip
    data_dir = tmp_path / "worker"
    with ready_worker("all", bootstrap, data_dir, "summaries", env) as worker:
        for i, codec in enumerate(KAFKA_CODECS):
            part = docs[i :: len(KAFKA_CODECS)]
            messages = [(f"acme:{d['id']}".encode(), orjson.dumps(d)) for d in part]
            if i == 0:
                messages.append((None, b"{not json"))
            produce_with_librdkafka(bootstrap, s.topic_documents, messages, codec=codec)
        body = {"id": "api-1", "title": "Over HTTP", "text": docs[0]["text"]}
        done = subprocess.run(
            ["curl", "-sS", "-w", "\n%{http_code}", "-X", "POST", "-d", json.dumps(body),
             "-H", "Authorization: Bearer acme-key",
             f"http://127.0.0.1:{worker.port}/v1/enrich"],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        answer, _, status = done.stdout.rpartition("\n")
        assert status == "200", answer
        served = subprocess.run(
            ["curl", "-sS", "-H", "Authorization: Bearer acme-key",
             f"http://127.0.0.1:{worker.port}/v1/models"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        generator = json.loads(served.stdout)["generator"]
        assert generator["version"] == version and generator["search"] == "beam"
        assert json.loads(served.stdout)["summary"]["sentences"] == 3
        wait_drained(bootstrap)
        enriched = kcat_values(bootstrap, s.topic_enriched)
        dead = kcat_values(bootstrap, s.topic_dlq)

    (api_record,) = json.loads(answer)["records"]
    assert api_record["summary"]["text"] and api_record["generated"]["model"]["version"] == version
    schema = json.loads(SCHEMA.read_text())
    by_id = {r["id"]: r for r in enriched}
    assert set(by_id) >= {d["id"] for d in docs}
    assert any("not JSON" in str(d["reason"]) or d["stage"] == "decode" for d in dead)
    for doc in docs:
        rec = by_id[doc["id"]]
        jsonschema.validate(rec, schema)
        summary, text = rec["summary"], rec["text"]
        assert isinstance(summary, dict) and isinstance(text, str)
        spans = [(p["start"], p["end"]) for p in summary["sentences"]]
        assert summary["text"] == " ".join(text[a:b] for a, b in spans)
        assert spans == sorted(spans)
        generated = rec["generated"]
        assert isinstance(generated, dict)
        assert generated["model"] == {"name": model_dir.name, "version": version}
        assert generated["summary"] and generated["headline"] and generated["search"] == "beam"
        assert rec["models"][model_dir.name] == version  # type: ignore[index]
    short = by_id["short-1"]["summary"]
    assert isinstance(short, dict) and short["passthrough"] and short["sentences_total"] == 2
    assert all(len(by_id[d["id"]]["summary"]["sentences"]) == 3 for d in docs[:10])  # type: ignore[index]

    rows = query_data_dir(
        data_dir,
        "SELECT doc_id, summary, summary_starts, summary_ends, generated_summary, headline, "
        "models FROM documents FINAL ORDER BY doc_id",
    )
    stored = {r[0]: r for r in rows}
    assert set(stored) >= {d["id"] for d in docs}
    for doc in docs:
        _, summary_text, starts, ends, written, headline, models = stored[doc["id"]]
        rec = by_id[doc["id"]]
        assert summary_text == rec["summary"]["text"]  # type: ignore[index]
        assert [[p["start"], p["end"]] for p in rec["summary"]["sentences"]] == [  # type: ignore[index]
            [a, b] for a, b in zip(starts, ends, strict=True)
        ]
        assert written == rec["generated"]["summary"]  # type: ignore[index]
        assert headline == rec["generated"]["headline"]  # type: ignore[index]
        assert models[model_dir.name] == version
