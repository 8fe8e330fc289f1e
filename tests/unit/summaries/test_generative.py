"""The generator on tiny random checkpoints built from configs (T5 and GPT-2): loading rules,
greedy and beam search, bounded new tokens, long inputs cut to fit, the model version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream_aimass.models.encoder import ModelLoadError, weights_version
from stream_aimass.settings import Settings
from stream_aimass.summaries.generative import Generator
from stream_aimass.testing import make_tiny_encoder, make_tiny_generator

TEXTS = [
    "The council approved the harbour seawall on Tuesday. Work starts in March.",
    "A short one.",
    "Floods closed the bakery for weeks. " * 3,
]


@pytest.fixture(scope="module", params=["seq2seq", "causal"])
def model_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    kind = str(request.param)
    return make_tiny_generator(tmp_path_factory.mktemp(f"gen-{kind}"), kind=kind)


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_a_summary_and_a_headline_per_text_deterministically(model_dir: Path, search: str) -> None:
    generator = Generator(model_dir, device="cpu", dtype="fp32", search=search, num_beams=3,
                          max_new_tokens=6, headline_max_new_tokens=3)  # fmt: skip
    first = generator.generate(TEXTS)
    assert len(first) == len(TEXTS)
    for written in first:
        assert written.summary and written.headline
        # A word piece has no space in it: at most as many words as new tokens.
        assert len(written.summary.split()) <= 6 and len(written.headline.split()) <= 3
    assert generator.generate(TEXTS) == first  # no sampling
    assert generator.num_beams == (3 if search == "beam" else 1)
    assert generator.model_ref.version == weights_version(model_dir)
    assert generator.describe()["kind"] in ("seq2seq", "causal")


def test_no_headline_when_its_budget_is_zero(model_dir: Path) -> None:
    generator = Generator(model_dir, device="cpu", dtype="fp32", max_new_tokens=4,
                          headline_max_new_tokens=0)  # fmt: skip
    assert [w.headline for w in generator.generate(TEXTS)] == ["", "", ""]


def test_a_text_longer_than_the_model_takes_is_cut_to_fit(model_dir: Path) -> None:
    """The tiny GPT-2 has 256 positions: a 3,000-word text must still generate."""
    generator = Generator(model_dir, device="cpu", dtype="fp32", max_new_tokens=8,
                          headline_max_new_tokens=0, max_input_tokens=4096)  # fmt: skip
    assert generator.max_input_tokens <= 4096
    (written,) = generator.generate(["word " * 3000])
    assert written.summary


def test_the_kind_and_default_prompts_follow_the_config(model_dir: Path) -> None:
    generator = Generator(model_dir, device="cpu", dtype="fp32")
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("is_encoder_decoder"):
        assert generator.kind == "seq2seq" and generator.summary_prompt == "summarize: {text}"
    else:
        assert generator.kind == "causal" and generator.summary_prompt.endswith("TL;DR:")
        assert generator.max_input_tokens == 256 - 60  # the positions new tokens need


def test_settings_build_the_generator(model_dir: Path) -> None:
    s = Settings(summary_model=str(model_dir), summary_search="beam", summary_num_beams=2,
                 summary_max_new_tokens=5, headline_max_new_tokens=0, device="cpu",
                 dtype="fp32", summary_prompt="Summary of: {text}")  # fmt: skip
    generator = Generator.from_settings(s)
    assert (generator.search, generator.num_beams, generator.max_new_tokens) == ("beam", 2, 5)
    assert generator.summary_prompt == "Summary of: {text}"


def test_a_prompt_without_text_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\{text\}"):
        Settings(summary_prompt="Summarise this")


def test_pickle_weights_and_remote_code_are_refused(tmp_path: Path) -> None:
    model_dir = make_tiny_generator(tmp_path / "pickled", kind="causal")
    (model_dir / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelLoadError, match="pickle"):
        Generator(model_dir)
    remote = make_tiny_generator(tmp_path / "remote", kind="causal")
    config = json.loads((remote / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling.Custom"}
    (remote / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="auto_map"):
        Generator(remote)


def test_an_encoder_only_model_is_not_a_generator(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="seq2seq or causal"):
        Generator(make_tiny_encoder(tmp_path / "bert"))


def test_a_directory_that_is_no_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        Generator(tmp_path)


def test_a_checkpoint_without_its_language_model_head_is_refused(tmp_path: Path) -> None:
    """No architectures in the config: loading would give the head random weights."""
    bert = make_tiny_encoder(tmp_path / "bert")
    config = json.loads((bert / "config.json").read_text())
    config.pop("architectures", None)
    (bert / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="weights lack"):
        Generator(bert)
