"""The device bench on its own (the accelerator's check, here on the CPU with the tiny
encoder): the forward pass alone at every budget, the model ceiling, then enrich runs with the
real forward pass and forward-free, each counting every document once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_device_bench_measures_every_phase_and_every_run(
    tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "AIMASS_MODEL_DIR": str(tiny_encoder_dir), "AIMASS_DEVICE": "cpu"}
    out = subprocess.run(
        [sys.executable, "-m", "stream_aimass.tools.bench.device", "--documents", "120",
         "--processes", "1,2", "--free-processes", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, check=True, env=env,
    ).stdout  # fmt: skip
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert "info" in lines[0] and lines[0]["info"]["cpus"] >= 1
    result = json.loads((tmp_path / "device.json").read_text())
    assert [(e["batch_max_tokens"], e["batch_max_documents"]) for e in result["encoder"]] == [
        (4096, 128), (16384, 512), (32768, 1024),
    ]  # fmt: skip
    assert all(e["docs_per_s"] > 0 and e["documents"] == 120 for e in result["encoder"])
    assert result["model_docs_per_s_standalone"]["docs_per_s"] > 0
    real, free = result["enrich_real"], result["enrich_free"]
    assert [r["processes"] for r in real] == [1, 2] and [r["processes"] for r in free] == [1]
    for run in real + free:
        assert run["documents"] == 120 and run["docs_per_s"] > 0
        assert run["forward_free"] is (run in free)
        # Every stage timed over the run; the model thread's share is a share.
        assert set(run["stage_share"]) == {"decode", "tokenize", "model", "produce", "commit"}
        assert "queue" in run["stage_seconds"] and run["cpu_cores_busy"] > 0
        assert run["stage_seconds"]["model"] > 0 and 0 < run["stage_share"]["model"] <= 1.0
        assert "gpu_util_mean_pct" not in run  # no nvidia-smi here: no made-up utilisation
    assert (tmp_path / "device.png").stat().st_size > 10_000
    # One JSON line per figure, as written to device.json.
    assert sum("enrich_real" in line for line in lines) == 2
