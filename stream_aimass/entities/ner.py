"""Mention detection, three backends behind one interface.

- :class:`DictionaryDetector` (no NER model configured): KB aliases found in the text.
- :class:`TokenHeadDetector`: a token-classification head trained by ``train ner``. In
  ``head`` mode it reads the shared encoder's token states (the document's one forward
  pass); in ``finetune`` mode the model carries its own encoder and runs its own pass on
  the shared token ids.
- :class:`HFTokenClassifier`: any local Hugging Face token-classification checkpoint
  (``config.json`` with ``id2label`` + safetensors), run as its own pass.

Every detector returns character spans with a label; word pieces are aligned back to whole
words and BIO decoding never emits a broken span (:mod:`stream_aimass.entities.spans`).
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream_aimass.entities.aliases import AliasIndex
from stream_aimass.entities.decoding import piece_tags_batch, word_tags_batch
from stream_aimass.entities.spans import char_spans, piece_shapes, text_piece_shapes
from stream_aimass.models.classify import load_head
from stream_aimass.models.encoder import Encoder, ModelLoadError, Tokenized, check_model_dir
from stream_aimass.models.library import resolve_model
from stream_aimass.records import ModelRef

log = logging.getLogger("stream_aimass.entities")


@dataclass(frozen=True, slots=True)
class DetectorInput:
    """One batch from the shared pass: texts, their tokenization and token states."""

    texts: list[str]
    tokenized: Tokenized
    states: list[np.ndarray]  # per document (pieces, dim)
    words: list[list[str]] | None = None  # pre-split words (CoNLL evaluation)


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    label: str  # "" when the detector has no types (dictionary matching)
    candidates: tuple[int, ...] | None = None  # known already (dictionary matching)


class MentionDetector(ABC):
    model: ModelRef
    shared_pass: bool = True

    @abstractmethod
    def detect(self, batch: DetectorInput) -> list[list[Span]]:
        """Spans per document, sorted and non-overlapping."""

    def describe(self) -> dict[str, Any]:
        return {
            "detector": type(self).__name__,
            "model": self.model.name,
            "version": self.model.version,
            "shared_pass": self.shared_pass,
        }


class DictionaryDetector(MentionDetector):
    """Mentions are the KB aliases found in the text (longest match wins)."""

    def __init__(self, index: AliasIndex) -> None:
        self.index = index
        self.model = ModelRef(f"dictionary:{index.kb.name}", index.kb.version)

    def detect(self, batch: DetectorInput) -> list[list[Span]]:
        return [
            [Span(m.start, m.end, "", m.candidates) for m in self.index.scan(text)]
            for text in batch.texts
        ]


class TokenTagger(MentionDetector):
    """Shared by the token-classification backends: piece logits -> character spans.

    ``constrained``: tags are the best valid BIO sequence (:mod:`~stream_aimass.entities.
    decoding`); False: each word's argmax, decoded leniently.
    """

    labels: list[str]
    constrained: bool = True
    context: int = 0  # word pieces of context each side it was trained with (CoNLL eval)

    @abstractmethod
    def piece_logits(
        self, batch: DetectorInput, pretokenized: bool = False
    ) -> tuple[list[np.ndarray], Tokenized]:
        """Per document, (pieces, labels) logits, and the tokenization they align with."""

    def detect(self, batch: DetectorInput) -> list[list[Span]]:
        out = []
        all_logits, tokenized = self.piece_logits(batch)
        word_ids = tokenized.word_ids[: len(all_logits)]
        all_tags = piece_tags_batch(all_logits, self.labels, word_ids, self.constrained)
        for row, tags in enumerate(all_tags):
            spans = char_spans(
                batch.texts[row], tokenized.offsets[row], tags, word_ids=tokenized.word_ids[row]
            )
            out.append([Span(a, b, label) for a, b, label in spans])
        return out

    def predict_words(self, sentences: list[list[str]], shared: Encoder) -> list[list[str]]:
        """BIO tags per word for pre-split sentences (CoNLL evaluation)."""
        tokenizer = self.word_tokenizer(shared)
        enc = tokenizer(
            sentences,
            is_split_into_words=True,
            truncation=True,
            max_length=shared.max_tokens,
            return_offsets_mapping=True,
        )
        ids = enc["input_ids"]
        word_ids = [enc.word_ids(i) for i in range(len(sentences))]
        offsets = [[(int(a), int(b)) for a, b in row] for row in enc["offset_mapping"]]
        states: list[np.ndarray] = []
        if self.shared_pass:
            states = shared.encode_ids(ids, token_states=True).token_states or []
        batch = DetectorInput(
            [" ".join(s) for s in sentences], Tokenized(ids, offsets, word_ids), states, sentences
        )
        all_firsts = []
        for row, sentence in enumerate(sentences):
            firsts = [-1] * len(sentence)
            for piece, word in enumerate(word_ids[row]):
                if word is not None and firsts[word] < 0:
                    firsts[word] = piece
            all_firsts.append(firsts)
        logits = self.piece_logits(batch, pretokenized=True)[0]
        return word_tags_batch(logits, all_firsts, self.labels, self.constrained)

    def word_tokenizer(self, shared: Encoder) -> Any:
        return shared.tokenizer


class TokenHeadDetector(TokenTagger):
    """A head trained by ``stream-aimass train ner`` (``head`` or ``finetune`` mode), or a
    NER head of a ``train multitask`` model (``head``: its name)."""

    def __init__(self, path: Path, shared: Encoder, head_name: str | None = None) -> None:
        head = load_head(path, "ner", shared, head_name)
        self.weight, self.bias, self.encoder = head.weight, head.bias, head.encoder
        self.shared_pass = self.encoder is None
        self.info = head.info
        self.labels = head.info.labels
        # Heads trained with word-shape features take SHAPE_FEATURES more inputs.
        self.shapes = "word_shape" in (head.info.meta.get("features") or [])
        meta = head.info.meta
        self.context = int(
            meta.get("context_tokens") or (meta.get("training") or {}).get("context_tokens") or 0
        )
        self.model = ModelRef(head.info.name, head.info.version)

    def piece_logits(
        self, batch: DetectorInput, pretokenized: bool = False
    ) -> tuple[list[np.ndarray], Tokenized]:
        states = batch.states
        if self.encoder is not None:
            encoded = self.encoder.encode_ids(batch.tokenized.ids, token_states=True)
            states = encoded.token_states or []
        tok = batch.tokenized
        out = []
        for row, state in enumerate(states):
            if self.shapes:
                if batch.words is not None:
                    shape = piece_shapes(batch.words[row], tok.word_ids[row])
                else:
                    shape = text_piece_shapes(batch.texts[row], tok.offsets[row], tok.word_ids[row])
                state = np.hstack([state, shape])
            out.append(state @ self.weight.T + self.bias)
        return out, tok


class HFTokenClassifier(TokenTagger):
    """A local Hugging Face token-classification checkpoint, run as its own pass."""

    shared_pass = False

    def __init__(self, path: Path, device: str = "cpu") -> None:
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        check_model_dir(path)  # pickle weights, remote code, no safetensors: refused
        config = json.loads((path / "config.json").read_text())
        id2label = config.get("id2label") or {}
        if not id2label:
            raise ModelLoadError(f"{path}/config.json has no id2label: not a token classifier")
        self.labels = [str(id2label[str(i)]) for i in range(len(id2label))]
        self.tokenizer = AutoTokenizer.from_pretrained(
            str(path), trust_remote_code=False, local_files_only=True
        )
        self.net = AutoModelForTokenClassification.from_pretrained(
            str(path), use_safetensors=True, trust_remote_code=False, local_files_only=True
        ).eval()
        from stream_aimass.models.encoder import weights_version

        self.model = ModelRef(path.name, weights_version(path))
        self.max_tokens = int(min(512, getattr(self.tokenizer, "model_max_length", 512) or 512))

    def word_tokenizer(self, shared: Encoder) -> Any:
        return self.tokenizer

    def piece_logits(
        self, batch: DetectorInput, pretokenized: bool = False
    ) -> tuple[list[np.ndarray], Tokenized]:
        import torch

        if pretokenized:  # already this model's pieces (predict_words)
            tokenized = batch.tokenized
        else:
            enc = self.tokenizer(
                batch.texts, truncation=True, max_length=self.max_tokens,
                return_offsets_mapping=True,
            )  # fmt: skip
            tokenized = Tokenized(
                enc["input_ids"],
                [[(int(a), int(b)) for a, b in row] for row in enc["offset_mapping"]],
                [enc.word_ids(i) for i in range(len(batch.texts))],
            )
        out = []
        with torch.inference_mode():
            for ids in tokenized.ids:  # one pass per document: checkpoints vary in padding
                logits = self.net(input_ids=torch.tensor([ids])).logits[0]
                out.append(logits.float().numpy())
        return out, tokenized


def load_detector(
    ref: str,
    index: AliasIndex | None,
    shared: Encoder,
    models_dir: Path,
    head: str | None = None,
) -> MentionDetector:
    """The detector for the ``ner_model`` setting: empty means KB dictionary matching
    (which needs ``index``; a model reference does not). ``head`` (``ner_head``) names
    the NER head of a multitask model."""
    if not ref:
        if head:
            raise ModelLoadError(f"ner_head {head!r} given without a ner_model to take it from")
        if index is None:
            raise ModelLoadError("no NER model given, and no KB alias index to match instead")
        return DictionaryDetector(index)
    path = Path(ref).expanduser()
    if (path / "config.json").is_file() and not (path / "model.json").is_file():
        if head:
            raise ModelLoadError(f"{path} is a Hugging Face checkpoint: it has no named heads")
        return HFTokenClassifier(path, device=shared.device)
    return TokenHeadDetector(resolve_model(ref, models_dir), shared, head or None)
