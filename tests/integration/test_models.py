"""Classifiers in the running pipeline: hot swap mid-stream, versions on every row, usage."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_aimass.clickhouse.queries import run_named_query
from stream_aimass.enrich.enricher import DocumentEnricher
from stream_aimass.enrich.reload import current_specs, write_classifier_file
from stream_aimass.pipeline import Pipeline, Stack, open_clickhouse
from stream_aimass.settings import Settings
from stream_aimass.testing import produce_documents, read_topic
from stream_aimass.tools.corpus import generate_documents
from stream_aimass.training.classifier import TrainConfig, train_classifier
from stream_aimass.training.data import LabelledTexts

pytestmark = pytest.mark.integration


def _topic_data(n: int, seed: int) -> LabelledTexts:
    docs = generate_documents(n, seed=seed)
    return LabelledTexts(
        [str(d["text"]) for d in docs],
        [(str(d["meta"]["category_hint"]),) for d in docs],  # type: ignore[index]
        False,
    )


@pytest.fixture()
def two_versions(settings: Settings, enricher: Any) -> tuple[Path, Path]:
    """Two versions of a real head on MiniLM, trained on the demo corpus' categories."""
    out = settings.resolved_models_dir / "topic-head"
    paths = []
    for seed in (1, 2):
        config = TrainConfig(mode="head", epochs=15, seed=seed)
        info = train_classifier(
            _topic_data(140, seed=100 + seed), None, out, name="topic-head",
            encoder_dir=enricher.encoder.model_dir, encoder_name="all-MiniLM-L6-v2",
            config=config,
        )  # fmt: skip
        paths.append(info.path)
    assert paths[0] != paths[1]
    return paths[0], paths[1]


async def _wait(predicate: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def test_hot_swap_mid_stream_loses_nothing_and_rows_carry_their_versions(
    settings: Settings, enricher: Any, two_versions: tuple[Path, Path]
) -> None:
    v1, v2 = two_versions
    settings = settings.model_copy(update={"model_reload_interval_s": 0.1})
    write_classifier_file(settings.resolved_classifiers_file, {"intent": str(v1)})
    # A fresh enricher on the session's encoder: the swap must not leak into other tests.
    worker_enricher = DocumentEnricher(
        enricher.encoder, enricher.topic, settings.model_name,
        models_dir=settings.resolved_models_dir,
    )  # fmt: skip
    worker_enricher.swap(worker_enricher.load_classifiers(current_specs(settings)))
    first = generate_documents(300, seed=31, tenants=("acme", "globex"))
    second = generate_documents(200, seed=32, tenants=("acme", "globex"))
    for doc in second:
        doc["id"] = f"after-{doc['id']}"
    total = len(first) + len(second)

    stack = Stack.start(settings)
    try:
        client = open_clickhouse(settings)
        pipeline = Pipeline(
            settings, stack.bootstrap, "all", enricher=worker_enricher, clickhouse=client
        )
        metrics = pipeline.metrics

        async def scenario() -> None:
            await pipeline.start()
            assert pipeline.sink is not None
            sink = pipeline.sink
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, produce_documents, stack.bootstrap, first, [])
            # Swap while the first documents are still streaming through.
            await _wait(
                lambda: (
                    metrics.value("aimass_records_total", role="enrich", outcome="enriched") >= 50
                ),
                "first documents",
            )
            write_classifier_file(settings.resolved_classifiers_file, {"intent": str(v2)})
            await _wait(
                lambda: metrics.value("aimass_model_reloads_total", outcome="swapped") >= 1,
                "the swap",
            )
            await loop.run_in_executor(None, produce_documents, stack.bootstrap, second, [])
            await _wait(lambda: sink.stored("documents") >= total, "every document stored")
            await pipeline.stop_and_wait()

        asyncio.run(scenario())
        enriched = read_topic(stack.bootstrap, settings.topic_enriched, total)
    finally:
        stack.close()

    # Nothing lost, nothing twice: one documents row and one classification per document.
    assert client.query("SELECT count() FROM documents FINAL").result_rows[0][0] == total
    rows = client.query(
        "SELECT doc_id, model_version, predicted FROM classifications FINAL "
        "WHERE classifier = 'intent'"
    ).result_rows
    assert len(rows) == total
    versions = {doc_id: version for doc_id, version, _ in rows}
    assert set(versions.values()) <= {v1.name, v2.name}
    # Everything produced after the swap completed was served by the new version.
    assert {versions[d["id"]] for d in second} == {v2.name}
    assert v1.name in {versions[d["id"]] for d in first}  # the old one did serve the start
    assert all(len(predicted) == 1 for _, _, predicted in rows)
    # Each batch was served by one version; per partition the switch happens once.
    batches: dict[tuple[int, int], set[str]] = defaultdict(set)
    per_partition: dict[int, list[str]] = defaultdict(list)
    for msg in sorted(enriched, key=lambda m: (m.partition, m.offset)):
        record = orjson.loads(msg.value)
        (intent,) = record["classifications"]
        batches[(msg.partition, record["enriched_at_ms"])].add(intent["model"]["version"])
        per_partition[msg.partition].append(intent["model"]["version"])
        assert record["models"]["topic-head"] == intent["model"]["version"]
    assert all(len(v) == 1 for v in batches.values())
    for sequence in per_partition.values():
        switches = sum(1 for a, b in itertools.pairwise(sequence) if a != b)
        assert switches <= 1 and (switches == 0 or sequence[-1] == v2.name)

    # The model-versions query reports both versions of the classifier, and the encoder.
    by_role: dict[str, dict[str, int]] = defaultdict(dict)
    for row in run_named_query(client, "model-versions").as_dicts():
        by_role[row["role"]][row["model_version"]] = row["documents"]
    assert set(by_role["classifier:intent"]) == {v1.name, v2.name}
    assert sum(by_role["classifier:intent"].values()) == total
    assert sum(by_role["encoder"].values()) == total

    # Usage metering adds up to what was processed, per tenant.
    expected = client.query(
        "SELECT tenant, count(), sum(tokens), sum(compute_ms) FROM documents FINAL "
        "GROUP BY tenant ORDER BY tenant"
    ).result_rows
    usage = client.query(
        "SELECT tenant, uniqExactMerge(documents), sum(tokens), sum(compute_ms) "
        "FROM usage_hourly GROUP BY tenant ORDER BY tenant"
    ).result_rows
    assert [r[:3] for r in usage] == [r[:3] for r in expected]
    for got, want in zip(usage, expected, strict=True):
        assert got[3] == pytest.approx(want[3], rel=1e-3)
        assert got[3] > 0
