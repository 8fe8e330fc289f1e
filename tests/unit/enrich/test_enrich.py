"""Enrich role faults: a failing model batch is split until only the failing document
fails; a failed produce is retried with backoff until acknowledged (or stopping)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import torch
from aiokafka import TopicPartition

from stream_aimass.enrich.enricher import DocumentEnricher, Enriched, Pending
from stream_aimass.enrich.service import EnrichService
from stream_aimass.kafka.clients import make_hot_producer
from stream_aimass.kafka.embedded import API_PRODUCE, ERR_TOPIC_AUTHORIZATION_FAILED, EmbeddedBroker
from stream_aimass.models.classify import ClassifierSet
from stream_aimass.models.encoder import Encoder, Tokenized
from stream_aimass.records import DeadLetter, Document, Source
from stream_aimass.settings import Settings
from stream_aimass.testing import produce_documents, read_topic
from stream_aimass.tools.corpus import generate_documents

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


# -- model faults on the real enricher --------------------------------------------------


class PoisonInjectingEnricher(DocumentEnricher):
    """The real enricher (tiny encoder), with a fault injected: any batch that holds a
    document containing POISON raises ``error`` before the model runs (like an OOM that
    only that input triggers). The splitting logic and the model are real."""

    def __init__(self, encoder: Encoder, error: type[Exception]) -> None:
        super().__init__(encoder, None, "tiny")
        self.error = error
        self.calls: list[int] = []
        self.failed = 0

    def run(
        self, items: list[Pending], queued_ms: float, item_vectors: bool = True
    ) -> list[Enriched]:
        self.calls.append(len(items))
        if any("POISON" in p.document.text for p in items):
            self.failed += 1
            raise self.error("out of memory while encoding this batch (injected)")
        return super().run(items, queued_ms, item_vectors)


def tokenized(enricher: DocumentEnricher, texts: list[str]) -> list[Pending]:
    ids = enricher.tokenize(texts).ids
    return [
        Pending(
            Document(f"d{i}", "acme", 1, text, Source(TP.topic, 0, i, 1)),
            ids[i],
            TP,
            text.encode(),
            None,
        )
        for i, text in enumerate(texts)
    ]


@pytest.mark.parametrize(
    "error",
    [torch.OutOfMemoryError, RuntimeError],  # torch.cuda.OutOfMemoryError is torch's OOM
    ids=["oom", "runtime"],
)
def test_a_model_error_splits_the_batch_and_dead_letters_only_the_poison(
    tiny_encoder: Encoder, error: type[Exception]
) -> None:
    enricher = PoisonInjectingEnricher(tiny_encoder, error)
    svc = EnrichService(Settings(), "unused:9092", enricher)
    n, poison = 32, {7, 20}
    texts = [f"POISON {i}" if i in poison else f"an ordinary document number {i}" for i in range(n)]
    results = svc._enrich_splitting(tokenized(enricher, texts), 0.0)

    assert len(results) == n
    dead = {i: r for i, r in enumerate(results) if isinstance(r, DeadLetter)}
    assert set(dead) == poison
    for i, letter in dead.items():
        assert letter.stage == "enrich" and letter.source.offset == i
        assert error.__name__ in letter.reason and letter.error_type == error.__name__
        assert letter.raw == texts[i].encode()
    # Every other document really went through the encoder, in input order.
    for i, result in enumerate(results):
        if i not in poison:
            assert isinstance(result, Enriched)
            record = orjson.loads(result.record)
            assert record["id"] == f"d{i}" and record["embedding"]["dim"] == tiny_encoder.dim
    # Binary splitting: each poison costs about 2*log2(n) calls, far fewer than n singles.
    assert len(enricher.calls) <= 1 + len(poison) * 2 * math.ceil(math.log2(n))
    assert len(enricher.calls) < n
    failures = svc.metrics.value("aimass_model_errors_total", error_type=error.__name__)
    assert failures == enricher.failed >= len(poison) * math.log2(n)
    print(
        f"RELIABILITY model-split-unit[{error.__name__}]: docs={n} poison={len(poison)} "
        f"model_calls={len(enricher.calls)} failed_calls={failures:.0f} lost=0"
    )


def test_cuda_oom_frees_cached_memory_before_retrying_halves(
    tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    emptied: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    enricher = PoisonInjectingEnricher(tiny_encoder, torch.cuda.OutOfMemoryError)
    svc = EnrichService(Settings(), "unused:9092", enricher)
    results = svc._enrich_splitting(tokenized(enricher, ["POISON", "fine", "also fine"]), 0.0)
    assert [type(r).__name__ for r in results] == ["DeadLetter", "Enriched", "Enriched"]
    assert len(emptied) == len(enricher.calls) - 1  # once per failed call; the last succeeded


def test_other_errors_do_not_touch_the_cuda_cache(
    tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    emptied: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    enricher = PoisonInjectingEnricher(tiny_encoder, ValueError)
    svc = EnrichService(Settings(), "unused:9092", enricher)
    svc._enrich_splitting(tokenized(enricher, ["POISON", "fine"]), 0.0)
    assert emptied == []


# -- produce retries --------------------------------------------------------------------


class RecordingSleep:
    """Records the waits, and waits them (they are short here: a real client's metadata
    refresh happens in real time); optionally calls ``then`` after the n-th."""

    def __init__(self, after: int = 0, then: Any = None) -> None:
        self.delays: list[float] = []
        self.after, self.then = after, then

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.then is not None and len(self.delays) == self.after:
            self.then()
        await asyncio.sleep(seconds)


def _refusals(delays: list[float], refused: int) -> None:
    """One wait per refusal, growing up to the 0.4 s ceiling (jitter: [d/2, d]), with
    either client: librdkafka keeps a topic's error until its next metadata refresh and
    refuses records locally meanwhile, so our producer asks for the metadata at once
    instead of counting those local refusals as more waits."""
    assert len(delays) == refused
    nominal = [min(0.4, 0.1 * 2**i) for i in range(len(delays))]
    for delay, want in zip(delays, nominal, strict=True):
        assert want / 2 <= delay <= want


@pytest.fixture()
def broker() -> Iterator[EmbeddedBroker]:
    s = Settings()
    with EmbeddedBroker() as b:
        b.create_topics([(s.topic_enriched, 1), (s.topic_dlq, 1), (s.topic_item_vectors, 1)])
        yield b


@pytest.fixture(params=["librdkafka", "aiokafka"])
def client(request: pytest.FixtureRequest) -> str:
    """Both producers the enrich role can run (``producer_client``) keep every promise."""
    return str(request.param)


def _producing_service(
    broker: EmbeddedBroker, sleep: RecordingSleep, client: str, **settings: Any
) -> EnrichService:
    s = Settings(produce_retry_max_s=0.4, producer_client=client, **settings)
    return EnrichService(s, broker.bootstrap, PoisonSensitiveEnricher(), sleep=sleep)


async def _publish(svc: EnrichService, items: list[Pending], results: list[Any]) -> None:
    svc.producer = make_hot_producer(svc.settings, svc.bootstrap)
    await svc.producer.start()
    try:
        for item in items:
            svc.tracker.add(item.tp, item.document.source.offset)
        await svc._publish_slots.acquire()  # as the model loop does
        await svc._publish(items, results)
    finally:
        await svc.producer.stop()


def test_a_refused_produce_is_retried_with_backoff_until_acknowledged(
    broker: EmbeddedBroker, client: str
) -> None:
    sleep = RecordingSleep()
    svc = _producing_service(broker, sleep, client)
    items = [pending(0, "one")]
    results = [Enriched(b'{"id": "d0"}')]
    broker.fail_requests(API_PRODUCE, [ERR_TOPIC_AUTHORIZATION_FAILED] * 4)
    asyncio.run(_publish(svc, items, results))

    _refusals(sleep.delays, 4)
    retries = svc.metrics.value("aimass_produce_retries_total", topic="aimass.enriched")
    assert retries == len(sleep.delays)
    # Acknowledged in the end: the offset is done and committable, the record is there.
    assert svc.tracker.take_committable() == {TP: 1}
    assert svc.metrics.value("aimass_records_total", role="enrich", outcome="enriched") == 1
    assert [m.value for m in read_topic(broker.bootstrap, "aimass.enriched", 1)] == [
        b'{"id": "d0"}'
    ]


def test_an_offset_is_done_only_when_all_its_records_are_acknowledged(
    broker: EmbeddedBroker, client: str
) -> None:
    """A batch with enriched records, item vectors and a model dead letter, all refused
    a few times: every record arrives, and only then are the offsets committable."""
    sleep = RecordingSleep()
    svc = _producing_service(broker, sleep, client)
    n = 6
    items = [pending(i, f"text {i}") for i in range(n)]
    dead = DeadLetter("enrich", "RuntimeError: boom", b"text 3", items[3].document.source, 1)
    results: list[Any] = [
        dead if i == 3 else Enriched(orjson.dumps({"id": f"d{i}"}), f"v{i}".encode())
        for i in range(n)
    ]
    broker.fail_requests(API_PRODUCE, [ERR_TOPIC_AUTHORIZATION_FAILED] * 3)
    asyncio.run(_publish(svc, items, results))

    assert 1 <= len(sleep.delays) <= 3
    assert svc.tracker.take_committable() == {TP: n}
    assert svc.tracker.pending() == 0
    enriched = {m.value for m in read_topic(broker.bootstrap, "aimass.enriched", n - 1)}
    assert enriched == {orjson.dumps({"id": f"d{i}"}) for i in range(n) if i != 3}
    vectors = {m.value for m in read_topic(broker.bootstrap, "aimass.item-vectors", n - 1)}
    assert vectors == {f"v{i}".encode() for i in range(n) if i != 3}
    dlq = read_topic(broker.bootstrap, "aimass.dlq", 1)
    assert {orjson.loads(m.value)["reason"] for m in dlq} == {"RuntimeError: boom"}
    assert svc.metrics.value("aimass_dead_letters_total", stage="enrich") == 1
    retried = sum(
        svc.metrics.value("aimass_produce_retries_total", topic=t)
        for t in ("aimass.enriched", "aimass.item-vectors", "aimass.dlq")
    )
    assert retried >= 2 * n - 1  # each refusal hit every record still unacknowledged


def test_stopping_gives_up_and_leaves_the_offsets_uncommitted(
    broker: EmbeddedBroker, client: str
) -> None:
    svc: EnrichService
    sleep = RecordingSleep(after=2, then=lambda: svc.stop())
    svc = _producing_service(broker, sleep, client)
    items = [pending(i, f"text {i}") for i in range(3)]
    results = [Enriched(orjson.dumps({"id": f"d{i}"})) for i in range(3)]
    broker.fail_requests(API_PRODUCE, [ERR_TOPIC_AUTHORIZATION_FAILED] * 100)
    try:
        asyncio.run(_publish(svc, items, results))
    finally:
        broker.clear_request_errors(API_PRODUCE)
    assert len(sleep.delays) == 2  # no wait once stopping: give up on the next failure
    assert svc.tracker.take_committable() == {}
    assert svc.tracker.pending() == 3  # re-delivered to the next owner
    assert svc.metrics.value("aimass_records_total", role="enrich", outcome="enriched") == 0


def test_a_dead_letter_send_is_retried_too(broker: EmbeddedBroker, client: str) -> None:
    sleep = RecordingSleep()
    svc = _producing_service(broker, sleep, client)
    item = pending(0, "not json")
    dead = DeadLetter("decode", "not JSON", b"not json", item.document.source, 1)

    async def run() -> None:
        svc.producer = make_hot_producer(svc.settings, svc.bootstrap)
        await svc.producer.start()
        try:
            svc.tracker.add(TP, 0)
            broker.fail_requests(API_PRODUCE, [ERR_TOPIC_AUTHORIZATION_FAILED] * 2)
            svc._publish_dead(dead, TP, 0)
            await asyncio.gather(*svc._publishing)
        finally:
            await svc.producer.stop()

    asyncio.run(run())
    _refusals(sleep.delays, 2)
    assert svc._failure is None
    assert svc.tracker.take_committable() == {TP: 1}
    retries = svc.metrics.value("aimass_produce_retries_total", topic="aimass.dlq")
    assert retries == len(sleep.delays)
    assert svc.metrics.value("aimass_dead_letters_total", stage="decode") == 1
    assert len(read_topic(broker.bootstrap, "aimass.dlq", 1)) == 1


# -- fetching ahead of the model ---------------------------------------------------------


class SlowEnricher(PoisonSensitiveEnricher):
    """A model that takes 20 ms per batch, with a fake tokenizer."""

    entities = None

    def tokenize(self, texts: list[str]) -> Tokenized:
        return Tokenized([[1] * (2 + len(t) % 7) for t in texts], [], [])

    def run(
        self, items: list[Pending], queued_ms: float, item_vectors: bool = True
    ) -> list[Enriched]:
        time.sleep(0.02)
        return super().run(items, queued_ms, item_vectors)


def test_the_enrich_role_fetches_at_most_fetch_max_records_ahead_of_the_model(
    broker: EmbeddedBroker,
) -> None:
    """Batches are formed when the model is free, from what was fetched ahead of it: that
    lookahead is bounded, so a SIGTERM has little to drain and memory stays small."""
    s = Settings(fetch_max_records=16, recs_enabled=False)
    broker.create_topics([(s.topic_documents, 2)])
    n = 120
    produce_documents(broker.bootstrap, generate_documents(n, seed=5))
    enricher = SlowEnricher()
    svc = EnrichService(s, broker.bootstrap, enricher)
    peak = 0

    async def main() -> None:
        nonlocal peak
        task = asyncio.create_task(svc.run())
        deadline = time.monotonic() + 90
        while svc.metrics.value("aimass_records_total", role="enrich", outcome="enriched") < n:
            assert time.monotonic() < deadline and not task.done()
            peak = max(peak, len(svc.batcher))
            await asyncio.sleep(0.002)
        svc.stop()
        await task

    asyncio.run(main())
    assert 0 < peak <= 16
    assert sum(enricher.calls) == n and len(enricher.calls) > 1


def test_a_paused_enrich_role_fetches_nothing_until_resumed(broker: EmbeddedBroker) -> None:
    """bench builds its backlog in front of a paused worker: pausing must really stop it."""
    s = Settings(recs_enabled=False)
    broker.create_topics([(s.topic_documents, 2)])
    enricher = SlowEnricher()
    svc = EnrichService(s, broker.bootstrap, enricher)
    n = 40

    def enriched() -> float:
        return svc.metrics.value("aimass_records_total", role="enrich", outcome="enriched")

    async def until(done: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)

    async def main() -> None:
        task = asyncio.create_task(svc.run())
        await until(lambda: svc.ready and svc.consumer.assignment(), 60)
        svc.pause()
        await asyncio.to_thread(produce_documents, broker.bootstrap, generate_documents(n, seed=6))
        await asyncio.sleep(1.5)
        assert enriched() == 0 and len(svc.batcher) == 0  # waiting in Kafka
        svc.resume()
        await until(lambda: enriched() == n, 60)
        svc.stop()
        await task

    asyncio.run(main())
    assert sum(enricher.calls) == n


def test_documents_deleted_before_the_enrich_role_read_them_are_reported(
    broker: EmbeddedBroker,
) -> None:
    """An enrich group that falls ~5 MiB behind on the embedded broker loses what it
    deletes: the role logs it, counts it in aimass_records_lost_total and publishes a dead
    letter of stage retention."""
    from stream_aimass.testing import produce_with_librdkafka

    s = Settings(recs_enabled=False)
    broker.create_topics([(s.topic_documents, 1)])
    docs = generate_documents(44, seed=8)
    for doc in docs[3:]:
        doc["text"] = "news " * 40_000  # 200 kB each, under max_document_bytes

    def produce(batch: list[dict[str, Any]]) -> None:
        messages = [(None, orjson.dumps(d)) for d in batch]
        produce_with_librdkafka(broker.bootstrap, s.topic_documents, messages,
                                **{"linger.ms": 0, "batch.num.messages": 1})  # fmt: skip

    def low_watermark() -> int:
        from confluent_kafka import Consumer
        from confluent_kafka import TopicPartition as CTP

        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "low"})
        try:
            return int(c.get_watermark_offsets(CTP(s.topic_documents, 0), timeout=10)[0])
        finally:
            c.close()

    async def run(svc: EnrichService, n: int) -> None:
        task = asyncio.create_task(svc.run())
        deadline = time.monotonic() + 90
        while svc.metrics.value("aimass_records_total", role="enrich", outcome="enriched") < n:
            assert time.monotonic() < deadline and not task.done()
            await asyncio.sleep(0.02)
        svc.stop()
        await task

    produce(docs[:3])
    first = EnrichService(s, broker.bootstrap, SlowEnricher())
    asyncio.run(run(first, 3))
    produce(docs[3:])
    low = low_watermark()
    assert low > 3, "the broker kept everything: the test needs more data"
    second = EnrichService(s, broker.bootstrap, SlowEnricher())
    asyncio.run(run(second, 44 - low))
    assert (
        second.metrics.value("aimass_records_lost_total", role="enrich", topic=s.topic_documents)
        == low - 3
    )
    # On record in the DLQ too (the sink stores it in dead_letters), at the first lost offset.
    (dead,) = [orjson.loads(m.value) for m in read_topic(broker.bootstrap, s.topic_dlq, 1)]
    assert (dead["stage"], dead["error_type"]) == ("retention", "RecordsLost")
    assert dead["source"]["topic"] == s.topic_documents and dead["source"]["offset"] == 3
    assert f"offsets 3 to {low - 1}" in dead["reason"]


class _TokenizingEnricher(PoisonSensitiveEnricher):
    """The real tokenizer (offsets and word ids, as with entities on) of an encoder."""

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.shares: list[int] = []

    def tokenize(self, texts: list[str]) -> Tokenized:
        self.shares.append(len(texts))
        return self.encoder.tokenize_with_offsets(texts)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_tokenize_threads_share_a_fetch_and_give_what_one_call_gives(
    tiny_encoder: Encoder, threads: int
) -> None:
    """tokenize_threads contiguous shares, tokenized at once on the pool, joined in order:
    the same ids, offsets and word ids as one call over the whole fetch."""
    texts = [d["text"] for d in generate_documents(100, seed=9)] + ["", "é中 ok", "x " * 300]
    enricher = _TokenizingEnricher(tiny_encoder)
    svc = EnrichService(Settings(tokenize_threads=threads), "unused:9092", enricher)
    got = asyncio.run(svc._tokenize(texts))
    assert enricher.shares == ([103] if threads == 1 else [-(-103 // threads)] * (threads - 1)
                               + [103 - -(-103 // threads) * (threads - 1)])  # fmt: skip
    want = tiny_encoder.tokenize_with_offsets(texts)
    assert got.ids == want.ids and got.offsets == want.offsets and got.word_ids == want.word_ids
    assert svc._cpu_pool._max_workers == threads
    few = asyncio.run(svc._tokenize(texts[:20]))  # too few to share: one call
    assert enricher.shares[-1] == 20 and few.ids == want.ids[:20]
