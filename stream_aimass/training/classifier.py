"""Training and evaluating classifiers on the shared encoder.

``head``: the encoder is frozen; texts are embedded once (the same mean-pooled, unit-norm
embedding the worker computes) and a linear head is trained on them: seconds to minutes
on a CPU, and in the worker it costs one small matrix multiply on the shared pass.

``finetune``: the encoder is trained together with the head. Better accuracy, but the
result has its own encoder weights, so the worker runs it as a second pass.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from stream_aimass.evaluation.classifier import (
    classification_report,
    cross_fitted_predictions,
    predict_labels,
    tune_thresholds,
)
from stream_aimass.models.classify import ENCODER_SUBDIR, TrainedClassifier, save_head
from stream_aimass.models.encoder import (
    Encoder,
    check_model_dir,
    cpu_has_native_bf16,
    weights_version,
)
from stream_aimass.models.library import ModelInfo, publish, staging_dir
from stream_aimass.training.data import LabelledTexts, check_trainable
from stream_aimass.training.reporting import ProbeReporter, SilentReporter, TrainingReporter

if TYPE_CHECKING:
    import torch

log = logging.getLogger("stream_aimass.training")

Mode = Literal["head", "finetune"]


@dataclass(frozen=True, slots=True)
class TrainConfig:
    mode: Mode = "head"
    epochs: int | None = None  # None: 30 for head, 4 for finetune
    batch_size: int | None = None  # None: 64 for head, 32 for finetune
    lr: float | None = None  # head learning rate (None: 3e-3)
    encoder_lr: float = 5e-5  # finetune only
    weight_decay: float = 1e-4
    seed: int = 13
    max_tokens: int = 128
    device: str = "auto"
    dtype: str = "auto"
    threads: int = 0

    @property
    def resolved_epochs(self) -> int:
        return self.epochs if self.epochs is not None else (30 if self.mode == "head" else 4)

    @property
    def resolved_batch_size(self) -> int:
        if self.batch_size is not None:
            return self.batch_size
        return 64 if self.mode == "head" else 32


@dataclass(slots=True)
class EpochLog:
    epochs: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = -1.0


THRESHOLD_FOLDS = 5  # cross-fitting folds of the multi-label dev scores


def targets(data: LabelledTexts, labels: list[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    if data.multi_label:
        y = np.zeros((len(data.texts), len(labels)), dtype=np.float32)
        for row, names in enumerate(data.labels):
            for name in names:
                if name in index:
                    y[row, index[name]] = 1.0
        return y
    return np.array([index.get(names[0], -1) for names in data.labels], dtype=np.int64)


def _score_key(report: dict[str, Any], multi_label: bool) -> float:
    return float(report["macro_f1"] if multi_label else report["accuracy"])


def _short(report: dict[str, Any]) -> dict[str, Any]:
    return {k: round(float(report[k]), 4) for k in ("accuracy", "macro_f1", "micro_f1")}


def probabilities(logits: np.ndarray, multi_label: bool) -> np.ndarray:
    if multi_label:
        result: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))
        return result
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    out: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return out


def _dev_report(
    probs: np.ndarray, dev: LabelledTexts, labels: list[str], thresholds: np.ndarray | None
) -> dict[str, Any]:
    predicted = predict_labels(probs, labels, dev.multi_label, thresholds)
    return classification_report(list(dev.labels), predicted, labels, dev.multi_label)


def embed_texts(
    encoder: Encoder, texts: list[str], reporter: TrainingReporter, batch_size: int = 64
) -> np.ndarray:
    """Embeddings exactly as the worker computes them, length-sorted for speed."""
    ids = encoder.tokenize(texts)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    reporter.start("embed", len(texts))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        out[chunk] = encoder.encode_ids([ids[i] for i in chunk]).embeddings
        reporter.advance(len(chunk))
    return out


def _loss(logits: torch.Tensor, target: torch.Tensor, multi_label: bool) -> torch.Tensor:
    import torch.nn.functional as F

    if multi_label:
        return F.binary_cross_entropy_with_logits(logits, target)
    return F.cross_entropy(logits, target)


def _finish_epoch(
    log_: EpochLog,
    epoch: int,
    probs: np.ndarray | None,
    dev: LabelledTexts | None,
    labels: list[str],
    loss: float,
    reporter: TrainingReporter,
) -> bool:
    """Record the epoch; True when it is the best so far (its weights should be kept)."""
    entry: dict[str, Any] = {"epoch": epoch, "train_loss": round(loss, 4)}
    better = dev is None  # without a dev set the last epoch is kept
    if probs is not None and dev is not None:
        report = _dev_report(probs, dev, labels, None)
        entry.update(_short(report))
        score = _score_key(report, dev.multi_label)
        if score > log_.best_score:
            log_.best_score, log_.best_epoch, better = score, epoch, True
    else:
        log_.best_epoch = epoch
    log_.epochs.append(entry)
    reporter.epoch(epoch, entry)
    return better


def train_head(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_dev: np.ndarray | None,
    dev: LabelledTexts | None,
    labels: list[str],
    multi_label: bool,
    config: TrainConfig,
    reporter: TrainingReporter,
) -> tuple[np.ndarray, np.ndarray, EpochLog]:
    import torch

    torch.manual_seed(config.seed)
    head = torch.nn.Linear(x_train.shape[1], len(labels))
    optimizer = torch.optim.AdamW(
        head.parameters(), lr=config.lr or 3e-3, weight_decay=config.weight_decay
    )
    xs = torch.from_numpy(x_train)
    ys = torch.from_numpy(y_train)
    generator = torch.Generator().manual_seed(config.seed)
    epochs = config.resolved_epochs
    bs = config.resolved_batch_size
    steps = math.ceil(len(xs) / bs)
    history = EpochLog()
    best = (head.weight.detach().clone(), head.bias.detach().clone())
    reporter.start("train head", epochs * steps)
    for epoch in range(1, epochs + 1):
        head.train()
        perm = torch.randperm(len(xs), generator=generator)
        total = 0.0
        for start in range(0, len(xs), bs):
            idx = perm[start : start + bs]
            loss = _loss(head(xs[idx]), ys[idx], multi_label)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            total += loss.item() * len(idx)
            reporter.advance()
        probs = None
        if x_dev is not None:
            with torch.no_grad():
                logits = head(torch.from_numpy(x_dev)).numpy()
            probs = probabilities(logits, multi_label)
        if _finish_epoch(history, epoch, probs, dev, labels, total / len(xs), reporter):
            best = (head.weight.detach().clone(), head.bias.detach().clone())
    return best[0].numpy(), best[1].numpy(), history


class _FinetuneModel:
    """Encoder + mean pooling + unit norm + linear head: the worker's inference, trainable."""

    def __init__(self, encoder_dir: Path, labels: int, config: TrainConfig) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        check_model_dir(encoder_dir)  # pickle weights, remote code, no safetensors: refused
        self.tokenizer = AutoTokenizer.from_pretrained(
            str(encoder_dir), trust_remote_code=False, local_files_only=True
        )
        self.encoder = AutoModel.from_pretrained(
            str(encoder_dir), use_safetensors=True, trust_remote_code=False, local_files_only=True
        )
        self.head = torch.nn.Linear(int(self.encoder.config.hidden_size), labels)
        self.max_tokens = config.max_tokens
        # bf16 autocast is the fast path on CPUs with native bf16 (weights stay fp32).
        self.autocast = config.dtype == "bf16" or (config.dtype == "auto" and cpu_has_native_bf16())

    def logits(self, texts: list[str]) -> torch.Tensor:
        import torch

        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            hidden = self.encoder(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).last_hidden_state
        hidden = hidden.float()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        out: torch.Tensor = self.head(torch.nn.functional.normalize(pooled, dim=-1))
        return out

    def train(self, on: bool) -> None:
        self.encoder.train(on)
        self.head.train(on)

    def predict(self, texts: list[str], bs: int = 128) -> np.ndarray:
        import torch

        self.train(False)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.head.out_features), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), bs):
                chunk = order[start : start + bs]
                out[chunk] = self.logits([texts[i] for i in chunk]).float().numpy()
        return out


def length_bucketed(n: int, lengths: list[int], bs: int, rng: random.Random) -> Iterator[list[int]]:
    """Shuffled batches of similar length: less padding, still a random order of batches."""
    order = list(range(n))
    rng.shuffle(order)
    pool = bs * 50
    batches: list[list[int]] = []
    for start in range(0, n, pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + bs] for i in range(0, len(chunk), bs))
    rng.shuffle(batches)
    yield from batches


def _finetune(
    encoder_dir: Path,
    train: LabelledTexts,
    y_train: np.ndarray,
    dev: LabelledTexts | None,
    labels: list[str],
    config: TrainConfig,
    reporter: TrainingReporter,
    head_init: tuple[np.ndarray, np.ndarray],
) -> tuple[_FinetuneModel, EpochLog, dict[str, Any]]:
    import torch

    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    model = _FinetuneModel(encoder_dir, len(labels), config)
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(head_init[0]))
        model.head.bias.copy_(torch.from_numpy(head_init[1]))
    optimizer = torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "lr": config.encoder_lr},
            {"params": model.head.parameters(), "lr": config.lr or 1e-3},
        ],
        weight_decay=config.weight_decay,
    )
    epochs = config.resolved_epochs
    bs = config.resolved_batch_size
    steps = epochs * math.ceil(len(train.texts) / bs)
    warmup = max(1, steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1.0 - s / steps)
    )
    lengths = [len(t) for t in train.texts]
    rng = random.Random(config.seed)
    history = EpochLog()
    best: dict[str, Any] = {}
    ys = torch.from_numpy(y_train)
    reporter.start("finetune", steps)
    for epoch in range(1, epochs + 1):
        model.train(True)
        total = 0.0
        for idx in length_bucketed(len(train.texts), lengths, bs, rng):
            loss = _loss(model.logits([train.texts[i] for i in idx]), ys[idx], train.multi_label)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(idx)
            reporter.advance()
        probs = None
        if dev is not None:
            probs = probabilities(model.predict(list(dev.texts)), train.multi_label)
        loss_avg = total / len(train.texts)
        if _finish_epoch(history, epoch, probs, dev, labels, loss_avg, reporter):
            best = {
                "encoder": {k: v.detach().clone() for k, v in model.encoder.state_dict().items()},
                "head": {k: v.detach().clone() for k, v in model.head.state_dict().items()},
            }
    if best:
        model.encoder.load_state_dict(best["encoder"])
        model.head.load_state_dict(best["head"])
    return model, history, best


def train_classifier(
    train: LabelledTexts,
    dev: LabelledTexts | None,
    out: Path,
    *,
    name: str,
    encoder_dir: Path,
    encoder_name: str,
    config: TrainConfig,
    reporter: TrainingReporter | None = None,
) -> ModelInfo:
    """Train, evaluate on ``dev``, and write a new model version under ``out``."""
    reporter = reporter or SilentReporter()
    check_trainable(train)
    labels = train.label_names
    if dev is not None:
        unknown = sorted({x for names in dev.labels for x in names} - set(labels))
        if unknown:
            log.warning("dev labels absent from training data (always wrong): %s", unknown)
    multi_label = train.multi_label
    y_train = targets(train, labels)
    started = time.perf_counter()
    base_version = weights_version(encoder_dir)
    staging = staging_dir(out)
    thresholds: np.ndarray | None = None
    if config.mode == "head":
        encoder = Encoder(
            encoder_dir,
            device=config.device,
            dtype=config.dtype,
            max_tokens=config.max_tokens,
            threads=config.threads,
        )
        x_train = embed_texts(encoder, list(train.texts), reporter)
        x_dev = embed_texts(encoder, list(dev.texts), reporter) if dev is not None else None
        weight, bias, history = train_head(
            x_train, y_train, x_dev, dev, labels, multi_label, config, reporter
        )
        dev_probs = (
            probabilities(x_dev @ weight.T + bias, multi_label) if x_dev is not None else None
        )
        device, dtype = encoder.device, encoder.dtype
    else:
        # Linear probe, then fine-tune (LP-FT): a fitted head keeps the first encoder
        # updates from wrecking the pretrained features, and starts from probe accuracy.
        probe = Encoder(encoder_dir, device="cpu", dtype=config.dtype, max_tokens=config.max_tokens)
        x_train = embed_texts(probe, list(train.texts), reporter)
        del probe
        head_init = train_head(
            x_train, y_train, None, None, labels, multi_label,
            TrainConfig(mode="head", seed=config.seed), ProbeReporter(reporter),
        )[:2]  # fmt: skip
        model, history, _ = _finetune(
            encoder_dir, train, y_train, dev, labels, config, reporter, head_init
        )
        weight = model.head.weight.detach().numpy()
        bias = model.head.bias.detach().numpy()
        target = staging / ENCODER_SUBDIR
        model.encoder.save_pretrained(str(target), safe_serialization=True)
        model.tokenizer.save_pretrained(str(target))
        dev_probs = (
            probabilities(model.predict(list(dev.texts)), multi_label) if dev is not None else None
        )
        device, dtype = "cpu", "bf16" if model.autocast else "fp32"
    if multi_label and dev is not None and dev_probs is not None:
        thresholds = tune_thresholds(dev_probs, targets(dev, labels))
    save_head(staging, weight, bias)
    seconds = time.perf_counter() - started
    metrics: dict[str, Any] = {"best_epoch": history.best_epoch}
    dev_report: dict[str, Any] = {}
    if dev is not None and dev_probs is not None:
        if thresholds is None:
            dev_report = _dev_report(dev_probs, dev, labels, None)
        else:
            # The served thresholds are tuned on all of dev; the reported scores come from
            # thresholds that never saw the rows they score (cross-fitted over dev).
            held_out = cross_fitted_predictions(
                dev_probs, targets(dev, labels), labels, THRESHOLD_FOLDS, config.seed
            )
            dev_report = classification_report(list(dev.labels), held_out, labels, True)
            in_sample = _dev_report(dev_probs, dev, labels, thresholds)
            metrics["macro_f1_thresholds_tuned_on_same_rows"] = in_sample["macro_f1"]
            metrics["thresholds"] = (
                f"tuned per label on dev; scores from {THRESHOLD_FOLDS}-fold cross-fitting: "
                "each dev row predicted with thresholds tuned on the other folds"
            )
        metrics.update(
            {k: dev_report[k] for k in ("accuracy", "macro_f1", "micro_f1", "weighted_f1")}
        )
        metrics["dev_examples"] = dev_report["examples"]
    meta: dict[str, Any] = {
        "name": name,
        "kind": "classifier",
        "mode": config.mode,
        "labels": labels,
        "multi_label": multi_label,
        "own_encoder_pass": config.mode == "finetune",
        "note": (
            "fine-tuned encoder: the worker runs this model's own encoder pass"
            if config.mode == "finetune"
            else "linear head on the shared encoder pass (frozen encoder)"
        ),
        "base_encoder": {"name": encoder_name, "version": base_version, "path": str(encoder_dir)},
        "data": {
            "train": str(train.path) if train.path else "",
            "train_sha256": train.data_hash,
            "train_examples": len(train.texts),
            "dev": str(dev.path) if dev is not None and dev.path else "",
            "dev_sha256": dev.data_hash if dev is not None else "",
            "dev_examples": len(dev.texts) if dev is not None else 0,
        },
        "metrics": metrics,
        "per_class": dev_report.get("per_class", {}),
        "training": {
            "seconds": round(seconds, 1),
            "epochs": config.resolved_epochs,
            "batch_size": config.resolved_batch_size,
            "lr": config.lr or (3e-3 if config.mode == "head" else 1e-3),
            "recipe": "linear probe, then fine-tune (LP-FT)" if config.mode == "finetune" else "",
            "encoder_lr": config.encoder_lr if config.mode == "finetune" else None,
            "seed": config.seed,
            "max_tokens": config.max_tokens,
            "device": device,
            "dtype": dtype,
            "history": history.epochs,
        },
    }
    if thresholds is not None:
        meta["thresholds"] = {
            label: round(float(t), 4) for label, t in zip(labels, thresholds, strict=True)
        }
    return publish(staging, meta)


def evaluate_classifier(
    model_path: Path,
    data: LabelledTexts,
    shared: Encoder,
    batch_size: int = 64,
    *,
    head: str | None = None,
) -> dict[str, Any]:
    """The classification report of the model in ``model_path`` (``head``: one head of a
    multitask model) on ``data``."""
    from stream_aimass.models.classify import HeadInput

    classifier = TrainedClassifier("eval", model_path, shared, head_name=head)
    texts = list(data.texts)
    ids = shared.tokenize(texts)
    order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
    scores = np.zeros((len(texts), len(classifier.labels)), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        chunk_ids = [ids[i] for i in chunk]
        embeddings = (
            shared.encode_ids(chunk_ids).embeddings
            if classifier.shared_pass
            else np.zeros((len(chunk), shared.dim), dtype=np.float32)
        )
        scores[chunk] = classifier.scores(
            HeadInput(embeddings, chunk_ids, [texts[i] for i in chunk])
        )
    predicted = [tuple(p) for p in classifier.predict(scores)]
    report = classification_report(
        list(data.labels), predicted, classifier.labels, data.multi_label
    )
    report["model"] = {"name": classifier.model.name, "version": classifier.model.version}
    return report
