"""The generative stage: its own thread and micro-batches across encoder batches; a failing
document keeps its record with the reason; in the enrich role the encoder goes on while
generation is behind, and records wait for their summaries."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from stream_aimass.enrich.enricher import DocumentEnricher, Enriched, Pending
from stream_aimass.enrich.generation import GenerationStage
from stream_aimass.enrich.service import EnrichService
from stream_aimass.kafka.embedded import EmbeddedBroker
from stream_aimass.models.encoder import Encoder
from stream_aimass.records import DeadLetter
from stream_aimass.settings import Settings
from stream_aimass.summaries.extractive import ExtractiveSummarizer
from stream_aimass.summaries.generative import Generator, Written
from stream_aimass.testing import make_tiny_generator, produce_documents, read_topic
from stream_aimass.tools.corpus import generate_documents


class GatedGenerator(Generator):
    """The real tiny generator; it waits for ``gate`` before each batch and records batch
    sizes; a text with POISON in it fails its batch (an input the model cannot take)."""

    def __init__(self, model_dir: Path) -> None:
        super().__init__(model_dir, device="cpu", dtype="fp32", max_new_tokens=4,
                         headline_max_new_tokens=2)  # fmt: skip
        self.gate = threading.Event()
        self.batches: list[int] = []

    def generate(self, texts: list[str]) -> list[Written]:
        assert self.gate.wait(60)
        self.batches.append(len(texts))
        if any("POISON" in t for t in texts):
            raise RuntimeError("input too strange (injected)")
        return super().generate(texts)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_generator(tmp_path_factory.mktemp("gen"), kind="seq2seq")


@pytest.fixture()
def generator(model_dir: Path) -> GatedGenerator:
    return GatedGenerator(model_dir)


@pytest.fixture()
def stage(generator: GatedGenerator) -> Iterator[GenerationStage]:
    stage = GenerationStage(generator, batch_size=5)
    yield stage
    generator.gate.set()
    stage.close()


def test_batches_are_formed_from_everything_waiting(
    stage: GenerationStage, generator: GatedGenerator
) -> None:
    async def main() -> list[list[Written | BaseException]]:
        calls = [asyncio.create_task(stage.write([f"text {i} a", f"text {i} b"])) for i in range(4)]
        await asyncio.sleep(0.2)  # all queued while the first batch waits at the gate
        generator.gate.set()
        return await asyncio.gather(*calls)

    results = asyncio.run(main())
    assert all(isinstance(w, Written) and w.summary for r in results for w in r)
    assert sum(generator.batches) == 8 and max(generator.batches) <= 5
    assert max(generator.batches) > 2  # a batch took texts from more than one call


def test_a_failing_text_fails_alone_and_keeps_its_record(
    stage: GenerationStage, generator: GatedGenerator
) -> None:
    generator.gate.set()
    records = [orjson.dumps({"id": f"d{i}", "models": {"enc": "v1"}}) for i in range(4)]
    texts = ["fine one", "POISON here", "fine two", "fine three"]

    async def main() -> list[bytes]:
        written = await stage.write(texts)
        return [stage.with_generated(r, w) for r, w in zip(records, written, strict=True)]

    out = [orjson.loads(r) for r in asyncio.run(main())]
    version = generator.model_ref.version
    for i, rec in enumerate(out):
        assert rec["id"] == f"d{i}"
        assert rec["models"] == {"enc": "v1", generator.model_ref.name: version}
        assert rec["generated"]["model"] == {"name": generator.model_ref.name, "version": version}
    assert (
        "input too strange" in out[1]["generated"]["error"] and out[1]["generated"]["summary"] == ""
    )
    assert all(out[i]["generated"]["summary"] and "error" not in out[i]["generated"]
               for i in (0, 2, 3))  # fmt: skip


def test_complete_skips_dead_letters_and_catalogue_items(
    stage: GenerationStage, generator: GatedGenerator
) -> None:
    from aiokafka import TopicPartition

    from stream_aimass.records import Document, Source

    generator.gate.set()
    tp = TopicPartition("aimass.documents", 0)
    items = [Pending(Document(f"d{i}", "acme", 0, "text", Source(tp.topic, 0, i, 0)), [], tp,
                     b"", None) for i in range(3)]  # fmt: skip
    items[2].catalogue = True
    dead = DeadLetter("enrich", "model failed", b"raw", items[1].document.source, 0)
    results: list[Enriched | DeadLetter] = [
        Enriched(orjson.dumps({"id": "d0"}), None, "The text."), dead,
        Enriched(b"", b"vector", "An item."),
    ]  # fmt: skip
    out = asyncio.run(stage.complete(items, results))
    assert out[1] is dead and out[2] is results[2]
    assert isinstance(out[0], Enriched) and "generated" in orjson.loads(out[0].record)
    assert generator.batches == [1]


def test_the_encoder_goes_on_while_generation_is_behind(
    model_dir: Path, tiny_encoder: Encoder
) -> None:
    """All documents go through the encoder while the generator is held; none is published
    before its summary is written; then every record carries one."""
    s = Settings(recs_enabled=False, entities_enabled=False, batch_max_documents=8,
                 batch_when_idle=True, summary_model=str(model_dir), device="cpu",
                 dtype="fp32", summary_max_new_tokens=4, headline_max_new_tokens=2)  # fmt: skip
    n = 24
    with EmbeddedBroker() as broker:
        broker.create_topics([(s.topic_documents, 1), (s.topic_enriched, 1), (s.topic_dlq, 1)])
        produce_documents(broker.bootstrap, generate_documents(n, seed=3))
        enricher = DocumentEnricher(tiny_encoder, None, "tiny", summarizer=ExtractiveSummarizer())
        svc = EnrichService(s, broker.bootstrap, enricher)
        assert svc.generation is not None
        svc.generation.close()  # the settings' own; replaced by the held one
        held = GatedGenerator(model_dir)
        svc.generation = GenerationStage(held, s.summary_batch_size, svc.metrics)

        async def main() -> None:
            task = asyncio.create_task(svc.run())
            deadline = time.monotonic() + 60
            while _encoded(svc) < n:
                assert time.monotonic() < deadline and not task.done()
                await asyncio.sleep(0.02)
            assert svc.metrics.value("aimass_records_total", role="enrich",
                                     outcome="enriched") == 0  # fmt: skip
            held.gate.set()
            while svc.metrics.value("aimass_records_total", role="enrich",
                                    outcome="enriched") < n:  # fmt: skip
                assert time.monotonic() < deadline and not task.done()
                await asyncio.sleep(0.02)
            svc.stop()
            await task

        asyncio.run(main())
        records = [orjson.loads(m.value) for m in read_topic(broker.bootstrap, s.topic_enriched, n)]
    assert len({r["id"] for r in records}) == n
    for rec in records:
        assert rec["generated"]["summary"] and rec["generated"]["model"]["version"]
        assert rec["models"][held.model_ref.name] == held.model_ref.version
        assert rec["summary"]["text"]


def _encoded(svc: EnrichService) -> float:
    return svc.metrics.value("aimass_batch_documents_sum")
