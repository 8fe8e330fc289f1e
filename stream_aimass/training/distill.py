"""A smaller student encoder distilled from the shared encoder (the teacher).

The student is the teacher with some of its layers (by default every other one: 3 of
MiniLM-L6's 6), each initialised from the teacher's layer it replaces, so it starts close.
It is trained on unlabelled text to give what the pipeline reads from the teacher:

- the pooled embedding (mean over the tokens, L2-normalised): zero-shot labels, classifier
  heads, item vectors, linking's document vector; loss ``1 - cos``;
- the last layer's token states: NER heads and linking's mention vectors; loss the mean
  squared error over the real tokens, relative to the teacher states' mean square.

Held-aside texts (never trained on) report how close the student stays: the mean and the
lowest cosine of its embeddings to the teacher's. The student is a plain Hugging Face
directory (safetensors, tokenizer): serve it with ``AIMASS_MODEL_DIR``. Heads trained on
the teacher's embeddings are trained again on the student's (`train classifier`).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream_aimass.models.encoder import check_model_dir, weights_version
from stream_aimass.training.reporting import SilentReporter, TrainingReporter

STATE_WEIGHT = 1.0  # token-state loss beside the embedding loss


@dataclass(frozen=True, slots=True)
class DistillConfig:
    layers: tuple[int, ...] | None = None  # teacher layers kept; None: every other one
    epochs: int = 2
    batch_size: int = 32
    lr: float = 1e-4
    max_tokens: int = 128
    seed: int = 13
    held_aside: float = 0.05  # share of the texts kept out of training for the report
    threads: int = 0


def kept_layers(teacher_layers: int, layers: Sequence[int] | None) -> list[int]:
    """The teacher layers the student keeps, in order; by default every other one (the
    last always kept)."""
    if layers is None:
        return list(range(teacher_layers - 1, -1, -2))[::-1]
    chosen = sorted(set(layers))
    if not chosen or chosen[0] < 0 or chosen[-1] >= teacher_layers:
        raise ValueError(f"layers must be between 0 and {teacher_layers - 1}, not {layers}")
    return chosen


def _pooled(hidden: Any, mask: Any) -> Any:
    import torch

    weights = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, dim=-1)


def distill_encoder(
    teacher_dir: Path,
    out: Path,
    texts: Sequence[str],
    config: DistillConfig,
    reporter: TrainingReporter | None = None,
) -> dict[str, Any]:
    """Train a student of ``teacher_dir`` on ``texts`` and write it to ``out``; returns
    the report written beside it (``distill.json``)."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    reporter = reporter or SilentReporter()
    check_model_dir(teacher_dir)
    if len(texts) < 20:
        raise ValueError(f"{len(texts)} texts: distillation needs at least 20")
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    rng = random.Random(config.seed)
    order = list(range(len(texts)))
    rng.shuffle(order)
    n_held = max(8, int(len(texts) * config.held_aside))
    held = [texts[i] for i in order[:n_held]]
    train = [texts[i] for i in order[n_held:]]

    tokenizer = AutoTokenizer.from_pretrained(str(teacher_dir), local_files_only=True)
    teacher = AutoModel.from_pretrained(
        str(teacher_dir), use_safetensors=True, local_files_only=True
    ).eval()
    student = AutoModel.from_pretrained(
        str(teacher_dir), use_safetensors=True, local_files_only=True
    )
    keep = kept_layers(len(student.encoder.layer), config.layers)
    student.encoder.layer = torch.nn.ModuleList([student.encoder.layer[i] for i in keep])
    student.config.num_hidden_layers = len(keep)

    def batch(items: Sequence[str]) -> Any:
        return tokenizer(
            list(items), padding=True, truncation=True, max_length=config.max_tokens,
            return_tensors="pt",
        )  # fmt: skip

    optimizer = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=0.01)
    steps = config.epochs * math.ceil(len(train) / config.batch_size)
    warmup = max(1, steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1.0 - s / steps)
    )
    started = time.perf_counter()
    history: list[dict[str, Any]] = []
    reporter.start("distill", steps)
    by_length = sorted(range(len(train)), key=lambda i: len(train[i]))
    for epoch in range(1, config.epochs + 1):
        student.train(True)
        chunks = [
            by_length[i : i + config.batch_size]
            for i in range(0, len(by_length), config.batch_size)
        ]
        rng.shuffle(chunks)  # similar lengths per batch, batches in random order
        total = 0.0
        for chunk in chunks:
            enc = batch([train[i] for i in chunk])
            with torch.no_grad():
                t_hidden = teacher(**enc).last_hidden_state
            s_hidden = student(**enc).last_hidden_state
            mask = enc["attention_mask"]
            cos = (_pooled(s_hidden, mask) * _pooled(t_hidden, mask)).sum(dim=-1)
            real = mask.unsqueeze(-1).to(s_hidden.dtype)
            scale = ((t_hidden**2) * real).sum() / real.sum().clamp(min=1.0) / t_hidden.shape[-1]
            mse = (((s_hidden - t_hidden) ** 2) * real).sum() / (
                real.sum().clamp(min=1.0) * t_hidden.shape[-1]
            )
            loss = (1.0 - cos).mean() + STATE_WEIGHT * mse / scale.clamp(min=1e-6)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            scheduler.step()
            total += float(loss.item()) * len(chunk)
            reporter.advance()
        closeness = held_aside_cosine(teacher, student, batch, held)
        history.append({"epoch": epoch, "loss": round(total / len(train), 5), **closeness})
        reporter.epoch(epoch, history[-1])
    out.mkdir(parents=True, exist_ok=True)
    student.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    report: dict[str, Any] = {
        "kind": "distilled encoder",
        "teacher": {"path": str(teacher_dir), "version": weights_version(teacher_dir)},
        "student_version": weights_version(out),
        "layers_kept": keep,
        "teacher_layers": int(teacher.config.num_hidden_layers),
        "texts": {"train": len(train), "held_aside": len(held)},
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "max_tokens": config.max_tokens,
        "seconds": round(time.perf_counter() - started, 1),
        "history": history,
        **history[-1],
    }
    (out / "distill.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def held_aside_cosine(
    teacher: Any, student: Any, batch: Any, texts: Sequence[str]
) -> dict[str, float]:
    """Cosine of the student's embeddings to the teacher's on ``texts``: mean and lowest."""
    import torch

    student.eval()
    cosines: list[np.ndarray] = []
    with torch.no_grad():
        for i in range(0, len(texts), 64):
            enc = batch(texts[i : i + 64])
            mask = enc["attention_mask"]
            s = _pooled(student(**enc).last_hidden_state, mask)
            t = _pooled(teacher(**enc).last_hidden_state, mask)
            cosines.append((s * t).sum(dim=-1).numpy())
    values = np.concatenate(cosines)
    return {
        "held_aside_cosine_mean": round(float(values.mean()), 4),
        "held_aside_cosine_min": round(float(values.min()), 4),
    }
