"""Training and evaluating NER: a token-classification head on the shared encoder.

``finetune`` (the default of ``train ner``) trains the encoder with the head; the result
carries its own encoder and runs as its own pass in the worker. ``head`` freezes the
shared encoder and trains only the head on its token states: the worker then detects
mentions from the document's one forward pass, at the cost of some accuracy.

Labels are BIO2 over words (IOB1 files are converted); the first word piece of a word
carries the word's label, later pieces are ignored in the loss, and predictions are read
from first pieces, so spans always cover whole words.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from stream_aimass.entities.decoding import word_tags
from stream_aimass.entities.spans import SHAPE_FEATURES, bio_spans, piece_shapes
from stream_aimass.evaluation.ner import ner_report
from stream_aimass.models.classify import ENCODER_SUBDIR, save_head
from stream_aimass.models.encoder import (
    Encoder,
    check_model_dir,
    cpu_has_native_bf16,
    weights_version,
)
from stream_aimass.models.library import ModelInfo, publish, staging_dir
from stream_aimass.training.classifier import length_bucketed
from stream_aimass.training.conll import Sentence, detect_scheme, entity_types, to_bio2
from stream_aimass.training.data import DataError
from stream_aimass.training.reporting import SilentReporter, TrainingReporter

if TYPE_CHECKING:
    import torch

log = logging.getLogger("stream_aimass.training")

IGNORE = -100


@dataclass(frozen=True, slots=True)
class NerConfig:
    mode: Literal["head", "finetune"] = "finetune"
    epochs: int | None = None  # None: 8 (finetune), 40 (head)
    batch_size: int = 16
    encoder_lr: float = 1e-4
    head_lr: float = 2e-3
    weight_decay: float = 0.01
    seed: int = 13
    max_tokens: int = 128
    dtype: str = "auto"
    threads: int = 0
    context: int = 0  # word pieces of the neighbouring sentences on each side

    @property
    def resolved_epochs(self) -> int:
        return self.epochs if self.epochs is not None else (8 if self.mode == "finetune" else 40)


@dataclass(slots=True)
class _Encoded:
    ids: list[list[int]]
    labels: list[list[int]]  # per piece: label index or IGNORE
    first_piece: list[list[int]] = field(default_factory=list)  # per word: its first piece
    shapes: list[np.ndarray] = field(default_factory=list)  # per piece: its word's shape


def bio_labels(types: list[str]) -> list[str]:
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]


def _file_hash(path: Path | None) -> str:
    if path is None or not path.exists():
        return ""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True, slots=True)
class Window:
    """A sentence inside the words around it: ``words[start:end]`` is the sentence."""

    words: list[str]
    start: int
    end: int


def context_windows(
    tokenizer: Any, sentences: list[Sentence], max_tokens: int, context: int
) -> list[Window]:
    """Each sentence with up to ``context`` word pieces of its document's neighbouring
    sentences on each side (whole words; fewer where the window would pass ``max_tokens``).

    The worker tags whole documents, so a tagger trained and measured with the sentences
    around it sees what it meets when serving. Sentences of files without ``-DOCSTART-``
    documents (tweets, independent sentences), and ``context`` 0, stand alone.
    """
    alone = [Window(s.tokens, 0, len(s.tokens)) for s in sentences]
    if context <= 0 or all(s.document < 0 for s in sentences):
        return alone
    enc = tokenizer([s.tokens for s in sentences], is_split_into_words=True,
                    add_special_tokens=False)  # fmt: skip
    counts: list[list[int]] = []
    for row, sentence in enumerate(sentences):
        per_word = [0] * len(sentence.tokens)
        for word in enc.word_ids(row):
            if word is not None:
                per_word[word] += 1
        counts.append(per_word)

    def take(i: int, step: int, budget: int) -> list[str]:
        taken: list[str] = []
        j = i + step
        while budget > 0 and 0 <= j < len(sentences):
            if sentences[j].document != sentences[i].document:
                break
            order = range(len(sentences[j].tokens))
            for w in reversed(order) if step < 0 else order:
                if counts[j][w] > budget:
                    return taken
                budget -= counts[j][w]
                taken.append(sentences[j].tokens[w])
            j += step
        return taken

    windows = []
    for i, sentence in enumerate(sentences):
        if sentence.document < 0:
            windows.append(alone[i])
            continue
        side = min(context, max(0, max_tokens - 2 - sum(counts[i])) // 2)
        left = take(i, -1, side)[::-1]
        right = take(i, 1, side)
        words = left + sentence.tokens + right
        windows.append(Window(words, len(left), len(left) + len(sentence.tokens)))
    return windows


def encode_sentences(
    tokenizer: Any,
    sentences: list[Sentence],
    labels: list[str],
    max_tokens: int,
    context: int = 0,
) -> _Encoded:
    """Token ids, piece labels (first pieces of the sentence's words; the rest and any
    context ignored), first pieces and shapes of each sentence, in its context window."""
    index = {label: i for i, label in enumerate(labels)}
    windows = context_windows(tokenizer, sentences, max_tokens, context)
    enc = tokenizer(
        [w.words for w in windows], is_split_into_words=True, truncation=True,
        max_length=max_tokens,
    )  # fmt: skip
    out = _Encoded([], [])
    for row, (sentence, window) in enumerate(zip(sentences, windows, strict=True)):
        tags = to_bio2(sentence.tags)
        word_ids = enc.word_ids(row)
        piece_labels = [IGNORE] * len(word_ids)
        firsts = [-1] * len(sentence.tokens)
        seen: set[int] = set()
        for piece, word in enumerate(word_ids):
            if word is None or word in seen or not window.start <= word < window.end:
                continue
            seen.add(word)
            firsts[word - window.start] = piece
            piece_labels[piece] = index.get(tags[word - window.start], 0)
        out.ids.append(enc["input_ids"][row])
        out.labels.append(piece_labels)
        out.first_piece.append(firsts)
        out.shapes.append(piece_shapes(window.words, word_ids))
    return out


def sentence_report(predicted: list[list[str]], sentences: list[Sentence]) -> dict[str, Any]:
    gold = [bio_spans(to_bio2(s.tags)) for s in sentences]
    return ner_report(gold, [bio_spans(tags) for tags in predicted])


def padded_batch(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input ids, attention mask) of a batch of token id lists, padded to the longest."""
    import torch

    width = max(len(x) for x in ids)
    t = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        t[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return t, mask


class _TokenModel:
    """Encoder + linear head over token states: the worker's inference, trainable."""

    def __init__(self, encoder_dir: Path, n_labels: int, config: NerConfig) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        check_model_dir(encoder_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(
            str(encoder_dir), trust_remote_code=False, local_files_only=True
        )
        self.encoder = AutoModel.from_pretrained(
            str(encoder_dir), use_safetensors=True, trust_remote_code=False, local_files_only=True
        )
        hidden = int(self.encoder.config.hidden_size)
        self.head = torch.nn.Linear(hidden + SHAPE_FEATURES, n_labels)
        self.autocast = config.dtype == "bf16" or (config.dtype == "auto" and cpu_has_native_bf16())
        self.pad_id = int(self.tokenizer.pad_token_id or 0)

    def logits(self, ids: list[list[int]], shapes: list[np.ndarray]) -> torch.Tensor:
        import torch

        t, mask = padded_batch(ids, self.pad_id)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            hidden = self.encoder(input_ids=t, attention_mask=mask).last_hidden_state
        features = torch.zeros((len(ids), t.shape[1], SHAPE_FEATURES))
        for row, shape in enumerate(shapes):
            features[row, : len(shape)] = torch.from_numpy(shape)
        out: torch.Tensor = self.head(torch.cat([hidden.float(), features], dim=-1))
        return out

    def train(self, on: bool) -> None:
        self.encoder.train(on)
        self.head.train(on)

    def predict(self, data: _Encoded, labels: list[str], bs: int = 64) -> list[list[str]]:
        import torch

        self.train(False)
        out: list[list[str]] = [[] for _ in data.ids]
        order = sorted(range(len(data.ids)), key=lambda i: len(data.ids[i]))
        with torch.inference_mode():
            for start in range(0, len(order), bs):
                chunk = order[start : start + bs]
                logits = self.logits(
                    [data.ids[i] for i in chunk], [data.shapes[i] for i in chunk]
                ).numpy()
                for k, i in enumerate(chunk):
                    out[i] = word_tags(logits[k, : len(data.ids[i])], data.first_piece[i], labels)
        return out


def _finetune(
    model: _TokenModel,
    train: _Encoded,
    dev: _Encoded | None,
    dev_sentences: list[Sentence] | None,
    labels: list[str],
    config: NerConfig,
    reporter: TrainingReporter,
) -> list[dict[str, Any]]:
    import torch

    epochs = config.resolved_epochs
    steps = epochs * math.ceil(len(train.ids) / config.batch_size)
    optimizer = torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "lr": config.encoder_lr},
            {"params": model.head.parameters(), "lr": config.head_lr},
        ],
        weight_decay=config.weight_decay,
    )
    warmup = max(1, steps // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1.0 - s / steps)
    )
    rng = random.Random(config.seed)
    lengths = [len(x) for x in train.ids]
    history: list[dict[str, Any]] = []
    best_f1, best_state = -1.0, None
    reporter.start("finetune", steps)
    for epoch in range(1, epochs + 1):
        model.train(True)
        total, count = 0.0, 0
        for idx in length_bucketed(len(train.ids), lengths, config.batch_size, rng):
            logits = model.logits([train.ids[i] for i in idx], [train.shapes[i] for i in idx])
            width = logits.shape[1]
            target = torch.full((len(idx), width), IGNORE, dtype=torch.long)
            for k, i in enumerate(idx):
                target[k, : len(train.labels[i])] = torch.tensor(train.labels[i])
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE
            )
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.encoder.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(idx)
            count += len(idx)
            reporter.advance()
        entry: dict[str, Any] = {"epoch": epoch, "train_loss": round(total / max(1, count), 4)}
        better = dev is None
        if dev is not None and dev_sentences is not None:
            report = sentence_report(model.predict(dev, labels), dev_sentences)
            entry.update({k: round(report[k], 4) for k in ("precision", "recall", "f1")})
            if report["f1"] > best_f1:
                best_f1, better = report["f1"], True
        if better:
            best_state = (
                {k: v.detach().clone() for k, v in model.encoder.state_dict().items()},
                {k: v.detach().clone() for k, v in model.head.state_dict().items()},
            )
        history.append(entry)
        reporter.epoch(epoch, entry)
    if best_state is not None:
        model.encoder.load_state_dict(best_state[0])
        model.head.load_state_dict(best_state[1])
    return history


def _head_only(
    encoder_dir: Path,
    train: _Encoded,
    dev: _Encoded | None,
    dev_sentences: list[Sentence] | None,
    labels: list[str],
    config: NerConfig,
    reporter: TrainingReporter,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]], Encoder]:
    """Frozen shared encoder: token states computed once, a linear head trained on them."""
    import torch

    shared = Encoder(encoder_dir, dtype=config.dtype, max_tokens=config.max_tokens)
    reporter.start("embed", len(train.ids) + (len(dev.ids) if dev else 0))

    def states_of(data: _Encoded) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for start in range(0, len(data.ids), 64):
            enc = shared.encode_ids(data.ids[start : start + 64], token_states=True)
            out.extend(enc.token_states or [])
            reporter.advance(min(64, len(data.ids) - start))
        return out

    # Token states with the word-shape features appended, as the worker computes them.
    train_states = [
        np.hstack([s, sh]) for s, sh in zip(states_of(train), train.shapes, strict=True)
    ]
    dev_states = (
        [np.hstack([s, sh]) for s, sh in zip(states_of(dev), dev.shapes, strict=True)]
        if dev is not None
        else []
    )
    xs = np.concatenate(
        [
            s[[i for i, y in enumerate(lab) if y != IGNORE]]
            for s, lab in zip(train_states, train.labels, strict=True)
        ]
    )
    ys = np.array([y for lab in train.labels for y in lab if y != IGNORE], dtype=np.int64)
    torch.manual_seed(config.seed)
    head = torch.nn.Linear(xs.shape[1], len(labels))
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.head_lr, weight_decay=1e-4)
    x_t, y_t = torch.from_numpy(xs), torch.from_numpy(ys)
    epochs = config.resolved_epochs
    bs = 256
    history: list[dict[str, Any]] = []
    best_f1, best = -1.0, (head.weight.detach().clone(), head.bias.detach().clone())
    generator = torch.Generator().manual_seed(config.seed)
    reporter.start("train head", epochs)
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(len(x_t), generator=generator)
        total = 0.0
        for start in range(0, len(perm), bs):
            idx = perm[start : start + bs]
            loss = torch.nn.functional.cross_entropy(head(x_t[idx]), y_t[idx])
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            total += loss.item() * len(idx)
        reporter.advance()
        entry: dict[str, Any] = {"epoch": epoch, "train_loss": round(total / len(x_t), 4)}
        better = dev is None
        if dev is not None and dev_sentences is not None:
            w = head.weight.detach().numpy()
            b = head.bias.detach().numpy()
            predicted = [
                word_tags(s @ w.T + b, firsts, labels)
                for s, firsts in zip(dev_states, dev.first_piece, strict=True)
            ]
            report = sentence_report(predicted, dev_sentences)
            entry.update({k: round(report[k], 4) for k in ("precision", "recall", "f1")})
            if report["f1"] > best_f1:
                best_f1, better = report["f1"], True
        if better:
            best = (head.weight.detach().clone(), head.bias.detach().clone())
        history.append(entry)
        if epoch % 5 == 0 or epoch == epochs:
            reporter.epoch(epoch, entry)
    return best[0].numpy(), best[1].numpy(), history, shared


def train_ner(
    train: list[Sentence],
    dev: list[Sentence] | None,
    out: Path,
    *,
    name: str,
    encoder_dir: Path,
    encoder_name: str,
    config: NerConfig,
    train_path: Path | None = None,
    dev_path: Path | None = None,
    reporter: TrainingReporter | None = None,
) -> ModelInfo:
    """Train a NER model and write a new version under ``out``."""
    import torch

    reporter = reporter or SilentReporter()
    if not train:
        raise DataError("no training sentences")
    types = entity_types(train)
    if not types:
        raise DataError("the training data has no entities (every tag is O)")
    labels = bio_labels(types)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    staging = staging_dir(out)
    if config.mode == "finetune":
        model = _TokenModel(encoder_dir, len(labels), config)
        train_enc = encode_sentences(
            model.tokenizer, train, labels, config.max_tokens, config.context
        )
        dev_enc = (
            encode_sentences(model.tokenizer, dev, labels, config.max_tokens, config.context)
            if dev
            else None
        )
        history = _finetune(model, train_enc, dev_enc, dev, labels, config, reporter)
        weight = model.head.weight.detach().numpy()
        bias = model.head.bias.detach().numpy()
        model.encoder.save_pretrained(str(staging / ENCODER_SUBDIR), safe_serialization=True)
        model.tokenizer.save_pretrained(str(staging / ENCODER_SUBDIR))
        final = sentence_report(model.predict(dev_enc, labels), dev) if dev and dev_enc else None
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(
            str(encoder_dir), trust_remote_code=False, local_files_only=True
        )
        train_enc = encode_sentences(tokenizer, train, labels, config.max_tokens, config.context)
        dev_enc = (
            encode_sentences(tokenizer, dev, labels, config.max_tokens, config.context)
            if dev
            else None
        )
        weight, bias, history, _ = _head_only(
            encoder_dir, train_enc, dev_enc, dev, labels, config, reporter
        )
        final = None
        if dev and history:
            best = max(history, key=lambda h: h.get("f1", -1))
            final = {k: best[k] for k in ("precision", "recall", "f1") if k in best}
    save_head(staging, weight, bias)
    seconds = time.perf_counter() - started
    metrics: dict[str, Any] = {}
    if final:
        metrics = {k: final[k] for k in ("precision", "recall", "f1")}
        if "per_type" in final:
            metrics["per_type"] = final["per_type"]
    meta = {
        "name": name,
        "kind": "ner",
        "mode": config.mode,
        "labels": labels,
        "entity_types": types,
        "scheme_in": detect_scheme(train),
        "own_encoder_pass": config.mode == "finetune",
        "features": ["token_states", "word_shape"],
        "base_encoder": {
            "name": encoder_name, "version": weights_version(encoder_dir), "path": str(encoder_dir)
        },
        "data": {
            "train": str(train_path or ""), "train_sha256": _file_hash(train_path),
            "train_sentences": len(train),
            "dev": str(dev_path or ""), "dev_sha256": _file_hash(dev_path),
            "dev_sentences": len(dev or []),
        },
        "metrics": metrics,
        "training": {
            "seconds": round(seconds, 1),
            "epochs": config.resolved_epochs,
            "batch_size": config.batch_size,
            "encoder_lr": config.encoder_lr if config.mode == "finetune" else None,
            "head_lr": config.head_lr,
            "seed": config.seed,
            "max_tokens": config.max_tokens,
            "context_tokens": config.context,
            "history": history,
        },
    }  # fmt: skip
    return publish(staging, meta)
