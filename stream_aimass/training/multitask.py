"""One encoder fine-tuned for several tasks at once, served as the shared encoder.

``train multitask`` trains ONE encoder with a token head per NER data set and a sequence
head per classifier data set. Every head reads what the worker computes once per
document: classifier heads the pooled (mean, unit-norm) embedding, token heads the last
layer's token states plus the word-shape features. A distillation term keeps the pooled
embedding close to the frozen original's (``1 - cos`` to the embedding the original
encoder gives the same token ids, computed once before training), so what reads the
embedding without a head of its own (zero-shot labels, item vectors and recommendations,
the linker's document vector) keeps working.

Each epoch passes once over every classifier set and ``ner_passes`` times over every NER
set (token tasks want more passes: the separate recipes run 8 NER epochs and 4
classifier epochs), the batches of all tasks shuffled together. Classifier heads start
from a linear probe on the original embeddings (LP-FT, as ``train classifier``). The epoch
kept is the one with the best mean dev score over the tasks.

The result is one model version (kind ``multitask``)::

    model.json                    heads: name -> kind, labels, metrics, thresholds...
    encoder/                      the fine-tuned encoder (Hugging Face, safetensors)
    heads/<name>.safetensors      one linear head per task
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stream_aimass.entities.decoding import word_tags
from stream_aimass.entities.spans import SHAPE_FEATURES
from stream_aimass.evaluation.classifier import (
    classification_report,
    cross_fitted_predictions,
    predict_labels,
    tune_thresholds,
)
from stream_aimass.models.classify import ENCODER_SUBDIR, HEADS_SUBDIR, save_head
from stream_aimass.models.encoder import Encoder, check_model_dir, cpu_has_native_bf16
from stream_aimass.models.encoder import weights_version as encoder_version
from stream_aimass.models.library import ModelInfo, publish, staging_dir
from stream_aimass.training.classifier import (
    THRESHOLD_FOLDS,
    probabilities,
    targets,
    train_head,
)
from stream_aimass.training.classifier import TrainConfig as HeadConfig
from stream_aimass.training.conll import detect_scheme, entity_types
from stream_aimass.training.data import LabelledTexts
from stream_aimass.training.multitask_tasks import ClassifierTask as ClassifierTask
from stream_aimass.training.multitask_tasks import MultitaskConfig as MultitaskConfig
from stream_aimass.training.multitask_tasks import NerTask as NerTask
from stream_aimass.training.multitask_tasks import (
    PreparedTask,
    check_names,
    epoch_plan,
    prepare_tasks,
    teacher_embeddings,
)
from stream_aimass.training.ner import IGNORE, padded_batch, sentence_report
from stream_aimass.training.reporting import ProbeReporter, SilentReporter, TrainingReporter

if TYPE_CHECKING:
    import torch

log = logging.getLogger("stream_aimass.training")


class _Net:
    """The encoder and one head per task; ``forward`` is the worker's computation."""

    def __init__(self, encoder_dir: Path, tasks: list[PreparedTask], config: MultitaskConfig):
        import torch
        from transformers import AutoModel

        self.encoder = AutoModel.from_pretrained(
            str(encoder_dir), use_safetensors=True, trust_remote_code=False, local_files_only=True
        )
        hidden = int(self.encoder.config.hidden_size)
        self.layers = {
            t.name: torch.nn.Linear(
                hidden + (SHAPE_FEATURES if t.kind == "ner" else 0), len(t.labels)
            )
            for t in tasks
        }
        self.heads = torch.nn.ModuleDict(self.layers)
        self.autocast = config.dtype == "bf16" or (config.dtype == "auto" and cpu_has_native_bf16())
        self.pad_id = 0

    def train(self, on: bool) -> None:
        self.encoder.train(on)
        self.heads.train(on)

    def forward(
        self, ids: list[list[int]], shapes: list[np.ndarray] | None, head: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(head logits, pooled unit-norm embeddings) of a batch of token ids."""
        import torch

        t, mask = padded_batch(ids, self.pad_id)
        width = t.shape[1]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            hidden = self.encoder(input_ids=t, attention_mask=mask).last_hidden_state
        hidden = hidden.float()
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        if shapes is None:
            return self.layers[head](pooled), pooled
        features = torch.zeros((len(ids), width, SHAPE_FEATURES))
        for row, shape in enumerate(shapes):
            features[row, : len(shape)] = torch.from_numpy(shape)
        return self.layers[head](torch.cat([hidden, features], dim=-1)), pooled

    def state(self) -> dict[str, dict[str, Any]]:
        return {
            "encoder": {k: v.detach().clone() for k, v in self.encoder.state_dict().items()},
            "heads": {k: v.detach().clone() for k, v in self.heads.state_dict().items()},
        }

    def load(self, state: dict[str, dict[str, Any]]) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.heads.load_state_dict(state["heads"])


def _predict(
    net: _Net, task: PreparedTask, ids: list[list[int]], shapes: list[np.ndarray] | None
) -> tuple[list[np.ndarray], np.ndarray]:
    """Per example its head logits, and the pooled embeddings, in input order."""
    import torch

    net.train(False)
    logits: list[np.ndarray] = [np.zeros(0)] * len(ids)
    pooled = np.zeros((len(ids), net.encoder.config.hidden_size), dtype=np.float32)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            chunk = order[start : start + 64]
            out, emb = net.forward(
                [ids[i] for i in chunk],
                [shapes[i] for i in chunk] if shapes is not None else None,
                task.name,
            )
            pooled[chunk] = emb.numpy()
            for k, i in enumerate(chunk):
                logits[i] = out[k, : len(ids[i])].numpy() if shapes is not None else out[k].numpy()
    return logits, pooled


def _dev_scores(
    net: _Net, prepared: list[PreparedTask], tasks: Sequence[NerTask | ClassifierTask]
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """Each task's dev report, and the dev texts' pooled embeddings (for the cosines)."""
    reports: dict[str, dict[str, Any]] = {}
    pooled: dict[str, np.ndarray] = {}
    for prep, task in zip(prepared, tasks, strict=True):
        if task.dev is None:
            continue
        if isinstance(task, NerTask):
            logits, pooled[prep.name] = _predict(net, prep, prep.dev_ids, prep.dev_shapes)
            tags = [
                word_tags(lg, firsts, prep.labels)
                for lg, firsts in zip(logits, prep.dev_firsts, strict=True)
            ]
            reports[prep.name] = sentence_report(tags, task.dev)
        else:
            logits, pooled[prep.name] = _predict(net, prep, prep.dev_ids, None)
            probs = probabilities(np.stack(logits), prep.multi_label)
            reports[prep.name] = {"probs": probs}
    return reports, pooled


def _classifier_report(
    probs: np.ndarray, dev: LabelledTexts, labels: list[str], thresholds: np.ndarray | None
) -> dict[str, Any]:
    predicted = predict_labels(probs, labels, dev.multi_label, thresholds)
    return classification_report(list(dev.labels), predicted, labels, dev.multi_label)


def _task_score(report: dict[str, Any], task: NerTask | ClassifierTask) -> float:
    if isinstance(task, NerTask):
        return float(report["f1"])
    assert task.dev is not None
    full = _classifier_report(report["probs"], task.dev, task.train.label_names, None)
    report.update({k: full[k] for k in ("accuracy", "macro_f1", "micro_f1")})
    return float(full["macro_f1"] if task.dev.multi_label else full["accuracy"])


def _step_loss(net: _Net, prep: PreparedTask, idx: list[int], config: MultitaskConfig) -> Any:
    import torch
    import torch.nn.functional as F

    ids = [prep.ids[i] for i in idx]
    shapes = [prep.shapes[i] for i in idx] if prep.kind == "ner" else None
    logits, pooled = net.forward(ids, shapes, prep.name)
    if prep.kind == "ner":
        target = torch.full(logits.shape[:2], IGNORE, dtype=torch.long)
        for k, i in enumerate(idx):
            target[k, : len(prep.y[i])] = torch.tensor(prep.y[i])
        task_loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE
        )
    elif prep.multi_label:
        task_loss = F.binary_cross_entropy_with_logits(logits, torch.from_numpy(prep.y[idx]))
    else:
        task_loss = F.cross_entropy(logits, torch.from_numpy(prep.y[idx]))
    teacher = torch.from_numpy(prep.teacher[idx])
    drift = (1.0 - (pooled * teacher).sum(dim=-1)).mean()
    return task_loss + config.distill_weight * drift


def _cosines(pooled: np.ndarray, teacher: np.ndarray) -> dict[str, float]:
    values = (pooled * teacher).sum(axis=1)
    return {"mean": round(float(values.mean()), 4), "min": round(float(values.min()), 4)}


def train_multitask(
    tasks: Sequence[NerTask | ClassifierTask],
    out: Path,
    *,
    name: str,
    encoder_dir: Path,
    encoder_name: str,
    config: MultitaskConfig,
    held_aside: Sequence[str] = (),
    reporter: TrainingReporter | None = None,
) -> ModelInfo:
    """Train the multi-task model and write a new version under ``out``.

    ``held_aside``: texts never trained on, on which the cosine of the new encoder's
    embeddings to the original's is reported (beside the dev texts').
    """
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    reporter = reporter or SilentReporter()
    check_names(tasks)
    check_model_dir(encoder_dir)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    original = Encoder(encoder_dir, device="cpu", dtype=config.dtype, max_tokens=config.max_tokens)
    prepared = prepare_tasks(tasks, original, config, reporter)
    net = _Net(encoder_dir, prepared, config)
    net.pad_id = original.pad_id
    for prep in prepared:  # LP-FT: classifier heads start from a probe on the original
        if prep.kind != "classifier":
            continue
        weight, bias, _ = train_head(
            prep.teacher, prep.y, None, None, prep.labels, prep.multi_label,
            HeadConfig(mode="head", seed=config.seed), ProbeReporter(reporter),
        )  # fmt: skip
        with torch.no_grad():
            net.layers[prep.name].weight.copy_(torch.from_numpy(weight))
            net.layers[prep.name].bias.copy_(torch.from_numpy(bias))
    head_params = [
        {
            "params": net.layers[p.name].parameters(),
            "lr": config.ner_head_lr if p.kind == "ner" else config.head_lr,
        }
        for p in prepared
    ]
    optimizer = torch.optim.AdamW(
        [{"params": net.encoder.parameters(), "lr": config.encoder_lr}, *head_params],
        weight_decay=config.weight_decay,
    )
    rng = random.Random(config.seed)
    steps = config.epochs * len(epoch_plan(prepared, config, random.Random(0)))
    warmup = max(1, steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1.0 - s / steps)
    )
    dev_teacher = {p.name: teacher_embeddings(original, p.dev_ids) for p in prepared if p.dev_ids}
    history: list[dict[str, Any]] = []
    best_score, best_state, best_epoch = -math.inf, net.state(), 0
    reporter.start("multitask", steps)
    for epoch in range(1, config.epochs + 1):
        net.train(True)
        total = dict.fromkeys((p.name for p in prepared), 0.0)
        for t, idx in epoch_plan(prepared, config, rng):
            loss = _step_loss(net, prepared[t], idx, config)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.encoder.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            total[prepared[t].name] += float(loss.item()) * len(idx)
            reporter.advance()
        reports, pooled = _dev_scores(net, prepared, tasks)
        entry: dict[str, Any] = {"epoch": epoch}
        scores = []
        for prep, task in zip(prepared, tasks, strict=True):
            row: dict[str, Any] = {
                "train_loss": round(total[prep.name] / (len(prep.ids) * (
                    config.ner_passes if prep.kind == "ner" else 1)), 4),
            }  # fmt: skip
            if prep.name in reports:
                scores.append(_task_score(reports[prep.name], task))
                keys = ("precision", "recall", "f1") if prep.kind == "ner" else (
                    "accuracy", "macro_f1")  # fmt: skip
                row |= {k: round(float(reports[prep.name][k]), 4) for k in keys}
                row["dev_cosine"] = _cosines(pooled[prep.name], dev_teacher[prep.name])
            entry[prep.name] = row
        score = float(np.mean(scores)) if scores else float(epoch)
        entry["mean_dev_score"] = round(score, 4)
        if score > best_score:
            best_score, best_state, best_epoch = score, net.state(), epoch
        history.append(entry)
        reporter.epoch(epoch, entry)
    net.load(best_state)
    staging = staging_dir(out)
    (staging / HEADS_SUBDIR).mkdir()
    net.encoder.save_pretrained(str(staging / ENCODER_SUBDIR), safe_serialization=True)
    original.tokenizer.save_pretrained(str(staging / ENCODER_SUBDIR))
    reports, pooled = _dev_scores(net, prepared, tasks)
    heads: dict[str, Any] = {}
    for prep, task in zip(prepared, tasks, strict=True):
        layer = net.layers[prep.name]
        save_head(
            staging / HEADS_SUBDIR, layer.weight.detach().numpy(), layer.bias.detach().numpy(),
            file=f"{prep.name}.safetensors",
        )  # fmt: skip
        heads[prep.name] = _head_meta(prep, task, reports.get(prep.name), config)
        if prep.name in pooled:
            heads[prep.name]["metrics"]["dev_cosine_to_original"] = _cosines(
                pooled[prep.name], dev_teacher[prep.name]
            )
    closeness: dict[str, Any] = {}
    if held_aside:
        texts = list(held_aside)
        held_ids = original.tokenize(texts)
        mine = Encoder(staging / ENCODER_SUBDIR, device="cpu", dtype=config.dtype,
                       max_tokens=config.max_tokens)  # fmt: skip
        closeness = {
            "texts": len(texts),
            **_cosines(teacher_embeddings(mine, held_ids), teacher_embeddings(original, held_ids)),
        }
    seconds = time.perf_counter() - started
    meta = {
        "name": name,
        "kind": "multitask",
        "mode": "multitask",
        "heads": heads,
        "head_order": list(heads),
        "labels": [],
        "own_encoder_pass": False,
        "note": "one fine-tuned encoder, one head per task: serve it as the shared encoder "
        "(AIMASS_MODEL_DIR=<this version>) and every head reads the document's one pass",
        "encoder": {"version": encoder_version(staging / ENCODER_SUBDIR)},
        "base_encoder": {
            "name": encoder_name, "version": original.version, "path": str(encoder_dir)
        },
        "metrics": {
            "best_epoch": best_epoch,
            "mean_dev_score": round(best_score, 4) if scores else None,
            "held_aside_cosine_to_original": closeness,
        },
        "training": {
            "seconds": round(seconds, 1),
            "epochs": config.epochs,
            "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
            "recipe": "one encoder, a head per task, batches of all tasks shuffled together; "
            "classifier heads from a linear probe (LP-FT); pooled embedding distilled to the "
            "original's (1 - cos)",
            "history": history,
        },
    }  # fmt: skip
    return publish(staging, meta)


def _head_meta(
    prep: PreparedTask,
    task: NerTask | ClassifierTask,
    report: dict[str, Any] | None,
    config: MultitaskConfig,
) -> dict[str, Any]:
    """What ``model.json`` says about one head (the fields a single-task model's has)."""
    if isinstance(task, NerTask):
        metrics: dict[str, Any] = {}
        if report is not None:
            metrics = {k: report[k] for k in ("precision", "recall", "f1", "per_type")}
        return {
            "kind": "ner", "labels": prep.labels, "entity_types": entity_types(task.train),
            "scheme_in": detect_scheme(task.train), "features": ["token_states", "word_shape"],
            "context_tokens": config.ner_context,
            "data": {"train": str(task.train_path or ""), "train_sentences": len(task.train),
                     "dev": str(task.dev_path or ""), "dev_sentences": len(task.dev or [])},
            "metrics": metrics,
        }  # fmt: skip
    meta: dict[str, Any] = {
        "kind": "classifier", "labels": prep.labels, "multi_label": prep.multi_label,
        "data": {"train": str(task.train.path or ""), "train_sha256": task.train.data_hash,
                 "train_examples": len(task.train.texts),
                 "dev": str(task.dev.path or "") if task.dev is not None else "",
                 "dev_examples": len(task.dev.texts) if task.dev is not None else 0},
        "metrics": {},
    }  # fmt: skip
    if report is None or task.dev is None:
        return meta
    probs = report["probs"]
    if prep.multi_label:
        gold = targets(task.dev, prep.labels)
        thresholds = tune_thresholds(probs, gold)
        held = cross_fitted_predictions(probs, gold, prep.labels, THRESHOLD_FOLDS, config.seed)
        full = classification_report(list(task.dev.labels), held, prep.labels, True)
        meta["thresholds"] = {
            label: round(float(t), 4) for label, t in zip(prep.labels, thresholds, strict=True)
        }
    else:
        full = _classifier_report(probs, task.dev, prep.labels, None)
    meta["metrics"] = {k: full[k] for k in ("accuracy", "macro_f1", "micro_f1", "weighted_f1")}
    meta["metrics"]["dev_examples"] = full["examples"]
    meta["per_class"] = full.get("per_class", {})
    return meta
