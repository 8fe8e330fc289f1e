"""CPU per document of each Python-side stage, the encoder's forward pass made free.

``python -m stream_aimass.tools.bench.stages [--documents N] [--json]``: decode, tokenize (with
offsets), the model step without its forward pass (heads, entities, records, item vectors;
:class:`~.scenarios.StoredVectors` stands in for the pass) and the sink's row building, each
timed on the same generated documents in this process (``time.process_time``: every thread's
CPU, so the Rust tokenizer's own threads count). Each stage runs twice; the second figure is
reported (the first pays for warm-up).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import TopicPartition

from stream_aimass.decode import DocumentDecoder
from stream_aimass.enrich.enricher import DocumentEnricher, Enriched, Pending
from stream_aimass.records import Document, Source
from stream_aimass.settings import Settings
from stream_aimass.sink.buffers import message_digest
from stream_aimass.sink.rows import enriched_rows
from stream_aimass.tools.bench.scenarios import StoredVectors
from stream_aimass.tools.corpus import generate_documents

BATCH = 64


class Message:
    """What the sink reads of a Kafka message."""

    __slots__ = ("headers", "key", "offset", "timestamp", "value")

    def __init__(self, value: bytes, offset: int, timestamp: int = 1) -> None:
        self.value, self.offset, self.timestamp, self.key, self.headers = (
            value, offset, timestamp, b"k", ()
        )  # fmt: skip


class _Inputs:
    """A forward-free enricher and generated documents, raw and decoded."""

    def __init__(self, documents: int, seed: int) -> None:
        settings = Settings()
        self.enricher = DocumentEnricher.from_settings(settings)
        stand_in = StoredVectors(self.enricher.encoder.dim)
        self.enricher.encoder.encode_ids = stand_in  # type: ignore[method-assign]
        self.raws = [orjson.dumps(d) for d in generate_documents(documents, seed=seed)]
        self.decoder = DocumentDecoder(settings.max_document_bytes)
        self.tp = TopicPartition(settings.topic_documents, 0)

    def decode(self) -> list[Document]:
        out = []
        for i, raw in enumerate(self.raws):
            source = Source(self.tp.topic, 0, i, 1_767_225_600_000 + i)
            doc = self.decoder.decode(raw, source, b"k")
            assert isinstance(doc, Document)
            out.append(doc)
        return out


def enriched_records(documents: int, seed: int = 5) -> list[bytes]:
    """Enriched records of generated documents, as the enrich role writes them (entities on,
    the encoder's forward pass replaced by stored vectors)."""
    inputs = _Inputs(documents, seed)
    enricher, raws, tp = inputs.enricher, inputs.raws, inputs.tp
    docs = inputs.decode()
    tok = enricher.tokenize([d.text for d in docs])
    items = [
        Pending(d, tok.ids[i], tp, raws[i], b"k", tok.offsets[i], tok.word_ids[i])
        for i, d in enumerate(docs)
    ]
    out: list[bytes] = []
    for start in range(0, documents, BATCH):
        out.extend(e.record for e in enricher.run(items[start : start + BATCH], 1.0))
    return out


def _cpu_us(fn: Callable[[], Any], n: int) -> tuple[float, Any]:
    fn()  # warm-up
    start = time.process_time()
    result = fn()
    return 1e6 * (time.process_time() - start) / n, result


def measure(documents: int = 2048, seed: int = 5) -> dict[str, float]:
    inputs = _Inputs(documents, seed)
    enricher, raws, tp, decode = inputs.enricher, inputs.raws, inputs.tp, inputs.decode
    figures: dict[str, float] = {}
    figures["decode_us"], docs = _cpu_us(decode, documents)
    figures["tokenize_us"], tok = _cpu_us(
        lambda: enricher.tokenize([d.text for d in docs]), documents
    )
    items = [
        Pending(d, tok.ids[i], tp, raws[i], b"k", tok.offsets[i], tok.word_ids[i])
        for i, d in enumerate(docs)
    ]

    def model_step() -> list[Enriched]:
        out: list[Enriched] = []
        for start in range(0, documents, BATCH):
            out.extend(enricher.run(items[start : start + BATCH], 1.0, item_vectors=True))
        return out

    figures["model_step_forward_free_us"], enriched = _cpu_us(model_step, documents)
    messages = [Message(e.record, i) for i, e in enumerate(enriched)]

    def sink_rows() -> None:
        for msg in messages:
            message_digest(msg)
            enriched_rows(msg.value, "aimass.enriched", 0, msg.offset)

    figures["sink_rows_us"], _ = _cpu_us(sink_rows, documents)
    figures["total_us"] = sum(figures.values())
    return {k: round(v, 1) for k, v in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=2048)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = measure(args.documents)
    if args.json:
        print(json.dumps(figures))
        return
    for name, value in figures.items():
        print(f"{name:30s} {value:8.1f} us CPU/doc")


if __name__ == "__main__":
    main()
