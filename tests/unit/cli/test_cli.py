"""The command line: clear errors for bad input, help that needs no heavy imports."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from stream_aimass.cli.main import app

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "worker", "broker", "produce", "query", "db", "topics", "bench"):
        assert command in result.output


def test_unknown_query_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["query", "no-such-query", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown query 'no-such-query'" in result.output
    assert "documents-count" in result.output


def test_query_list_names_every_query() -> None:
    result = runner.invoke(app, ["query", "--list"])
    assert result.exit_code == 0
    assert {"documents-count", "category-mix", "dead-letters"} <= set(result.output.split())


def test_produce_of_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    result = runner.invoke(app, ["produce", "documents", str(missing)])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_produce_without_a_broker_says_how_to_start_one(tmp_path: Path) -> None:
    file = tmp_path / "docs.jsonl"
    file.write_text('{"id": "1"}\n')
    result = runner.invoke(app, ["produce", "documents", str(file), "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "stream-aimass broker" in result.output


def test_invalid_env_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMASS_DEVICE", "tpu")
    result = runner.invoke(app, ["settings"])
    assert result.exit_code == 2
    assert "AIMASS_DEVICE" in result.output


def test_worker_rejects_an_unknown_role() -> None:
    result = runner.invoke(app, ["worker", "--role", "teapot"])
    assert result.exit_code == 2
    assert "--role must be one of" in result.output


@pytest.mark.parametrize(
    ("policy", "reason"),
    [
        ("hash", "needs a key: set AIMASS_PII_HASH_KEY"),
        ('{"*": "blur"}', "'blur' is not an action"),
    ],
)
def test_worker_refuses_a_pii_policy_that_cannot_work(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, policy: str, reason: str
) -> None:
    monkeypatch.setenv("AIMASS_PII_POLICY", policy)
    result = runner.invoke(app, ["worker", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "PII policy" in result.output and reason in result.output


def test_worker_refuses_a_summary_model_that_cannot_generate(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_encoder_dir: Path
) -> None:
    for model, reason in [
        (tmp_path / "missing", "no config.json"),
        (tiny_encoder_dir, "not a seq2seq or causal LM"),
    ]:
        monkeypatch.setenv("AIMASS_SUMMARY_MODEL", str(model))
        result = runner.invoke(app, ["worker", "--data-dir", str(tmp_path)])
        assert result.exit_code == 2, result.output
        assert "AIMASS_SUMMARY_MODEL" in result.output and reason in result.output


def test_topics_create_needs_a_real_cluster() -> None:
    result = runner.invoke(app, ["topics", "create"])
    assert result.exit_code == 2
    assert "--bootstrap" in result.output


def test_settings_markdown_has_every_env_var() -> None:
    from stream_aimass.settings import settings_table

    result = runner.invoke(app, ["settings", "--markdown"])
    assert result.exit_code == 0
    for row in settings_table():
        assert row["env"] in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--loads", "half"], "--loads takes comma-separated fractions"),
        (["--loads", "0.5,2"], "--loads fractions must be above 0"),
        (["--device", "gpu"], "AIMASS_DEVICE"),
    ],
)
def test_bench_bad_options_are_clear_errors(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["bench", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_bench_on_cuda_without_a_gpu_is_a_clear_error(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    result = runner.invoke(app, ["bench", "--device", "cuda", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "torch sees no CUDA device" in result.output
