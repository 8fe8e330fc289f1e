"""Model faults: a failing batch is split until only the failing document fails."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from stream_aimass.enrich import DocumentEnricher, Enriched, EnrichService, Pending
from stream_aimass.models.classify import ClassifierSet
from stream_aimass.records import DeadLetter, Document, Source
from stream_aimass.settings import Settings

TP = TopicPartition("aimass.documents", 0)


class PoisonSensitiveEnricher(DocumentEnricher):
    """Fails every batch that holds a document containing POISON (like an OOM on one input)."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.classifiers = ClassifierSet(())
        self.metrics = None

    def run(
        self, items: list[Pending], queued_ms: float, item_vectors: bool = True
    ) -> list[Enriched]:
        self.calls.append(len(items))
        if any("POISON" in p.document.text for p in items):
            raise RuntimeError("CUDA out of memory (simulated)")
        return [Enriched(orjson.dumps({"id": p.document.id}), b"vector") for p in items]


def pending(i: int, text: str) -> Pending:
    doc = Document(f"d{i}", "acme", 1, text, Source(TP.topic, 0, i, 1))
    return Pending(doc, [1, 2, 3], TP, text.encode(), None)


@pytest.fixture()
def service() -> tuple[EnrichService, PoisonSensitiveEnricher]:
    enricher = PoisonSensitiveEnricher()
    return EnrichService(Settings(), "unused:9092", enricher), enricher


def test_only_the_failing_document_becomes_a_dead_letter(service: Any) -> None:
    svc, enricher = service
    items = [pending(i, "POISON" if i == 5 else f"text {i}") for i in range(8)]
    results = svc._enrich_splitting(items, 0.0)
    assert len(results) == 8
    dead = [r for r in results if isinstance(r, DeadLetter)]
    assert len(dead) == 1
    assert dead[0].stage == "enrich" and "out of memory" in dead[0].reason
    assert dead[0].source.offset == 5 and dead[0].raw == b"POISON"
    # Every good document was enriched, in input order.
    good = [orjson.loads(r.record)["id"] for r in results if isinstance(r, Enriched)]
    assert good == [f"d{i}" for i in range(8) if i != 5]
    # Binary splitting: log2(8) + 1 levels touched the poison, not 8 single calls.
    assert len(enricher.calls) <= 2 * 4


def test_a_healthy_batch_is_one_call(service: Any) -> None:
    svc, enricher = service
    results = svc._enrich_splitting([pending(i, "fine") for i in range(4)], 0.0)
    assert all(isinstance(r, Enriched) and r.item_vector == b"vector" for r in results)
    assert enricher.calls == [4]
