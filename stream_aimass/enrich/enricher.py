"""The model step of the enrich role: one encoder pass per batch, every head, the records.

:class:`DocumentEnricher` turns a batch of decoded, tokenized documents into serialised
enriched records and item vectors, in input order; it runs in the service's model thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from aiokafka import TopicPartition

from stream_aimass.enrich.reload import current_specs
from stream_aimass.entities.extract import EntityExtractor
from stream_aimass.entities.linking import LinkedEntity, load_link_weights
from stream_aimass.models.classify import (
    ClassifierSet,
    HeadInput,
    ZeroShotClassifier,
    load_classifier_set,
)
from stream_aimass.models.encoder import EncodedBatch, Encoder, Tokenized
from stream_aimass.observability import Metrics
from stream_aimass.privacy.stage import PiiStage, Protected
from stream_aimass.records import (
    Category,
    DeadLetter,
    Document,
    EnrichedDocument,
    ItemVector,
    ModelRef,
    Source,
    embedding_field,
)
from stream_aimass.settings import Settings
from stream_aimass.summaries.extractive import ExtractiveSummarizer, Summary

log = logging.getLogger("stream_aimass.enrich")

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class Pending:
    """A decoded document waiting for the model, with its token ids."""

    document: Document
    ids: list[int]
    tp: TopicPartition
    raw: bytes
    key: bytes | None
    offsets: list[tuple[int, int]] | None = None  # per piece, when entities are on
    word_ids: list[int | None] | None = None
    catalogue: bool = False  # a catalogue item (aimass.items): published as an item vector only
    # Came over HTTP (``POST /v1/enrich``): resolved with the result, not committed.
    reply: asyncio.Future[object] | None = None


def pending_texts(
    enricher: DocumentEnricher, texts: list[str], *, tenant: str = "eval", first: int = 0
) -> list[Pending]:
    """``texts`` as pending documents of ``tenant`` (ids ``p<n>`` from ``first``), tokenized
    as the enrich role tokenizes them: for evaluations and benchmarks of the model step."""
    tp = TopicPartition(tenant, 0)
    tokenized = enricher.tokenize(texts)
    out = []
    for row, text in enumerate(texts):
        n = first + row
        doc = Document(f"p{n}", tenant, 0, text, Source(tp.topic, 0, n, 0))
        item = Pending(doc, tokenized.ids[row], tp, b"", None)
        if tokenized.offsets:
            item.offsets, item.word_ids = tokenized.offsets[row], tokenized.word_ids[row]
        out.append(item)
    return out


def free_accelerator_memory(exc: BaseException) -> None:
    """After an out-of-memory error on CUDA, hand cached blocks back before smaller retries."""
    import torch

    oom = (torch.cuda.OutOfMemoryError, getattr(torch, "OutOfMemoryError", MemoryError))
    if isinstance(exc, oom) and torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass(frozen=True, slots=True)
class Enriched:
    """What one document became: its enriched record and its item vector (or None)."""

    record: bytes  # empty for a catalogue item (no enriched record)
    item_vector: bytes | None = None
    text: str = ""  # the text as the PII policy left it (what a later stage may read)


class DocumentEnricher:
    """The model side of the enrich role: encoder + heads, as one callable per batch.

    ``topic`` is the zero-shot head behind ``categories``/``top_category``; ``classifiers``
    are the configured extra classifiers, swapped whole by :meth:`swap` between batches;
    ``privacy`` is the PII stage (None: everything is kept as it came).
    """

    privacy: PiiStage | None = None
    include_text: bool = False
    metrics: Metrics | None = None
    summarizer: ExtractiveSummarizer | None = None

    def __init__(
        self,
        encoder: Encoder,
        topic: ZeroShotClassifier | None,
        model_name: str,
        classifiers: ClassifierSet | None = None,
        models_dir: Path | None = None,
        metrics: Metrics | None = None,
        entities: EntityExtractor | None = None,
        privacy: PiiStage | None = None,
        include_text: bool = False,
        summarizer: ExtractiveSummarizer | None = None,
    ) -> None:
        self.encoder = encoder
        self.summarizer = summarizer
        self.privacy = privacy
        self.include_text = include_text
        self.entities = entities
        self.topic = topic
        self.model = ModelRef(model_name or encoder.name, encoder.version)
        self.models_dir = models_dir or Path("models")
        self.metrics = metrics
        self.classifiers = classifiers or ClassifierSet(())

    @classmethod
    def from_settings(cls, settings: Settings) -> DocumentEnricher:
        encoder = Encoder(
            settings.resolved_model_dir,
            device=settings.device,
            dtype=settings.dtype,
            max_tokens=settings.max_tokens_per_document,
            name=settings.model_name,
            threads=settings.torch_threads,
        )
        encoder.warmup()
        topic = (
            ZeroShotClassifier(encoder, settings.labels, name="topic") if settings.labels else None
        )
        entities = None
        if settings.entities_enabled:
            entities = EntityExtractor.build(
                encoder,
                kb_path=settings.kb_path,
                ner_model=settings.ner_model,
                ner_head=settings.ner_head,
                models_dir=settings.resolved_models_dir,
                cache_dir=settings.data_dir / "cache",
                weights=load_link_weights(settings.link_weights_path, settings.link_nil_threshold),
            )
        enricher = cls(
            encoder,
            topic,
            settings.model_name,
            models_dir=settings.resolved_models_dir,
            entities=entities,
            include_text=settings.enriched_include_text,
        )
        if settings.summary_sentences:
            enricher.summarizer = ExtractiveSummarizer(
                settings.summary_sentences,
                settings.summary_mmr_weight,
                settings.summary_position_weight,
            )
        enricher.privacy = PiiStage.from_settings(settings, on_reload=enricher._policy_reloaded)
        enricher.swap(enricher.load_classifiers(current_specs(settings)))
        return enricher

    def _policy_reloaded(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.pii_policy_reloads.labels(outcome).inc()

    def protect_dead_letter(self, dead: DeadLetter) -> DeadLetter:
        """``dead`` as the DLQ may keep it under the PII policy."""
        if self.privacy is None:
            return dead
        kept = self.privacy.protect_dead_letter(dead)
        if kept is not dead and self.metrics is not None:
            self.metrics.dead_letters_protected.labels(kept.raw_kind).inc()
        return kept

    def _protect(self, items: list[Pending], linked: list[list[LinkedEntity]]) -> list[Protected]:
        """The PII stage: each document and its mentions as they may be stored."""
        privacy = self.privacy
        policy = privacy.policy() if privacy is not None else None
        if privacy is None or policy is None or not policy.active:
            return [Protected(p.document, tuple(e), ()) for p, e in zip(items, linked, strict=True)]
        out = [privacy.protect(p.document, e, policy) for p, e in zip(items, linked, strict=True)]
        if self.metrics is not None:
            counter = self.metrics.pii_findings
            for protected in out:
                for f in protected.findings:
                    counter.labels(f.type, f.action).inc()
        return out

    def load_classifiers(self, specs: dict[str, Any]) -> ClassifierSet:
        """Load and warm up a classifier set (does not serve it: see :meth:`swap`)."""
        return load_classifier_set(specs, self.encoder, self.models_dir)

    def swap(self, new: ClassifierSet) -> ClassifierSet:
        """Serve ``new`` from the next batch on; returns the set it replaces."""
        old, self.classifiers = self.classifiers, new
        if self.metrics is not None:
            self.metrics.model_info.clear()
            for c in new.classifiers:
                self.metrics.model_info.labels(c.name, c.model.name, c.model.version).set(1)
        return old

    def tokenize(self, texts: list[str]) -> Tokenized:
        """Token ids for the batcher; offsets and word ids too when entities or summaries
        are on."""
        if self.entities is not None or self.summarizer is not None:
            return self.encoder.tokenize_with_offsets(texts)
        return Tokenized(self.encoder.tokenize(texts), [], [])

    def describe(self) -> dict[str, Any]:
        return {
            "entities": self.entities.describe() if self.entities is not None else None,
            "summary": self.summarizer.describe() if self.summarizer is not None else None,
            "encoder": self.encoder.describe(),
            "topic": self.topic.describe() if self.topic is not None else None,
            "classifiers": self.classifiers.describe(),
        }

    def enrich(self, items: list[Pending], queued_ms: float) -> list[bytes]:
        """Encode a batch and return the serialised enriched records, in input order."""
        return [out.record for out in self.run(items, queued_ms, item_vectors=False)]

    def embed(self, ids: list[list[int]], batch: int) -> np.ndarray:
        """Embeddings only (``POST /v1/embed``): (n, dim) float32, L2-normalised, in input
        order, from forward passes of at most ``batch`` texts each."""
        parts = [
            self.encoder.encode_ids(ids[i : i + batch]).embeddings
            for i in range(0, len(ids), batch)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.encoder.dim), np.float32)

    def run(
        self, items: list[Pending], queued_ms: float, item_vectors: bool = True
    ) -> list[Enriched]:
        """Encode a batch: enriched records and (``item_vectors``) item vectors, in input order."""
        # Read once: a swap during this batch takes effect from the next one.
        classifiers = self.classifiers
        t0 = time.perf_counter()
        ids = [p.ids for p in items]
        entities = self.entities
        states = entities is not None or self.summarizer is not None
        encoded = self.encoder.encode_ids(ids, token_states=states)
        t1 = time.perf_counter()
        texts = [p.document.text for p in items]
        head_input = HeadInput(encoded.embeddings, ids, texts)
        topic = self.topic
        categories: list[tuple[Category, ...]] = [() for _ in items]
        if topic is not None:
            rounded = np.round(topic.scores(head_input), 4).tolist()
            categories = [
                tuple(
                    Category(label, score) for label, score in zip(topic.labels, row, strict=True)
                )
                for row in rounded
            ]
        classified = classifiers.classify(head_input)
        halves = encoded.embeddings.astype("<f2")
        t2 = time.perf_counter()
        linked: list[list[LinkedEntity]] = [[] for _ in items]
        entities_model: dict[str, dict[str, str]] | None = None
        if entities is not None:
            tokenized = Tokenized(
                ids, [p.offsets or [] for p in items], [p.word_ids or [] for p in items]
            )
            linked = entities.extract(texts, tokenized, encoded)
            entities_model = entities.models()
        t3 = time.perf_counter()
        protected = self._protect(items, linked)
        t4 = time.perf_counter()
        summaries = self._summaries(items, encoded, protected)
        t5 = time.perf_counter()
        timings = {
            "queue": round(queued_ms, 3),
            "forward": round((t1 - t0) * 1000, 3),
            "heads": round((t2 - t1) * 1000, 3),
            "entities": round((t3 - t2) * 1000, 3),
            "pii": round((t4 - t3) * 1000, 3),
            "summary": round((t5 - t4) * 1000, 3),
            "batch_size": float(len(items)),
        }
        models = {self.model.name: self.model.version}
        if topic is not None:
            models[topic.model.name] = topic.model.version
        models.update(classifiers.models())
        if entities_model is not None:
            for part in entities_model.values():
                models[part["name"]] = part["version"]
        # Usage metering bills each document its share of the batch's model time by tokens.
        total_tokens = max(1, sum(encoded.tokens))
        model_ms = (t5 - t0) * 1000
        now = _now_ms()
        out = []
        dim = self.encoder.dim
        for row, item in enumerate(items):
            half = halves[row].tobytes()
            embedding = embedding_field(half, dim)  # once, for both records
            vector = None
            safe = protected[row]
            if item_vectors:
                vector = self._item_vector(
                    safe.document, item.catalogue, encoded.embeddings[row], categories[row], now,
                    embedding,
                )  # fmt: skip
            if item.catalogue:  # published as an item vector only: no record to build
                out.append(Enriched(b"", vector, safe.document.text))
                continue
            enriched = EnrichedDocument(
                document=safe.document,
                tokens=encoded.tokens[row],
                categories=categories[row],
                embedding=half,
                embedding_dim=dim,
                model=self.model,
                timings_ms=timings,
                enriched_at_ms=now,
                worker=WORKER_ID,
                classifications=tuple(classified[row]),
                compute_ms=round(model_ms * encoded.tokens[row] / total_tokens, 3),
                models=models,
                entities=safe.entities,
                entities_model=entities_model,
                pii=safe.findings,
                include_text=self.include_text,
                summary=summaries[row],
            )
            out.append(Enriched(enriched.to_json(embedding), vector, safe.document.text))
        return out

    def _summaries(
        self, items: list[Pending], encoded: EncodedBatch, protected: list[Protected]
    ) -> list[Summary | None]:
        """Each document's extractive summary, on its text as stored (None: summaries are
        off, or a catalogue item)."""
        summarizer = self.summarizer
        states = encoded.token_states
        if summarizer is None or states is None:
            return [None for _ in items]
        out: list[Summary | None] = []
        for row, item in enumerate(items):
            if item.catalogue:
                out.append(None)
                continue
            summary = summarizer.summarize(
                item.document.text, item.offsets or [], states[row], encoded.embeddings[row]
            )
            edits = protected[row].edits
            if edits is not None:  # the PII policy rewrote the text: the summary follows
                summary = summary.moved(protected[row].document.text, edits.span)
            out.append(summary)
        return out

    def _item_vector(
        self,
        doc: Document,
        catalogue: bool,
        vector: np.ndarray,
        categories: tuple[Category, ...],
        now: int,
        embedding: dict[str, Any],
    ) -> bytes:
        category = doc.meta.get("category")
        if not isinstance(category, str):
            category = max(categories, key=lambda c: c.score).label if categories else ""
        return ItemVector(
            tenant=doc.tenant,
            item_id=doc.id,
            kind="catalogue" if catalogue else "document",
            ts_ms=doc.ts_ms,
            vector=vector,
            model=self.model,
            updated_at_ms=now,
            title=doc.title,
            category=category,
            source=doc.source.to_dict(),
            version=doc.version,
        ).to_json(embedding)


STAGE_ENRICH = "enrich"


def run_isolating_failures(
    enricher: DocumentEnricher,
    items: list[Pending],
    queued_ms: float,
    item_vectors: bool,
    *,
    on_error: Callable[[BaseException], None] = lambda _: None,
) -> list[Enriched | DeadLetter]:
    """``enricher.run``; on a model error (a CUDA out-of-memory error included: the cache is
    emptied first) split the batch in halves until the failing document is alone, which
    becomes a dead letter (stage ``enrich``), so the rest of the batch goes through."""
    try:
        return list(enricher.run(items, queued_ms, item_vectors))
    except Exception as exc:
        on_error(exc)
        free_accelerator_memory(exc)
        if len(items) == 1:
            item = items[0]
            log.warning("document %s failed in the model: %s", item.document.id, exc)
            return [
                DeadLetter(
                    stage=STAGE_ENRICH,
                    reason=f"model failed on this document: {type(exc).__name__}: {exc}",
                    raw=item.raw,
                    source=item.document.source,
                    failed_at_ms=_now_ms(),
                    error_type=type(exc).__name__,
                    key=item.key,
                )
            ]
        log.info("model failed on a batch of %d (%s); splitting it", len(items), exc)
        mid = len(items) // 2
        first = run_isolating_failures(
            enricher, items[:mid], queued_ms, item_vectors, on_error=on_error
        )
        rest = run_isolating_failures(
            enricher, items[mid:], queued_ms, item_vectors, on_error=on_error
        )
        return first + rest
