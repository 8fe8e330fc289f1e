"""bench's roles tool on its own: forward-free enrich processes round by round, each on a
broker of its own, then a sink process draining the last round."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.model]


def test_every_round_enriches_every_document_and_the_sink_drains_the_last() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "stream_aimass.tools.bench.roles",
         "--documents", "60", "--rounds", "2"],
        capture_output=True, text=True, timeout=600, check=True,
    ).stdout  # fmt: skip
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    rounds, sink = lines[:-1], lines[-1]
    assert [r["round"] for r in rounds] == [0, 1]
    for run in rounds:
        assert run["documents"] == 60 and run["processes"] == 1
        assert run["docs_per_s"] > 0 and run["enrich_cpu_us_per_doc"] > 0
    # Each document of the last round: a documents row, its item row, and more.
    assert sink["sink_rows"] >= 120 and sink["sink_input_deleted_by_broker"] == 0
