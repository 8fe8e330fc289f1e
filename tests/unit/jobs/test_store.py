"""Training jobs on disk: created queued with their uploads, progress folded in from the
training process's JSON lines, and jobs a stopped worker left running queued again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream_aimass.jobs.runner import train_command
from stream_aimass.jobs.store import PROGRESS_FILE, JobStore, read_progress


def test_create_list_update_and_recover(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs")
    upload = tmp_path / "u.csv"
    upload.write_text("text,category\n")
    job = store.create({"kind": "classifier", "name": "intent"}, {"data": upload})
    assert job["state"] == "queued" and job["files"] == {"data": "train.csv"}
    assert (store.folder(job["id"]) / "train.csv").is_file() and not upload.exists()
    store.update(job["id"], state="running")
    (store.folder(job["id"]) / PROGRESS_FILE).write_text(
        json.dumps({"stage": "epochs", "done": 1, "total": 2, "percent": 50.0})
        + "\n"
        + json.dumps({"epoch": 1, "metrics": {"dev_accuracy": 0.5}})
        + "\n"
        + '{"stage": "ha'
    )  # a half-written last line is skipped
    got = store.get(job["id"])
    assert (
        got["progress"]["percent"] == 50.0
        and got["epoch_metrics"][0]["metrics"]["dev_accuracy"] == 0.5
    )
    assert store.recover() == [job["id"]]
    again = store.get(job["id"])
    assert again["state"] == "queued" and again["progress"] is None and "stopped" in again["note"]
    assert [j["id"] for j in JobStore(tmp_path / "jobs").jobs()] == [job["id"]]  # a new store
    with pytest.raises(KeyError):
        store.get("../etc")
    with pytest.raises(KeyError):
        store.get("missing")


def test_read_progress_without_a_file(tmp_path: Path) -> None:
    assert read_progress(tmp_path / "none.jsonl") == (None, [])


def test_train_commands_per_kind(tmp_path: Path) -> None:
    job = {"kind": "classifier", "mode": "finetune", "name": "intent", "epochs": 2,
           "files": {"data": "train.csv", "dev": "dev.csv"}, "format": "csv"}  # fmt: skip
    cmd = train_command(job, tmp_path, tmp_path / "models")
    assert cmd[3:5] == ["train", "classifier"] and cmd[-1] == "--json"
    assert cmd[cmd.index("--mode") : cmd.index("--mode") + 2] == ["--mode", "finetune"]
    assert cmd[cmd.index("--dev") + 1] == str(tmp_path / "dev.csv")
    assert cmd[cmd.index("--out") + 1] == str(tmp_path / "models" / "intent")
    multitask = train_command(
        {**job, "kind": "multitask", "format": "conll", "files": {"data": "train.conll"}},
        tmp_path, tmp_path / "models",
    )  # fmt: skip
    assert multitask[multitask.index("--ner") + 1] == f"intent={tmp_path / 'train.conll'}"
    assert "--mode" not in multitask
