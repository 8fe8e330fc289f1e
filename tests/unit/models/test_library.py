"""The model library: versions are weight hashes, references resolve, pickle is refused."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from stream_aimass.models.encoder import ModelLoadError
from stream_aimass.models.library import (
    list_models,
    publish,
    read_model,
    refuse_pickle,
    resolve_model,
    staging_dir,
)


def _publish(out: Path, seed: int, name: str = "intent", created: str = "") -> Path:
    staging = staging_dir(out)
    rng = np.random.default_rng(seed)
    save_file(
        {"weight": rng.normal(size=(3, 4)).astype(np.float32)}, str(staging / "head.safetensors")
    )
    meta = {"name": name, "kind": "classifier", "mode": "head", "labels": ["a", "b", "c"]}
    if created:
        meta["created"] = created
    return publish(staging, meta).path


def test_version_is_the_weight_hash_and_same_weights_publish_once(tmp_path: Path) -> None:
    first = _publish(tmp_path / "intent", seed=1)
    again = _publish(tmp_path / "intent", seed=1)
    other = _publish(tmp_path / "intent", seed=2)
    assert first == again
    assert first != other
    assert read_model(first).version == first.name
    assert len(first.name) == 12
    assert not [p for p in (tmp_path / "intent").iterdir() if p.name.startswith(".staging")]


def test_resolve_by_path_name_and_version(tmp_path: Path) -> None:
    models = tmp_path / "models"
    old = _publish(models / "intent", seed=1, created="2026-01-01T00:00:00+00:00")
    new = _publish(models / "intent", seed=2, created="2026-02-01T00:00:00+00:00")
    assert resolve_model("intent", models) == new  # newest version
    assert resolve_model(f"intent@{old.name[:6]}", models) == old
    assert resolve_model(str(old), models) == old
    assert resolve_model(str(models / "intent"), tmp_path / "elsewhere") == new
    with pytest.raises(ModelLoadError, match="no version"):
        resolve_model("intent@ffffffff", models)
    with pytest.raises(ModelLoadError, match="models list"):
        resolve_model("nope", models)


def test_list_models_reports_every_version(tmp_path: Path) -> None:
    models = tmp_path / "models"
    _publish(models / "intent", seed=1)
    _publish(models / "intent", seed=2)
    _publish(models / "topic", seed=3, name="topic")
    found = list_models(models)
    assert sorted(m.name for m in found) == ["intent", "intent", "topic"]
    summary = found[0].summary()
    assert {"name", "kind", "version", "accuracy", "macro_f1", "created"} <= set(summary)
    assert list_models(tmp_path / "absent") == []


def test_broken_metadata_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.json").write_text(json.dumps({"kind": "classifier"}))
    with pytest.raises(ModelLoadError, match="lacks name, version"):
        read_model(tmp_path / "m")
    (tmp_path / "m" / "model.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="unreadable"):
        read_model(tmp_path / "m")


def test_pickle_weights_are_refused(tmp_path: Path) -> None:
    (tmp_path / "encoder").mkdir()
    (tmp_path / "encoder" / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ModelLoadError, match="pickle"):
        refuse_pickle(tmp_path)


def test_created_defaults_to_now(tmp_path: Path) -> None:
    before = time.strftime("%Y-%m-%d", time.gmtime())
    path = _publish(tmp_path / "x", seed=5)
    assert read_model(path).created.startswith(before)
