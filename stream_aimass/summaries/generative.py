"""Generative summaries and headlines from a local Hugging Face checkpoint.

Any seq2seq (T5, BART, Pegasus...) or causal LM (GPT-2, Llama...) directory the installed
transformers knows, loaded like every model here: local files only, safetensors weights, no
remote code (:func:`~stream_aimass.models.encoder.check_model_dir`). Generation is
deterministic: greedy, or beam search, with a bound on new tokens.

torch and transformers are imported lazily so that CLI start-up stays fast.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream_aimass.models.encoder import (
    ModelLoadError,
    check_model_dir,
    resolve_device,
    resolve_dtype,
    weights_version,
)
from stream_aimass.records import ModelRef
from stream_aimass.settings import Settings

log = logging.getLogger("stream_aimass.summaries")

# The model classes transformers generates with (``config.architectures``).
GENERATIVE_SUFFIXES = ("ForConditionalGeneration", "LMHeadModel", "ForCausalLM", "Seq2SeqLM")

PROMPTS = {  # (summary, headline) when the settings leave them empty
    "seq2seq": ("summarize: {text}", "headline: {text}"),
    "causal": ("{text}\nTL;DR:", "{text}\nHeadline:"),
}


@dataclass(frozen=True, slots=True)
class Written:
    """What the generator wrote for one document."""

    summary: str
    headline: str


def check_generator_dir(model_dir: Path) -> None:
    """Refuse, before loading anything, a directory that is no generation checkpoint: no
    config, weights that could run code, or a model class without a language-model head."""
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise ModelLoadError(f"{model_dir} is not a Hugging Face model directory (no config.json)")
    check_model_dir(model_dir)
    try:
        architectures = json.loads(config_file.read_text()).get("architectures") or []
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelLoadError(f"{config_file} is not a readable model config: {exc}") from exc
    if architectures and not any(str(a).endswith(GENERATIVE_SUFFIXES) for a in architectures):
        raise ModelLoadError(
            f"{model_dir} is a {', '.join(map(str, architectures))}, not a seq2seq or causal LM "
            "(it has no language-model head to generate with)"
        )


class Generator:
    """A local seq2seq or causal LM that writes a summary (and a headline) per text."""

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "auto",
        dtype: str = "auto",
        search: str = "greedy",
        num_beams: int = 4,
        max_new_tokens: int = 60,
        headline_max_new_tokens: int = 16,
        max_input_tokens: int = 512,
        summary_prompt: str = "",
        headline_prompt: str = "",
    ) -> None:
        import torch
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForSeq2SeqLM,
            AutoTokenizer,
        )
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        check_generator_dir(model_dir)
        self.model_ref = ModelRef(model_dir.name, weights_version(model_dir))
        config = AutoConfig.from_pretrained(
            str(model_dir), trust_remote_code=False, local_files_only=True
        )
        self.kind = "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"
        loader: Any = AutoModelForSeq2SeqLM if self.kind == "seq2seq" else AutoModelForCausalLM
        try:
            model, info = loader.from_pretrained(
                str(model_dir), use_safetensors=True, trust_remote_code=False,
                local_files_only=True, output_loading_info=True,
            )  # fmt: skip
        except ValueError as exc:  # a config transformers has no generation model for
            raise ModelLoadError(f"{model_dir} is not a seq2seq or causal LM: {exc}") from exc
        missing = sorted(info.get("missing_keys") or ())
        if any(_is_head(k) for k in missing):  # a head initialised at random writes noise
            raise ModelLoadError(
                f"{model_dir} is not a seq2seq or causal LM checkpoint: its weights lack "
                f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}"
            )
        if missing:  # buffers or tied copies some checkpoints leave out
            log.warning("generator %s: weights initialised, not loaded: %s", model_dir, missing)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        if self.device == "cuda" and self.dtype == "bf16":
            model = model.to(dtype=torch.bfloat16)
        self.model = model.to(self.device).eval()
        tokenizer = AutoTokenizer.from_pretrained(
            str(model_dir), trust_remote_code=False, local_files_only=True
        )
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.sep_token
        if self.kind == "causal":
            tokenizer.padding_side = "left"  # new tokens follow the prompt on every row
        self.tokenizer = tokenizer
        self.eos_id = _eos_id(model, tokenizer)
        self.search = search
        self.num_beams = num_beams if search == "beam" else 1
        self.max_new_tokens = max_new_tokens
        self.headline_max_new_tokens = headline_max_new_tokens
        summary_default, headline_default = PROMPTS[self.kind]
        self.summary_prompt = summary_prompt or summary_default
        self.headline_prompt = headline_prompt or headline_default
        positions = _max_positions(config)
        longest = max(max_new_tokens, headline_max_new_tokens)
        if self.kind == "causal" and positions:  # the prompt and the new tokens share them
            if positions <= longest + 8:
                raise ModelLoadError(
                    f"{model_dir} takes {positions} positions: too few for "
                    f"{longest} new tokens and a text"
                )
            max_input_tokens = min(max_input_tokens, positions - longest)
        elif positions:
            max_input_tokens = min(max_input_tokens, positions)
        self.max_input_tokens = max_input_tokens
        self._frames: dict[str, int] = {}
        # Generation from several threads would fight over the same cores.
        self._lock = threading.Lock()
        log.info(
            "generator %s (%s) version %s on %s/%s, %s search",
            self.model_ref.name, self.kind, self.model_ref.version, self.device, self.dtype,
            search,
        )  # fmt: skip

    @classmethod
    def from_settings(cls, settings: Settings) -> Generator:
        return cls(
            Path(settings.summary_model).expanduser(),
            device=settings.device,
            dtype=settings.dtype,
            search=settings.summary_search,
            num_beams=settings.summary_num_beams,
            max_new_tokens=settings.summary_max_new_tokens,
            headline_max_new_tokens=settings.headline_max_new_tokens,
            max_input_tokens=settings.summary_max_input_tokens,
            summary_prompt=settings.summary_prompt,
            headline_prompt=settings.headline_prompt,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.model_ref.name,
            "version": self.model_ref.version,
            "kind": self.kind,
            "device": self.device,
            "dtype": self.dtype,
            "search": self.search,
            "num_beams": self.num_beams,
            "max_new_tokens": self.max_new_tokens,
            "headline_max_new_tokens": self.headline_max_new_tokens,
            "max_input_tokens": self.max_input_tokens,
        }

    def _cut(self, text: str, prompt: str) -> str:
        """``prompt`` around ``text`` cut so the whole input fits ``max_input_tokens``."""
        frame = self._frames.get(prompt)
        if frame is None:  # the prompt's own tokens: counted once per prompt, not per text
            frame = self._frames[prompt] = len(
                self.tokenizer(prompt.replace("{text}", ""))["input_ids"]
            )
        budget = max(1, self.max_input_tokens - frame)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) > budget:
            text = str(self.tokenizer.decode(ids[:budget], skip_special_tokens=True))
        return prompt.replace("{text}", text)

    def _run(self, texts: list[str], prompt: str, max_new_tokens: int) -> list[str]:
        import torch

        inputs = [self._cut(t, prompt) for t in texts]
        batch = self.tokenizer(inputs, return_tensors="pt", padding=True)
        batch = {k: v.to(self.device) for k, v in batch.items() if k != "token_type_ids"}
        autocast = self.dtype == "bf16" and self.device == "cpu"
        cast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast)
        with self._lock, torch.inference_mode(), cast:
            out = self.model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                num_beams=self.num_beams,
                do_sample=False,
                early_stopping=self.num_beams > 1,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.eos_id,
            )
        if self.kind == "causal":  # the prompt comes back first: keep what is new
            out = out[:, batch["input_ids"].shape[1] :]
        decoded = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return [" ".join(d.split()) for d in decoded]

    def generate(self, texts: list[str]) -> list[Written]:
        """A summary (and a headline, unless ``headline_max_new_tokens`` is 0) per text."""
        if not texts:
            return []
        summaries = self._run(texts, self.summary_prompt, self.max_new_tokens)
        headlines = [""] * len(texts)
        if self.headline_max_new_tokens:
            headlines = self._run(texts, self.headline_prompt, self.headline_max_new_tokens)
        return [Written(s, h) for s, h in zip(summaries, headlines, strict=True)]


def _is_head(key: str) -> bool:
    """Whether a weight belongs to a language-model head (``lm_head``, BERT's ``cls.``)."""
    return key.startswith(("lm_head", "cls.")) or ".lm_head." in key


def _eos_id(model: Any, tokenizer: Any) -> int | None:
    generation = getattr(model, "generation_config", None)
    eos = getattr(generation, "eos_token_id", None)
    if isinstance(eos, list):
        eos = eos[0] if eos else None
    if eos is None:
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else None
    if eos is None:
        eos = tokenizer.sep_token_id
    return None if eos is None else int(eos)


def _max_positions(config: Any) -> int:
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 0  # relative positions (T5): no hard limit
