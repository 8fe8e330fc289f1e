"""Model-thread scenarios of the benchmark: the model ceiling, classifier heads, entities,
and a stand-in for a free forward pass.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import TopicPartition

from stream_aimass.batching import TokenBudgetBatcher
from stream_aimass.enrich.enricher import DocumentEnricher
from stream_aimass.models.classify import HeadInput
from stream_aimass.models.encoder import EncodedBatch, Tokenized
from stream_aimass.records import Source
from stream_aimass.settings import Settings

HEADS_DOCS = 512
# The model thread's stages in a record's timings_ms.
MODEL_STAGES = ("forward", "heads", "entities", "pii", "summary")


HEAD_LABELS = 77  # the size of Banking77's intent set: a realistic head


class StoredVectors:
    """Stands in for the encoder's forward pass in the forward-free phase only.

    Returns unit vectors and token states, sliced from a fixed random pool, in the shapes
    the real pass returns. Everything after the forward pass then does its real work on
    them: the heads, the entity stage, records, Kafka, ClickHouse. What the pipeline
    reaches then is the ceiling of one worker process's Python side: what a device that
    made the forward pass free would meet.
    """

    def __init__(self, dim: int, rows: int = 4096, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)
        pool = self._rng.standard_normal((rows, dim)).astype(np.float32)
        self.pool = pool / np.linalg.norm(pool, axis=1, keepdims=True)

    def __call__(self, ids: list[list[int]], *, token_states: bool = False) -> EncodedBatch:
        need = max([len(ids), *map(len, ids)])
        if need > len(self.pool):
            self.pool = np.resize(self.pool, (need, self.pool.shape[1]))
        start = int(self._rng.integers(0, len(self.pool) - need + 1))
        embeddings = self.pool[start : start + len(ids)].copy()
        states = [self.pool[start : start + len(seq)] for seq in ids] if token_states else None
        return EncodedBatch(embeddings, [len(seq) for seq in ids], states)


def model_ceiling(enricher: DocumentEnricher, texts: list[str], settings: Settings) -> float:
    """Docs/s of tokenize + forward + heads + entities with the pipeline's batching policy:
    everything the model thread computes, without Kafka, records or ClickHouse."""
    encoder = enricher.encoder
    entities = enricher.entities
    started = time.perf_counter()
    tokenized = enricher.tokenize(texts)
    batcher: TokenBudgetBatcher[int] = TokenBudgetBatcher(
        settings.batch_max_tokens, settings.batch_max_documents, 0.0
    )
    for row, seq in enumerate(tokenized.ids):
        batcher.add(row, len(seq))
    for batch in batcher.flush():
        rows = batch.items
        batch_ids = [tokenized.ids[r] for r in rows]
        batch_texts = [texts[r] for r in rows]
        encoded = encoder.encode_ids(batch_ids, token_states=entities is not None)
        heads = HeadInput(encoded.embeddings, batch_ids, batch_texts)
        if enricher.topic is not None:
            enricher.topic.scores(heads)
        enricher.classifiers.classify(heads)
        if entities is not None:
            sub = Tokenized(
                batch_ids,
                [tokenized.offsets[r] for r in rows],
                [tokenized.word_ids[r] for r in rows],
            )
            entities.extract(batch_texts, sub, encoded)
    return len(texts) / (time.perf_counter() - started)


def heads_scenario(
    enricher: DocumentEnricher,
    texts: list[str],
    counts: list[int],
    settings: Settings,
    rounds: int = 3,
) -> tuple[dict[str, float], dict[str, float]]:
    """The model thread (forward + heads + records) with 0, 1, 3... trained heads.

    Returns docs/s per head count, and the share of model time spent in the heads (from
    the ``forward``/``heads`` timings the records carry: exact even on a noisy machine,
    where docs/s differences of a few percent are noise). The heads are linear heads with
    Banking77's 77 labels and random weights: a head's cost does not depend on what it
    learned. Configurations rotate order each round and the best round is kept.
    """
    from stream_aimass.enrich.enricher import Pending
    from stream_aimass.models.classify import ClassifierSet, TrainedClassifier
    from stream_aimass.records import Document
    from stream_aimass.testing import make_head_model

    encoder = enricher.encoder
    labels = [f"intent_{i:02d}" for i in range(HEAD_LABELS)]
    ids = encoder.tokenize(texts)
    batcher: TokenBudgetBatcher[Pending] = TokenBudgetBatcher(
        settings.batch_max_tokens, settings.batch_max_documents, 0.0
    )
    tp = TopicPartition("aimass.documents", 0)
    for i, (text, seq) in enumerate(zip(texts, ids, strict=True)):
        doc = Document(f"h{i}", "bench", 0, text, Source(tp.topic, 0, i, 0))
        batcher.add(Pending(doc, seq, tp, b"", None), len(seq))
    batches = [b.items for b in batcher.flush()]
    best: dict[int, float] = {}
    forward_ms: dict[int, float] = {}
    heads_ms: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="aimass-heads-") as tmp:
        heads = [
            TrainedClassifier(
                f"head{k}",
                make_head_model(Path(tmp) / f"head{k}", encoder, labels, seed=k, name=f"head{k}"),
                encoder,
            )
            for k in range(max(counts, default=0))
        ]
        for round_ in range(rounds):
            shift = round_ % max(1, len(counts))
            for count in counts[shift:] + counts[:shift]:
                variant = DocumentEnricher(
                    encoder, None, enricher.model.name, ClassifierSet(tuple(heads[:count]))
                )
                started = time.perf_counter()
                for items in batches:
                    timings = orjson.loads(variant.enrich(items, 0.0)[0])["timings_ms"]
                    forward_ms[count] = forward_ms.get(count, 0.0) + timings["forward"]
                    heads_ms[count] = heads_ms.get(count, 0.0) + timings["heads"]
                rate = len(texts) / (time.perf_counter() - started)
                best[count] = max(best.get(count, 0.0), rate)
    rates = {str(k): round(v, 1) for k, v in sorted(best.items())}
    shares = {str(k): round(heads_ms[k] / (forward_ms[k] + heads_ms[k]), 5) for k in sorted(best)}
    return rates, shares


def entities_scenario(
    enricher: DocumentEnricher, texts: list[str], settings: Settings, rounds: int = 3
) -> tuple[dict[str, float], float]:
    """The model thread with entities off and on (mention detection + linking).

    Returns docs/s for each, and the share of the "on" model time spent in the entity stage
    (from the records' timings: exact where docs/s differences are noise).
    """
    from stream_aimass.enrich.enricher import Pending
    from stream_aimass.records import Document

    if enricher.entities is None:
        return {}, 0.0
    tokenized = enricher.encoder.tokenize_with_offsets(texts)
    batcher: TokenBudgetBatcher[Pending] = TokenBudgetBatcher(
        settings.batch_max_tokens, settings.batch_max_documents, 0.0
    )
    tp = TopicPartition("aimass.documents", 0)
    for i, text in enumerate(texts):
        doc = Document(f"e{i}", "bench", 0, text, Source(tp.topic, 0, i, 0))
        item = Pending(
            doc, tokenized.ids[i], tp, b"", None, tokenized.offsets[i], tokenized.word_ids[i]
        )
        batcher.add(item, len(item.ids))
    batches = [b.items for b in batcher.flush()]
    variants = {
        "off": DocumentEnricher(enricher.encoder, enricher.topic, enricher.model.name),
        "on": DocumentEnricher(
            enricher.encoder, enricher.topic, enricher.model.name, entities=enricher.entities
        ),
    }
    return _alternate(variants, batches, len(texts), rounds, "on", "entities")


def _alternate(
    variants: dict[str, DocumentEnricher],
    batches: list[list[Any]],
    n_texts: int,
    rounds: int,
    measured: str,
    stage: str,
) -> tuple[dict[str, float], float]:
    """Each variant over the same batches for ``rounds`` rounds, interleaved batch by batch
    (the order alternating), so a drift in the machine's speed touches every variant alike:
    the docs/s of each over all rounds, and the share of ``measured``'s model time (forward,
    heads, entities, pii and summary, from the records' timings) that ``stage`` took."""
    spent = dict.fromkeys(variants, 0.0)
    model_ms = stage_ms = 0.0
    names = list(variants)
    for round_ in range(rounds):
        for i, items in enumerate(batches):
            order = names if (round_ + i) % 2 == 0 else names[::-1]
            for name in order:
                started = time.perf_counter()
                timings = orjson.loads(variants[name].enrich(items, 0.0)[0])["timings_ms"]
                spent[name] += time.perf_counter() - started
                if name == measured:
                    stage_ms += timings[stage]
                    model_ms += sum(timings.get(k, 0.0) for k in MODEL_STAGES)
    rates = {k: round(n_texts * rounds / max(v, 1e-9), 1) for k, v in spent.items()}
    return rates, round(stage_ms / max(model_ms, 1e-9), 5)


def with_personal_data(texts: list[str]) -> list[str]:
    """``texts``, every second one with a line of the labelled PII set appended: the PII
    stage has values to find and rewrite, as in customer-service traffic."""
    from stream_aimass.evaluation.pii import read_pii_set, shipped_set

    lines = [e.text for e in read_pii_set(shipped_set())]
    return [f"{t} {lines[i % len(lines)]}" if i % 2 else t for i, t in enumerate(texts)]


def _batches(enricher: DocumentEnricher, texts: list[str], settings: Settings) -> list[Any]:
    """``texts`` tokenized and cut into the pipeline's batches (with their offsets)."""
    from stream_aimass.enrich.enricher import Pending, pending_texts

    batcher: TokenBudgetBatcher[Pending] = TokenBudgetBatcher(
        settings.batch_max_tokens, settings.batch_max_documents, 0.0
    )
    for item in pending_texts(enricher, texts, tenant="bench"):
        batcher.add(item, len(item.ids))
    return [b.items for b in batcher.flush()]


def privacy_scenario(
    enricher: DocumentEnricher, texts: list[str], settings: Settings, rounds: int = 3
) -> tuple[dict[str, float], float]:
    """The model thread under the PII policy ``keep`` (the stage does nothing) and
    ``redact`` (every type looked for and rewritten), on the same texts.

    Returns docs/s for each, and the share of the ``redact`` model time (forward, heads,
    entities and the PII stage, from the records' timings) spent in the PII stage.
    """
    from stream_aimass.privacy.policy import PolicySource
    from stream_aimass.privacy.stage import PiiStage

    batches = _batches(enricher, texts, settings)
    variants: dict[str, DocumentEnricher] = {}
    for policy in ("keep", "redact"):
        variant = DocumentEnricher(
            enricher.encoder, enricher.topic, enricher.model.name, entities=enricher.entities
        )
        variant.privacy = PiiStage(PolicySource(policy, None, 0), None, settings.pii_region)
        variants[policy] = variant
    return _alternate(variants, batches, len(texts), rounds, "redact", "pii")


def news_articles(n: int) -> list[str]:
    """``n`` texts from the shipped news test set (repeated as needed): articles of 8-14
    sentences, what extractive summaries are for."""
    from stream_aimass.evaluation.summaries import read_articles, shipped_set

    texts = [a.text for a in read_articles(shipped_set())]
    return [texts[i % len(texts)] for i in range(n)]


def summaries_scenario(
    enricher: DocumentEnricher, texts: list[str], settings: Settings, rounds: int = 3
) -> tuple[dict[str, float], float]:
    """The model thread with extractive summaries off and on, on the same texts (the entity
    stage as the settings have it, in both).

    Returns docs/s for each, and the share of the ``on`` model time (forward, heads,
    entities, PII and summaries, from the records' timings) spent summarising.
    """
    from stream_aimass.summaries.extractive import ExtractiveSummarizer

    batches = _batches(enricher, texts, settings)
    variants: dict[str, DocumentEnricher] = {}
    for name in ("off", "on"):
        variant = DocumentEnricher(
            enricher.encoder, enricher.topic, enricher.model.name, entities=enricher.entities
        )
        if name == "on":
            variant.summarizer = ExtractiveSummarizer(
                settings.summary_sentences or 3,
                settings.summary_mmr_weight,
                settings.summary_position_weight,
            )
        variants[name] = variant
    return _alternate(variants, batches, len(texts), rounds, "on", "summary")
