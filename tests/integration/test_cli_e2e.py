"""The main job and the benchmark, run as a user runs them (subprocesses: chdb is one path
per process)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from stream_aimass.testing import cli
from stream_aimass.tools.corpus import bad_messages

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli(*args),
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_demo_enriches_stores_and_answers_queries(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    result = run_cli(
        "demo", "--documents", "120", "--events", "30", "--data-dir", str(data_dir), "--json"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["documents_enriched"] == 120
    assert summary["dead_letters"] == len(bad_messages())
    assert summary["events_stored"] == 30
    assert summary["docs_per_s"] > 0
    assert summary["zero_shot_agreement"] > 0.8
    assert {"documents-count", "category-mix"} <= set(summary["queries"])
    top = summary["queries"]["top-entities"]
    assert top["rows"], "the demo stream mentions KB entities"
    usage = summary["queries"]["usage"]
    columns = usage["columns"]
    assert sum(r[columns.index("documents")] for r in usage["rows"]) == 120
    assert sum(r[columns.index("events")] for r in usage["rows"]) == 30
    assert summary["items_indexed"] == 120
    assert summary["recommendations_stored"] > 0
    assert (
        sum(r[columns.index("recommendations")] for r in usage["rows"])
        == summary["recommendations_stored"]
    )
    example = summary["example_recommendation"]
    assert example is not None and example["items"], "the demo shows a recommendation"
    ctr = summary["queries"]["recommendation-ctr"]
    assert ctr["rows"], "the demo answers the CTR query"

    # The data dir is free once the demo is done: a later process can query it.
    query = run_cli("query", "documents-count", "--json", "--data-dir", str(data_dir))
    assert query.returncode == 0, query.stderr[-3000:]
    rows = json.loads(query.stdout)["rows"]
    assert sum(r["documents"] for r in rows) == 120
    usage = run_cli("query", "usage", "--tenant", "acme", "--json", "--data-dir", str(data_dir))
    assert usage.returncode == 0, usage.stderr[-3000:]
    acme = json.loads(usage.stdout)["rows"]
    assert {r["tenant"] for r in acme} == {"acme"}
    assert sum(r["documents"] for r in acme) == next(
        r["documents"] for r in rows if r["tenant"] == "acme"
    )


def test_bench_prints_the_documented_keys(tmp_path: Path) -> None:
    out_dir = tmp_path / "bench"
    result = run_cli(
        "bench",
        "--documents",
        "96",
        "--naive-documents",
        "8",
        "--steady-seconds",
        "2",
        "--json",
        "--out",
        str(out_dir),
        "--heads",
        "0,2",
        "--recs-events",
        "300",
        "--processes",
        "2",
        "--roles-documents",
        "400",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    keys = ("pipeline_docs_per_s", "model_docs_per_s", "ratio", "naive_docs_per_s",
            "speedup_vs_naive", "p50_ms", "p99_ms")  # fmt: skip
    for key in keys:
        assert key in figures and figures[key] >= 0, key
    assert figures["model_docs_per_s"] > 0 and figures["pipeline_docs_per_s"] > 0
    ratio = figures["pipeline_docs_per_s"] / figures["model_docs_per_s"]
    assert figures["ratio"] == pytest.approx(ratio, rel=0.01)
    # The ceiling is the mean of the runs right before and right after the backlog.
    before, after = figures["model_docs_per_s_before_after"]
    assert before > 0 and after > 0
    assert figures["model_docs_per_s"] == pytest.approx((before + after) / 2, abs=0.1)
    assert figures["model_docs_per_s_standalone"] > 0
    standalone = figures["pipeline_docs_per_s"] / figures["model_docs_per_s_standalone"]
    assert figures["ratio_standalone"] == pytest.approx(standalone, rel=0.01)
    # The naive loop does the pipeline's whole job one message at a time; the older
    # forward-only loop is reported next to it.
    assert figures["naive_forward_only_docs_per_s"] > 0
    speedup = figures["pipeline_docs_per_s"] / figures["naive_docs_per_s"]
    assert figures["speedup_vs_naive"] == pytest.approx(speedup, rel=0.01)
    assert figures["p99_ms"] >= figures["p50_ms"]
    assert set(figures["heads_docs_per_s"]) == {"0", "2"}
    assert all(v > 0 for v in figures["heads_docs_per_s"].values())
    assert figures["heads_relative"]["0"] == 1.0
    assert figures["backlog_mean_batch_documents"] > 0
    assert figures["steady_mean_batch_documents"] > 0
    # The same backlog again with the forward pass free: the Python side's ceiling.
    assert figures["forward_free_docs_per_s"] > 0
    assert set(figures["entities_docs_per_s"]) == {"off", "on"}
    assert 0 <= figures["entities_share_of_model_time"] < 1
    shares = figures["heads_share_of_model_time"]
    assert set(shares) == {"0", "2"} and all(0 <= v < 1 for v in shares.values())
    sweep = figures["load_sweep"]
    assert [p["offered_fraction"] for p in sweep] == [0.25, 0.5, 0.75]
    for point in sweep:
        assert point["achieved_docs_per_s"] > 0
        assert 0 <= point["p50_ms"] <= point["p95_ms"] <= point["p99_ms"]
    assert figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
    recs = figures["recommendations"]
    assert recs["events"] == 300 and recs["events_per_s"] > 0
    assert recs["p99_ms"] >= recs["p50_ms"] >= 0
    shares = [recs["scoring_share"], recs["produce_share"], recs["kafka_faust_share"]]
    assert all(0 <= v <= 1 for v in shares)
    assert recs["items"] >= 96  # the documents, plus the warm-up and steady ones
    # Same texts, same dtype: the naive loop in the pipeline's own dtype too.
    assert "backlog's texts" in figures["texts"]
    same = figures["pipeline_docs_per_s"] / figures["naive_same_dtype_docs_per_s"]
    assert figures["speedup_vs_naive_same_dtype"] == pytest.approx(same, rel=0.01)
    assert figures["catch_up_s"] >= 0
    # The roles in their own processes: 1 and 2 forward-free enrich processes, then a sink.
    roles = figures["roles"]
    assert [r["processes"] for r in roles["runs"]] == [1, 2]
    for run in roles["runs"]:
        assert run["documents"] == 400 and run["docs_per_s"] > 0
        assert run["docs_per_s_per_process"] == pytest.approx(
            run["docs_per_s"] / run["processes"], abs=0.2
        )
        assert run["enrich_cpu_us_per_doc"] > 0
    assert set(figures["forward_free_processes_docs_per_s"]) == {"1", "2"}
    assert figures["enrich_cpu_us_per_doc"] == roles["runs"][0]["enrich_cpu_us_per_doc"]
    # Every document row and its side rows (classifications, mentions, item rows).
    assert roles["sink_rows"] + roles["sink_rows_before_ready"] >= 400
    assert figures["sink_cpu_us_per_row"] > 0 and figures["sink_rows_per_s"] > 0
    assert (out_dir / "bench.png").stat().st_size > 1000
    assert json.loads((out_dir / "bench.json").read_text()) == figures
