"""Classifiers on the document path: zero-shot, trained heads and fine-tuned encoders.

Every classifier reads one :class:`HeadInput` per batch. Zero-shot classifiers and trained
heads (``--mode head``) only read the pooled embedding of the shared encoder pass, so they
cost a small matrix multiply each; a fine-tuned classifier (``--mode finetune``) changed the
encoder's weights and runs its own pass, on the shared token ids when its tokenizer is the
shared one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream_aimass.models.encoder import Encoder, ModelLoadError
from stream_aimass.models.library import ModelInfo, read_model, refuse_pickle, resolve_model
from stream_aimass.records import Classification, ModelRef

log = logging.getLogger("stream_aimass.models")

HEAD_FILE = "head.safetensors"
ENCODER_SUBDIR = "encoder"
HEADS_SUBDIR = "heads"  # multitask models: heads/<head>.safetensors beside encoder/
DEFAULT_ZERO_SHOT_THRESHOLD = 0.35


@dataclass(frozen=True, slots=True)
class HeadInput:
    """What one shared encoder pass gives the classifiers, in document order."""

    embeddings: np.ndarray  # (n, dim) unit-norm pooled embeddings
    ids: list[list[int]]  # the shared tokenizer's ids
    texts: list[str]


class Classifier(ABC):
    """One classifier: a name (its key in settings), a model version, labels."""

    name: str
    model: ModelRef
    labels: list[str]
    multi_label: bool = False
    thresholds: np.ndarray | None = None  # multi-label: one per label
    shared_pass: bool = True  # False when it runs an encoder pass of its own

    @abstractmethod
    def scores(self, batch: HeadInput) -> np.ndarray:
        """(n, labels) scores: probabilities for trained heads, cosines for zero-shot."""

    def predict(self, scores: np.ndarray) -> list[tuple[str, ...]]:
        """Predicted labels per row: the top one, or every label over its threshold."""
        if not self.multi_label:
            return [(self.labels[i],) for i in np.argmax(scores, axis=1).tolist()]
        thresholds = self.thresholds if self.thresholds is not None else 0.5
        passed = scores >= thresholds
        return [tuple(self.labels[j] for j in np.flatnonzero(row)) for row in passed]

    def classify(self, batch: HeadInput) -> list[Classification]:
        scores = self.scores(batch)
        predicted = self.predict(scores)
        tops = np.argmax(scores, axis=1).tolist()
        rounded = np.round(scores, 4).tolist()
        return [
            Classification(
                classifier=self.name,
                model=self.model,
                multi_label=self.multi_label,
                labels=self.labels,
                scores=rounded[i],
                predicted=predicted[i],
                top=self.labels[tops[i]],
            )
            for i in range(len(rounded))
        ]

    def warmup(self, encoder: Encoder) -> None:
        """Run once on a tiny batch so the first real batch pays no load cost."""
        texts = ["warm up the classifier", "a second warm-up sentence"]
        ids = encoder.tokenize(texts)
        self.scores(HeadInput(encoder.encode_ids(ids).embeddings, ids, texts))

    def describe(self) -> dict[str, Any]:
        return {
            "classifier": self.name,
            "model": self.model.name,
            "version": self.model.version,
            "kind": type(self).__name__,
            "labels": len(self.labels),
            "multi_label": self.multi_label,
            "shared_pass": self.shared_pass,
        }


class ZeroShotClassifier(Classifier):
    """Labels described in words; each description is embedded once at start-up.

    Scores are cosine similarities in [-1, 1]; multi-label keeps every label whose cosine
    reaches ``threshold``. The version hashes the descriptions and the encoder version.
    """

    def __init__(
        self,
        encoder: Encoder,
        labels: Mapping[str, str],
        *,
        name: str = "zero-shot",
        multi_label: bool = False,
        threshold: float = DEFAULT_ZERO_SHOT_THRESHOLD,
    ) -> None:
        if not labels:
            raise ValueError("a zero-shot classifier needs at least one label")
        self.name = name
        self.labels = list(labels)
        self.multi_label = multi_label
        self.thresholds = np.full(len(self.labels), threshold, dtype=np.float32)
        self.prototypes = encoder.encode_texts(list(labels.values()))  # (L, dim), unit norm
        digest = hashlib.sha256(
            json.dumps([dict(labels), encoder.version], sort_keys=True).encode()
        ).hexdigest()[:12]
        self.model = ModelRef(f"zero-shot:{name}", digest)

    def scores(self, batch: HeadInput) -> np.ndarray:
        result: np.ndarray = batch.embeddings @ self.prototypes.T
        return result


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    result: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return result


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    result: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))
    return result


@dataclass(frozen=True, slots=True)
class LoadedHead:
    """A trained head's weights and metadata, and its own encoder in finetune mode."""

    info: ModelInfo
    weight: np.ndarray  # (outputs, inputs) float32
    bias: np.ndarray
    encoder: Encoder | None  # None: the head reads the shared encoder's pass
    file: Path  # the head's safetensors file


def save_head(folder: Path, weight: np.ndarray, bias: np.ndarray, *, file: str = HEAD_FILE) -> None:
    """Write a linear head as safetensors (what :func:`load_head` reads)."""
    from safetensors.numpy import save_file

    save_file(
        {"weight": np.ascontiguousarray(weight, dtype=np.float32),
         "bias": np.ascontiguousarray(bias, dtype=np.float32)},
        str(folder / file),
    )  # fmt: skip


def head_names(info: ModelInfo, kind: str | None = None) -> list[str]:
    """The heads of a multitask model (of one kind, if given), in training order."""
    heads = info.meta.get("heads") or {}
    order = [str(n) for n in info.meta.get("head_order") or []] or sorted(heads)
    return [n for n in order if n in heads and (kind is None or heads[n].get("kind") == kind)]


def head_view(info: ModelInfo, head: str | None, kind: str) -> ModelInfo:
    """One head of a multitask model, seen as a single-task model of ``kind``.

    ``head`` None picks the model's only head of that kind. Its name is ``NAME/HEAD``
    (written on rows), its version the multitask model's; ``serving_encoder`` is the
    version of the encoder the head was trained with, which the worker must serve for
    the head to read the shared pass.
    """
    names = head_names(info)
    if head is None:
        of_kind = head_names(info, kind)
        if len(of_kind) != 1:
            raise ModelLoadError(
                f"{info.path} is a multitask model with {len(of_kind)} {kind} heads "
                f'({", ".join(names) or "none"}): name one (--head, or "head" in the spec)'
            )
        head = of_kind[0]
    if head not in names:
        raise ModelLoadError(f"{info.path}: no head {head!r} (heads: {', '.join(names) or 'none'})")
    meta = dict(info.meta["heads"][head])
    if meta.get("kind") != kind:
        raise ModelLoadError(f"head {head!r} of {info.path} is a {meta.get('kind')!r} head, "
                             f"not a {kind} head")  # fmt: skip
    meta |= {
        "name": f"{info.name}/{head}", "version": info.version, "mode": "multitask",
        "head": head, "base_encoder": info.meta.get("base_encoder") or {},
        "serving_encoder": (info.meta.get("encoder") or {}).get("version"),
    }  # fmt: skip
    return ModelInfo(info.path, meta["name"], kind, info.version, info.created, meta)


def load_head(path: Path, kind: str, shared: Encoder, head: str | None = None) -> LoadedHead:
    """Load a head trained by ``train classifier``, ``train ner`` or ``train multitask``.

    Refuses pickle weights and a model of another kind. A ``head``-mode model must have
    been trained on this worker's encoder version (it reads that encoder's pass); a
    ``finetune``-mode model loads its own encoder, on the shared device and dtype. A head
    of a multitask model (``head``: its name) reads the shared pass when the worker
    serves that model's encoder, and otherwise runs that encoder as its own pass.
    """
    from safetensors.numpy import load_file

    refuse_pickle(path)
    info = read_model(path)
    if info.kind == "multitask":
        info = head_view(info, head, kind)
        head_file = path / HEADS_SUBDIR / f"{info.meta['head']}.safetensors"
    elif head is not None:
        raise ModelLoadError(
            f"{path} is a {info.kind} model without named heads (a head is named only in "
            "a multitask model)"
        )
    else:
        head_file = path / HEAD_FILE
    if info.kind != kind:
        raise ModelLoadError(f"{path} is a {info.kind!r} model, not a {kind} model")
    if not head_file.is_file():
        raise ModelLoadError(f"{path} has no {head_file.relative_to(path)}")
    tensors = load_file(str(head_file))
    encoder = None
    if info.mode == "multitask":
        if info.meta.get("serving_encoder") != shared.version:
            log.warning(
                "%s: this worker's encoder is not %s's, so the head runs that encoder as a "
                "pass of its own; serve the multitask model as the shared encoder "
                "(AIMASS_MODEL_DIR=%s) for one pass",
                info.name,
                path.name,
                path,
            )
            encoder = Encoder(
                path / ENCODER_SUBDIR, device=shared.device, dtype=shared.dtype,
                max_tokens=shared.max_tokens, name=info.name,
            )  # fmt: skip
    elif info.mode == "finetune":
        encoder = Encoder(
            path / ENCODER_SUBDIR,
            device=shared.device,
            dtype=shared.dtype,
            max_tokens=shared.max_tokens,
            name=info.name,
        )
    elif (base := (info.meta.get("base_encoder") or {}).get("version")) != shared.version:
        raise ModelLoadError(
            f"{path} is a head trained on encoder version {base}; this worker's encoder "
            f"is {shared.name} version {shared.version} (retrain it, or use --mode finetune)"
        )
    return LoadedHead(
        info, tensors["weight"].astype(np.float32), tensors["bias"].astype(np.float32), encoder,
        head_file,
    )  # fmt: skip


class TrainedClassifier(Classifier):
    """A linear head trained by ``stream-aimass train classifier``.

    ``--mode head``: the head reads the shared pass. ``--mode finetune``: the model
    directory carries its own encoder, run as a second pass.
    """

    def __init__(
        self,
        name: str,
        path: Path,
        shared: Encoder,
        *,
        threshold: float | None = None,
        head_name: str | None = None,
    ) -> None:
        head = load_head(path, "classifier", shared, head_name)
        info = head.info
        head_file = head.file
        self.weight, self.bias, self.encoder = head.weight, head.bias, head.encoder
        self.name = name
        self.path = path
        self.info = info
        self.labels = info.labels
        self.model = ModelRef(info.name, info.version)
        self.multi_label = bool(info.meta.get("multi_label", False))
        if self.weight.shape[0] != len(self.labels):
            raise ModelLoadError(
                f"{head_file}: {self.weight.shape[0]} outputs for {len(self.labels)} labels"
            )
        if self.multi_label:
            saved = info.meta.get("thresholds") or {}
            self.thresholds = np.array(
                [float(saved.get(label, 0.5)) for label in self.labels], dtype=np.float32
            )
            if threshold is not None:
                self.thresholds[:] = threshold
        self.reuse_ids = True
        if self.encoder is not None:
            self.shared_pass = False
            base = info.meta.get("base_encoder") or {}
            # Same base weights -> same tokenizer files -> the shared ids can be reused.
            self.reuse_ids = base.get("version") == shared.version
        dim = self.encoder.dim if self.encoder is not None else shared.dim
        if self.weight.shape[1] != dim:
            raise ModelLoadError(
                f"{head_file} expects {self.weight.shape[1]}-d embeddings, the encoder "
                f"gives {dim}-d (trained on another base encoder?)"
            )

    def scores(self, batch: HeadInput) -> np.ndarray:
        embeddings = batch.embeddings
        if self.encoder is not None:
            ids = batch.ids if self.reuse_ids else self.encoder.tokenize(batch.texts)
            embeddings = self.encoder.encode_ids(ids).embeddings
        logits = embeddings @ self.weight.T + self.bias
        return _sigmoid(logits) if self.multi_label else _softmax(logits)


_ZERO_SHOT_KEYS = {"labels", "multi_label", "threshold"}
_TRAINED_KEYS = {"model", "threshold", "head"}


def load_classifier(name: str, spec: Any, encoder: Encoder, models_dir: Path) -> Classifier:
    """Build the classifier ``spec`` describes (one entry of the ``classifiers`` setting).

    A spec is a model reference (path, ``NAME`` or ``NAME@VERSION`` in the models
    directory), ``{"model": REF, "threshold": T, "head": NAME}`` (``head``: one head of a
    multitask model), or a zero-shot classifier
    ``{"labels": {label: description} | [labels], "multi_label": bool, "threshold": T}``.
    """
    if isinstance(spec, str):
        spec = {"model": spec}
    if not isinstance(spec, dict):
        raise ModelLoadError(f"classifier {name!r}: expected a model reference or an object")
    if "labels" in spec:
        unknown = set(spec) - _ZERO_SHOT_KEYS
        if unknown:
            raise ModelLoadError(f"classifier {name!r}: unknown keys {sorted(unknown)}")
        labels = spec["labels"]
        if isinstance(labels, list):
            labels = {str(x): str(x) for x in labels}
        if not isinstance(labels, dict) or not labels:
            raise ModelLoadError(f"classifier {name!r}: labels must be a non-empty object")
        return ZeroShotClassifier(
            encoder,
            {str(k): str(v) for k, v in labels.items()},
            name=name,
            multi_label=bool(spec.get("multi_label", False)),
            threshold=float(spec.get("threshold", DEFAULT_ZERO_SHOT_THRESHOLD)),
        )
    unknown = set(spec) - _TRAINED_KEYS
    if unknown or "model" not in spec:
        raise ModelLoadError(
            f"classifier {name!r}: expected {{'model': REF}} or {{'labels': ...}}, got "
            f"keys {sorted(spec)}"
        )
    path = resolve_model(str(spec["model"]), models_dir)
    threshold = spec.get("threshold")
    head = spec.get("head")
    return TrainedClassifier(
        name, path, encoder,
        threshold=float(threshold) if threshold is not None else None,
        head_name=str(head) if head is not None else None,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ClassifierSet:
    """The classifiers one batch is served by: swapped whole, never changed in place."""

    classifiers: tuple[Classifier, ...]
    fingerprint: str = ""
    loaded_at: float = 0.0

    def classify(self, batch: HeadInput) -> list[list[Classification]]:
        """Per document, every classifier's result (in configuration order)."""
        per_classifier = [c.classify(batch) for c in self.classifiers]
        return (
            [list(row) for row in zip(*per_classifier, strict=True)]
            if per_classifier
            else [[] for _ in range(len(batch.texts))]
        )

    def models(self) -> dict[str, str]:
        return {c.model.name: c.model.version for c in self.classifiers}

    def describe(self) -> list[dict[str, Any]]:
        return [c.describe() for c in self.classifiers]


def spec_fingerprint(specs: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(specs, sort_keys=True, default=str).encode()).hexdigest()[:12]


def load_classifier_set(
    specs: Mapping[str, Any], encoder: Encoder, models_dir: Path, *, warm: bool = True
) -> ClassifierSet:
    """Load (and warm up) every classifier of ``specs``; any failure fails the whole set."""
    classifiers = []
    for name, spec in specs.items():
        classifier = load_classifier(name, spec, encoder, models_dir)
        if warm:
            classifier.warmup(encoder)
        log.info("classifier %s: %s", name, classifier.describe())
        classifiers.append(classifier)
    return ClassifierSet(tuple(classifiers), spec_fingerprint(specs), time.time())
