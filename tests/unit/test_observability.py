"""Metrics: names the dashboard uses exist, and values render in Prometheus text format."""

from __future__ import annotations

import json
import re
from pathlib import Path

from stream_aimass.observability import Metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "ops/grafana/dashboards/stream-aimass.json"


def test_dashboard_queries_only_metrics_the_worker_exports() -> None:
    metrics = Metrics()
    exported = {
        sample.name for family in metrics.registry.collect() for sample in family.samples
    } | {family.name for family in metrics.registry.collect()}
    # Counters and histograms export derived names (_total, _bucket, ...): touch them once.
    metrics.records.labels("enrich", "enriched").inc()
    metrics.rows_inserted.labels("documents").inc()
    metrics.dead_letters.labels("decode").inc()
    metrics.stage_seconds.labels("enrich", "model").observe(0.1)
    metrics.consumer_lag.labels("g", "t", "0").set(3)
    exported |= {s.name for f in metrics.registry.collect() for s in f.samples}
    exprs = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
    used = {name for expr in exprs for name in re.findall(r"aimass_[a-z_]+", expr)}
    assert used, "the dashboard should query aimass metrics"
    assert used <= exported, f"unknown metrics in the dashboard: {used - exported}"


def test_values_and_rendering() -> None:
    metrics = Metrics()
    metrics.records.labels("sink", "stored").inc(5)
    metrics.end_to_end_seconds.observe(0.2)
    assert metrics.value("aimass_records_total", role="sink", outcome="stored") == 5
    assert metrics.value("aimass_end_to_end_seconds_count") == 1
    assert metrics.value("aimass_records_total", role="sink", outcome="nothing") == 0
    text = metrics.render().decode()
    assert 'aimass_records_total{outcome="stored",role="sink"} 5.0' in text
