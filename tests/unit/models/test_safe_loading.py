"""Model loading refuses pickle weights and remote code, before anything is loaded.

The pickle checkpoints here are booby-trapped: unpickling them creates a marker file, so a
loader that ever unpickled one would be caught, not merely one that failed afterwards.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stream_aimass.models.encoder import Encoder, ModelLoadError, check_model_dir, weights_version
from stream_aimass.models.library import refuse_pickle

PICKLE_REFUSED = "pickle weights are refused"
REMOTE_CODE = "remote code is never run"


class Trap:
    """Unpickling it creates ``marker``: evidence that a pickle file was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def pickle_only_copy(source: Path, target: Path, name: str = "pytorch_model.bin") -> Path:
    """``source`` with its safetensors weights replaced by a trapped torch pickle."""
    import torch
    from safetensors.torch import load_file

    shutil.copytree(source, target)
    weights = target / "model.safetensors"
    state: dict[str, Any] = dict(load_file(str(weights)))
    state["trap"] = Trap(target.parent / f"{target.name}.unpickled")
    torch.save(state, target / name)
    weights.unlink()
    return target


def marker_of(model_dir: Path) -> Path:
    return model_dir.parent / f"{model_dir.name}.unpickled"


def test_the_trap_fires_when_unpickled(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    import torch

    model_dir = pickle_only_copy(tiny_encoder_dir, tmp_path / "m")
    torch.load(model_dir / "pytorch_model.bin", weights_only=False)
    assert marker_of(model_dir).exists()  # so its absence below means "never unpickled"


def test_encoder_refuses_a_pickle_only_checkpoint(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    model_dir = pickle_only_copy(tiny_encoder_dir, tmp_path / "m")
    with pytest.raises(ModelLoadError) as info:
        Encoder(model_dir, device="cpu", dtype="fp32")
    message = str(info.value)
    assert str(model_dir / "pytorch_model.bin") in message
    assert PICKLE_REFUSED in message and "safetensors" in message
    assert not marker_of(model_dir).exists()


@pytest.mark.parametrize("name", ["pytorch_model.bin", "weights.pt", "extra/head.pkl", "x.ckpt"])
def test_pickle_files_are_refused_even_next_to_safetensors(
    tiny_encoder_dir: Path, tmp_path: Path, name: str
) -> None:
    model_dir = tmp_path / "m"
    shutil.copytree(tiny_encoder_dir, model_dir)
    (model_dir / name).parent.mkdir(parents=True, exist_ok=True)
    (model_dir / name).write_bytes(b"\x80\x04N.")
    for load in (lambda: Encoder(model_dir, device="cpu", dtype="fp32"),
                 lambda: weights_version(model_dir), lambda: refuse_pickle(model_dir)):  # fmt: skip
        with pytest.raises(ModelLoadError, match=PICKLE_REFUSED) as info:
            load()
        assert name.rsplit("/", 1)[-1] in str(info.value)


def test_remote_code_is_refused(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    with_code = tmp_path / "code"
    shutil.copytree(tiny_encoder_dir, with_code)
    (with_code / "modeling_custom.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(ModelLoadError, match=REMOTE_CODE) as info:
        Encoder(with_code, device="cpu", dtype="fp32")
    assert "modeling_custom.py" in str(info.value)

    for config_name in ("config.json", "tokenizer_config.json"):
        auto_map = tmp_path / f"auto-map-{config_name}"
        shutil.copytree(tiny_encoder_dir, auto_map)
        config = json.loads((auto_map / config_name).read_text())
        config["auto_map"] = {"AutoModel": "evil--modeling_evil.EvilModel"}
        (auto_map / config_name).write_text(json.dumps(config))
        with pytest.raises(ModelLoadError, match=REMOTE_CODE) as info:
            Encoder(auto_map, device="cpu", dtype="fp32")
        assert f"{config_name} has an auto_map" in str(info.value)


def test_a_clean_checkpoint_passes(tiny_encoder_dir: Path) -> None:
    check_model_dir(tiny_encoder_dir)
    assert len(weights_version(tiny_encoder_dir)) == 12


def test_finetune_training_refuses_a_pickle_encoder(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    from stream_aimass.training.classifier import TrainConfig, _FinetuneModel

    model_dir = pickle_only_copy(tiny_encoder_dir, tmp_path / "m", name="model.pt")
    with pytest.raises(ModelLoadError, match=PICKLE_REFUSED):
        _FinetuneModel(model_dir, 2, TrainConfig(mode="finetune"))
    assert not marker_of(model_dir).exists()


def test_hf_token_classifier_refuses_a_pickle_only_checkpoint(
    tiny_encoder_dir: Path, tiny_encoder: Encoder, tmp_path: Path
) -> None:
    from transformers import BertConfig, BertForTokenClassification

    from stream_aimass.entities.ner import load_detector

    source = tmp_path / "hf"
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64,
                        id2label={0: "O", 1: "B-PER", 2: "I-PER"})  # fmt: skip
    model = BertForTokenClassification(config)  # type: ignore[no-untyped-call]
    model.save_pretrained(str(source), safe_serialization=True)
    shutil.copy(tiny_encoder_dir / "vocab.txt", source / "vocab.txt")
    model_dir = pickle_only_copy(source, tmp_path / "pickled")
    with pytest.raises(ModelLoadError, match=PICKLE_REFUSED):
        load_detector(str(model_dir), None, tiny_encoder, tmp_path / "models")
    assert not marker_of(model_dir).exists()


def test_train_command_gives_the_clear_error(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    from stream_aimass.cli.main import app

    model_dir = pickle_only_copy(tiny_encoder_dir, tmp_path / "m")
    data = tmp_path / "train.csv"
    data.write_text("text,category\n" + "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(8)))
    for mode in ("head", "finetune"):
        result = CliRunner().invoke(
            app,
            ["train", "classifier", "--data", str(data), "--out", str(tmp_path / "out"),
             "--model-dir", str(model_dir), "--mode", mode, "--epochs", "1"],
        )  # fmt: skip
        assert result.exit_code == 2, result.output
        assert PICKLE_REFUSED in result.output and "pytorch_model.bin" in result.output
    assert not marker_of(model_dir).exists()


@pytest.mark.integration
def test_worker_with_a_pickle_model_dir_exits_with_the_clear_error(
    tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    from stream_aimass.testing import start_worker

    model_dir = pickle_only_copy(tiny_encoder_dir, tmp_path / "m")
    worker = start_worker(
        "enrich",
        "embedded",
        tmp_path / "data",
        "pickle-worker",
        env={"AIMASS_MODEL_DIR": str(model_dir), "AIMASS_RECS_ENABLED": "false"},
    )
    try:
        code = worker.process.wait(120)
    finally:
        if worker.process.poll() is None:
            worker.sigkill()
    output = worker.log.read_text(errors="replace")
    assert code != 0, output
    assert PICKLE_REFUSED in output and "pytorch_model.bin" in output, output[-3000:]
    assert not marker_of(model_dir).exists()
