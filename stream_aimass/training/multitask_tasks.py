"""The tasks of ``train multitask``: their data, prepared once, and each epoch's plan.

Preparing a task tokenizes its training and dev data the way the worker does and embeds
the training examples with the original encoder: the targets of the distillation term.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stream_aimass.models.encoder import Encoder
from stream_aimass.training.classifier import length_bucketed, targets
from stream_aimass.training.conll import Sentence, entity_types
from stream_aimass.training.data import DataError, LabelledTexts, check_trainable
from stream_aimass.training.ner import bio_labels, encode_sentences
from stream_aimass.training.reporting import TrainingReporter


@dataclass(frozen=True, slots=True)
class MultitaskConfig:
    epochs: int = 4
    batch_size: int = 32  # classifier batches
    ner_batch_size: int = 16
    ner_passes: int = 4  # passes over each NER set per epoch
    encoder_lr: float = 1e-4
    head_lr: float = 1e-3  # classifier heads (after the probe)
    ner_head_lr: float = 2e-3
    distill_weight: float = 1.0  # weight of 1 - cos(pooled, the original's pooled)
    weight_decay: float = 0.01
    seed: int = 13
    max_tokens: int = 128
    ner_context: int = 0  # word pieces of neighbouring sentences around each NER sentence
    dtype: str = "auto"
    threads: int = 0


@dataclass(frozen=True, slots=True)
class NerTask:
    name: str
    train: list[Sentence]
    dev: list[Sentence] | None = None
    train_path: Path | None = None
    dev_path: Path | None = None


@dataclass(frozen=True, slots=True)
class ClassifierTask:
    name: str
    train: LabelledTexts
    dev: LabelledTexts | None = None


@dataclass(slots=True)
class PreparedTask:
    """One task's token ids, targets and the original encoder's embeddings."""

    name: str
    kind: str  # "ner" | "classifier"
    labels: list[str]
    ids: list[list[int]]
    teacher: np.ndarray  # (n, dim) the original's pooled embeddings of ``ids``
    y: Any = None  # classifier: targets (n,) or (n, L); NER: per-piece labels
    shapes: list[np.ndarray] = field(default_factory=list)
    dev_ids: list[list[int]] = field(default_factory=list)
    dev_shapes: list[np.ndarray] = field(default_factory=list)
    dev_firsts: list[list[int]] = field(default_factory=list)
    multi_label: bool = False


def check_names(tasks: Sequence[NerTask | ClassifierTask]) -> None:
    if not tasks:
        raise DataError("give at least one task (--ner NAME=TRAIN or --classifier NAME=TRAIN)")
    names = [t.name for t in tasks]
    for name in names:
        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise DataError(f"task name {name!r}: use letters, digits, '-', '_' or '.'")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"task names must differ: {', '.join(dupes)} given twice")


def teacher_embeddings(encoder: Encoder, ids: list[list[int]]) -> np.ndarray:
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = np.zeros((len(ids), encoder.dim), dtype=np.float32)
    for start in range(0, len(order), 64):
        chunk = order[start : start + 64]
        out[chunk] = encoder.encode_ids([ids[i] for i in chunk]).embeddings
    return out


def prepare_tasks(
    tasks: Sequence[NerTask | ClassifierTask],
    encoder: Encoder,
    config: MultitaskConfig,
    reporter: TrainingReporter,
) -> list[PreparedTask]:
    """Token ids, targets and the original's embeddings of every task; classifier heads'
    probe weights go in ``y`` alongside (see :func:`train_multitask`)."""
    prepared = []
    tokenizer = encoder.tokenizer
    for task in tasks:
        if isinstance(task, NerTask):
            types = entity_types(task.train)
            if not types:
                raise DataError(f"NER task {task.name}: the training data has no entities")
            labels = bio_labels(types)
            enc = encode_sentences(
                tokenizer, task.train, labels, config.max_tokens, config.ner_context
            )
            prep = PreparedTask(task.name, "ner", labels, enc.ids, np.zeros(0), enc.labels)
            prep.shapes = enc.shapes
            if task.dev:
                dev = encode_sentences(
                    tokenizer, task.dev, labels, config.max_tokens, config.ner_context
                )
                prep.dev_ids, prep.dev_shapes = dev.ids, dev.shapes
                prep.dev_firsts = dev.first_piece
        else:
            try:
                check_trainable(task.train)
            except DataError as exc:
                raise DataError(f"classifier task {task.name}: {exc}") from None
            labels = task.train.label_names
            ids = tokenizer(list(task.train.texts), truncation=True, max_length=config.max_tokens)[
                "input_ids"
            ]
            prep = PreparedTask(task.name, "classifier", labels, ids, np.zeros(0))
            prep.y = targets(task.train, labels)
            prep.multi_label = task.train.multi_label
            if task.dev is not None:
                prep.dev_ids = tokenizer(
                    list(task.dev.texts), truncation=True, max_length=config.max_tokens
                )["input_ids"]
        reporter.start(f"embed {task.name}", 1)
        prep.teacher = teacher_embeddings(encoder, prep.ids)
        reporter.advance()
        prepared.append(prep)
    return prepared


def epoch_plan(
    prepared: list[PreparedTask], config: MultitaskConfig, rng: random.Random
) -> list[tuple[int, list[int]]]:
    plan: list[tuple[int, list[int]]] = []
    for t, prep in enumerate(prepared):
        lengths = [len(x) for x in prep.ids]
        bs = config.ner_batch_size if prep.kind == "ner" else config.batch_size
        passes = config.ner_passes if prep.kind == "ner" else 1
        for _ in range(passes):
            plan += [(t, idx) for idx in length_bucketed(len(prep.ids), lengths, bs, rng)]
    rng.shuffle(plan)
    return plan
