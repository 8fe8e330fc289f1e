"""The shared encoder: one forward pass per document, every head reads its output.

torch and transformers are imported lazily so that CLI start-up stays fast.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

log = logging.getLogger("stream_aimass.models")

WEIGHT_FILES = ("model.safetensors",)
# Weight formats that unpickle on load (arbitrary code): never loaded, and refused on sight.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")


class ModelLoadError(RuntimeError):
    """A model directory that cannot be loaded safely."""


def check_model_dir(path: Path, *, require_weights: bool = True) -> None:
    """Refuse a model directory whose loading could run code, before anything is loaded.

    Pickle-format weights (``pytorch_model.bin``, ``*.pt``, ...) are refused even next to
    safetensors, and so is remote code: any ``*.py`` file, or an ``auto_map`` in a
    ``*config.json``. ``require_weights``: there must be ``*.safetensors`` weights.
    """
    if not path.is_dir():
        raise ModelLoadError(f"{path} is not a model directory")
    files = sorted(f for f in path.rglob("*") if f.is_file())
    for file in files:
        if file.suffix.lower() in PICKLE_SUFFIXES:
            raise ModelLoadError(
                f"{file} is a pickle-format weight file: pickle weights are refused (loading "
                "them can run arbitrary code); convert the model to safetensors (e.g. "
                "`model.save_pretrained(dir, safe_serialization=True)`) and remove this file"
            )
        if file.suffix == ".py":
            raise ModelLoadError(
                f"{file} is Python code in a model directory: refused, remote code is never "
                "run (use a model whose architecture transformers ships)"
            )
    for file in files:
        if not file.name.endswith("config.json"):
            continue
        try:
            config = json.loads(file.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            continue  # not ours to judge: the loader reports a broken config itself
        if isinstance(config, dict) and "auto_map" in config:
            raise ModelLoadError(
                f"{file} has an auto_map (custom model code): refused, remote code is never run"
            )
    if require_weights and not any(f.suffix == ".safetensors" for f in files):
        raise ModelLoadError(
            f"{path} has no *.safetensors weights; only safetensors weights are loaded "
            "(pickle .bin weights are refused)"
        )


def cpu_has_native_bf16() -> bool:
    """True when the CPU runs bf16 matmuls natively (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' requested but torch sees no CUDA device")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    if dtype != "auto":
        return dtype
    if device == "cuda":
        return "bf16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def weights_version(model_dir: Path) -> str:
    """A short content hash of the weights: the model version written on every row."""
    check_model_dir(model_dir)  # no version for weights that would be refused anyway
    for name in WEIGHT_FILES:
        path = model_dir / name
        if path.exists():
            digest = hashlib.sha256()
            with path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    digest.update(chunk)
            return digest.hexdigest()[:12]
    raise ModelLoadError(
        f"{model_dir} has no model.safetensors; only safetensors weights are loaded "
        "(pickle .bin weights are refused)"
    )


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """Output of one forward pass: pooled, L2-normalised embeddings in input order."""

    embeddings: np.ndarray  # (n, dim) float32
    tokens: list[int]
    # Per document, its (tokens, dim) float32 hidden states, when asked for (NER, linking).
    token_states: list[np.ndarray] | None = None


@dataclass(frozen=True, slots=True)
class Tokenized:
    """Token ids with the character offsets and word index of every piece."""

    ids: list[list[int]]
    offsets: list[list[tuple[int, int]]]
    word_ids: list[list[int | None]]


class Encoder:
    """A Hugging Face encoder with mean pooling, on the chosen device and dtype."""

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_tokens: int = 256,
        name: str = "",
        threads: int = 0,
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        if not (model_dir / "config.json").exists():
            raise ModelLoadError(
                f"{model_dir} is not a Hugging Face model directory (no config.json)"
            )
        check_model_dir(model_dir)
        if threads:
            torch.set_num_threads(threads)
        self.model_dir = model_dir
        self.version = weights_version(model_dir)
        self.name = name or model_dir.name
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(
            str(model_dir), trust_remote_code=False, local_files_only=True
        )
        limit = getattr(self.tokenizer, "model_max_length", max_tokens) or max_tokens
        self.max_tokens = int(min(max_tokens, limit if limit < 100_000 else max_tokens))
        model = AutoModel.from_pretrained(
            str(model_dir), use_safetensors=True, trust_remote_code=False, local_files_only=True
        )
        model.eval()
        if self.device == "cuda" and self.dtype == "bf16":
            model = model.to(dtype=torch.bfloat16)
        self.model = model.to(self.device)
        self.dim = int(model.config.hidden_size)
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        self._rust = _rust_tokenizer(self.tokenizer, self.max_tokens)
        # Forward passes from several threads would fight over the same cores.
        self._lock = threading.Lock()
        log.info("encoder %s version %s on %s/%s", self.name, self.version, self.device, self.dtype)

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text, truncated to ``max_tokens`` (special tokens included)."""
        if self._rust is not None:
            return [e.ids for e in self._rust.encode_batch(texts, add_special_tokens=True)]
        out = self.tokenizer(
            texts, truncation=True, max_length=self.max_tokens, add_special_tokens=True
        )
        ids: list[list[int]] = out["input_ids"]
        return ids

    def tokenize_with_offsets(self, texts: list[str]) -> Tokenized:
        """Like :meth:`tokenize`, plus each piece's (start, end) characters and word index."""
        if self._rust is not None:
            # The Rust tokenizer straight, without transformers' per-call wrapping: about 40%
            # less CPU per document, the same pieces (tests/unit/models check).
            encodings = self._rust.encode_batch(texts, add_special_tokens=True)
            return Tokenized(
                [e.ids for e in encodings],
                [e.offsets for e in encodings],
                [e.word_ids for e in encodings],
            )
        out = self.tokenizer(
            texts,
            truncation=True,
            max_length=self.max_tokens,
            add_special_tokens=True,
            return_offsets_mapping=True,
        )
        offsets = [[(int(a), int(b)) for a, b in row] for row in out["offset_mapping"]]
        word_ids = [out.word_ids(i) for i in range(len(texts))]
        return Tokenized(out["input_ids"], offsets, word_ids)

    def _tensors(self, ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        width = max(len(x) for x in ids)
        input_ids = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        t_ids = torch.from_numpy(input_ids)
        t_mask = torch.from_numpy(mask)
        if self.device == "cuda":
            t_ids = t_ids.pin_memory().to(self.device, non_blocking=True)
            t_mask = t_mask.pin_memory().to(self.device, non_blocking=True)
        return t_ids, t_mask

    def encode_ids(self, ids: list[list[int]], *, token_states: bool = False) -> EncodedBatch:
        """One forward pass over a batch of token id lists (and, if asked, token states)."""
        import torch

        if not ids:
            return EncodedBatch(
                np.zeros((0, self.dim), dtype=np.float32), [], [] if token_states else None
            )
        t_ids, t_mask = self._tensors(ids)
        autocast = self.dtype == "bf16" and self.device == "cpu"
        with self._lock, torch.inference_mode():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                hidden = self.model(input_ids=t_ids, attention_mask=t_mask).last_hidden_state
            hidden = hidden.float()
            weights = t_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            emb = pooled.cpu().numpy()
            states = None
            if token_states:
                full = hidden.cpu().numpy()
                states = [full[row, : len(seq)] for row, seq in enumerate(ids)]
        return EncodedBatch(emb.astype(np.float32, copy=False), [len(x) for x in ids], states)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Convenience: tokenize and encode (no batching policy; for small inputs)."""
        return self.encode_ids(self.tokenize(texts)).embeddings

    def warmup(self) -> None:
        self.encode_texts(["warm up the encoder", "a second, somewhat longer warm-up sentence"])

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "device": self.device,
            "dtype": self.dtype,
            "dim": self.dim,
            "max_tokens": self.max_tokens,
        }


def _rust_tokenizer(tokenizer: Any, max_tokens: int) -> Any:
    """A copy of a fast tokenizer's Rust tokenizer that truncates to ``max_tokens`` and
    never pads, as ``tokenizer(texts, truncation=True, max_length=max_tokens)`` does; None
    for a tokenizer without one (a slow, pure-Python tokenizer)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    import copy

    rust = copy.deepcopy(backend)
    rust.no_padding()
    rust.enable_truncation(max_tokens)
    return rust
