"""The entity stage of the document path: detect mentions, then link them.

It reads the batch's one encoder pass: token states for mention vectors (and for a NER
head in ``head`` mode), the pooled embedding as each document's context vector.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream_aimass.entities.aliases import AliasIndex
from stream_aimass.entities.kb import KnowledgeBase, load_kb
from stream_aimass.entities.linking import (
    EntityLinker,
    LinkedEntity,
    LinkWeights,
    Mention,
    Stacked,
    batch_mention_vectors,
    entity_vectors,
)
from stream_aimass.entities.ner import DetectorInput, MentionDetector, load_detector
from stream_aimass.models.encoder import EncodedBatch, Encoder, Tokenized

log = logging.getLogger("stream_aimass.entities")


@dataclass(slots=True)
class EntityExtractor:
    kb: KnowledgeBase
    index: AliasIndex
    linker: EntityLinker
    detector: MentionDetector

    @classmethod
    def build(
        cls,
        encoder: Encoder,
        *,
        kb_path: Path | None,
        ner_model: str,
        models_dir: Path,
        cache_dir: Path | None,
        weights: LinkWeights | None = None,
        ner_head: str = "",
    ) -> EntityExtractor:
        kb = load_kb(kb_path)
        index = AliasIndex(kb)
        vectors = entity_vectors(kb, encoder, cache_dir)
        linker = EntityLinker(kb, vectors, index, weights)
        detector = load_detector(ner_model, index, encoder, models_dir, ner_head or None)
        log.info(
            "entities: KB %s %s (%d entities, %d aliases), detector %s",
            kb.name, kb.version, len(kb), len(index), detector.describe(),
        )  # fmt: skip
        return cls(kb, index, linker, detector)

    def models(self) -> dict[str, dict[str, str]]:
        return {
            "ner": {"name": self.detector.model.name, "version": self.detector.model.version},
            "kb": {"name": self.kb.name, "version": self.kb.version},
        }

    def describe(self) -> dict[str, Any]:
        return {"kb": self.models()["kb"], "entities": len(self.kb), **self.detector.describe()}

    def extract(
        self, texts: list[str], tokenized: Tokenized, encoded: EncodedBatch
    ) -> list[list[LinkedEntity]]:
        """Linked entities per document, in text order: every mention of the batch gets its
        vector and its link in one pass over the batch."""
        states = encoded.token_states or []
        spans = self.detector.detect(DetectorInput(texts, tokenized, states))
        mentions: list[Mention] = []
        for text, doc_spans in zip(texts, spans, strict=True):
            for span in doc_spans:
                surface = text[span.start : span.end]
                if span.candidates is not None:
                    candidates, exact = span.candidates, True
                else:
                    candidates, exact = self.index.candidates_and_match(surface)
                mentions.append(
                    Mention(span.start, span.end, surface, span.label, candidates, exact)
                )
        counts = [len(doc_spans) for doc_spans in spans]
        vectors = batch_mention_vectors(
            states, tokenized.offsets, [[(s.start, s.end) for s in d] for d in spans]
        )
        owner = np.repeat(np.arange(len(texts)), counts)
        context = encoded.embeddings[owner] if len(owner) else None
        linked = self.linker.link_batch(
            mentions, vectors, Stacked(context, np.ones(len(mentions), dtype=bool))
        )
        out: list[list[LinkedEntity]] = []
        first = 0
        for count in counts:
            out.append(linked[first : first + count])
            first += count
        return out
