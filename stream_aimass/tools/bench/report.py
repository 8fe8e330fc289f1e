"""The benchmark's latency read-outs from ClickHouse and its PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stream_aimass.tools.bench.scenarios import HEAD_LABELS


def quantiles(client: Any, tenants: list[str]) -> tuple[float, float, float]:
    """p50, p95 and p99 of produce (Kafka timestamp) -> ClickHouse row (insert time), ms."""
    rows = client.query(
        "SELECT quantiles(0.5, 0.95, 0.99)(d) FROM (SELECT "
        "dateDiff('millisecond', source_ts, ingested_at) AS d FROM documents FINAL "
        "WHERE tenant IN {tenants:Array(String)})",
        parameters={"tenants": tenants},
    ).result_rows
    p50, p95, p99 = rows[0][0]
    return float(p50), float(p95), float(p99)


def latency(client: Any, tenants: list[str]) -> tuple[float, float]:
    """p50 and p99 of produce (Kafka timestamp) -> ClickHouse row (insert time), in ms."""
    p50, _, p99 = quantiles(client, tenants)
    return p50, p99


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heads = result.get("heads_docs_per_s") or {}
    recs = result.get("recommendations")
    panels = 2 + bool(heads) + bool(recs)
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4))
    ax1, ax2 = axes[0], axes[1]
    bars_spec = [
        ("model\n(in run)", result["model_docs_per_s"], "#888888"),
        ("model\n(alone)", result.get("model_docs_per_s_standalone"), "#bbbbbb"),
        ("pipeline", result["pipeline_docs_per_s"], "#1f77b4"),
        ("naive\nloop", result["naive_docs_per_s"], "#d62728"),
        ("naive\nforward", result.get("naive_forward_only_docs_per_s"), "#ff9896"),
    ]
    shown = [(n, v, c) for n, v, c in bars_spec if v is not None]
    bars = ax1.bar([n for n, _, _ in shown], [v for _, v, _ in shown], color=[c for *_, c in shown])
    ax1.bar_label(bars, fmt="%.0f")
    ax1.set_ylabel("documents / s")
    alone = result.get("ratio_standalone")
    ax1.set_title(
        f"pipeline = {result['ratio']:.2f} × model"
        + (f" ({alone:.2f} × alone)" if alone is not None else "")
        + f", {result['speedup_vs_naive']:.1f} × naive",
        fontsize=10,
    )
    sweep = result.get("load_sweep") or []
    if len(sweep) > 1:
        # Latency and achieved throughput against the offered load.
        offered = [p["offered_docs_per_s"] for p in sweep]
        for key, color in (("p50_ms", "#2ca02c"), ("p95_ms", "#ff7f0e"), ("p99_ms", "#d62728")):
            ax2.plot(offered, [p[key] for p in sweep], "o-", color=color, label=key[:3])
        ax2.set_xlabel("offered load, docs/s")
        ax2.set_ylabel("ms, produce → ClickHouse row")
        twin = ax2.twinx()
        twin.plot(offered, [p["achieved_docs_per_s"] for p in sweep], "s--", color="#7f7f7f")
        twin.set_ylabel("achieved docs/s (dashed)")
        ax2.legend(loc="upper left")
        ax2.set_title(f"steady streams; max (backlog) {result['pipeline_docs_per_s']:.0f} docs/s")
    else:
        bars = ax2.bar(["p50", "p99"], [result["p50_ms"], result["p99_ms"]], color="#2ca02c")
        ax2.bar_label(bars, fmt="%.0f")
        ax2.set_ylabel("ms")
        ax2.set_title(
            f"produce → ClickHouse row at {result['latency_load_docs_per_s']:.0f} docs/s "
            "(half the max)"
        )
    if heads:
        # The share of model time is exact; docs/s between configurations is mostly noise.
        ax3 = axes[2]
        shares = result.get("heads_share_of_model_time") or {}
        keys = list(heads)
        bars = ax3.bar(
            [f"{k} heads" for k in keys], [100 * shares.get(k, 0.0) for k in keys], color="#9467bd"
        )
        ax3.bar_label(
            bars, labels=[f"{100 * shares.get(k, 0.0):.1f}% · {heads[k]:.0f}/s" for k in keys]
        )
        ax3.set_ylabel("% of model time in the heads")
        ax3.set_ylim(0, max(5.0, 1.3 * max((100 * v for v in shares.values()), default=0.0)))
        ax3.set_title(f"classifier heads ({HEAD_LABELS} labels) on the shared pass")
    if recs:
        ax4 = axes[-1]
        bars = ax4.bar(["p50", "p99"], [recs["p50_ms"], recs["p99_ms"]], color="#8c564b")
        ax4.bar_label(bars, fmt="%.0f")
        ax4.set_ylabel("ms, event → recommendation")
        ax4.set_title(
            f"recommendations: {recs['events_per_s']:.0f} events/s, latency at "
            f"{recs['latency_load_events_per_s']:.0f}/s\ntime: scoring "
            f"{100 * recs['scoring_share']:.0f}%, profiles {100 * recs['profile_share']:.0f}%, "
            f"produce {100 * recs['produce_share']:.0f}%,\nKafka/Faust/sink "
            f"{100 * recs['kafka_faust_share']:.0f}%",
            fontsize=9,
        )
    fig.suptitle(
        f"stream-aimass bench: {result['documents']} docs, {result['model']} "
        f"{result['device']}/{result['dtype']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
