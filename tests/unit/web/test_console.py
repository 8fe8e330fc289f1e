"""The console's health numbers, from the worker's own metrics."""

from __future__ import annotations

import math

from stream_aimass.observability import Metrics
from stream_aimass.web.console import overview, quantile


def test_quantile_is_linear_within_a_bucket() -> None:
    buckets = [(0.1, 10.0), (0.2, 30.0), (math.inf, 40.0)]
    assert quantile(0.25, buckets) == 0.1  # 10 of 40 at or below 0.1
    assert abs((quantile(0.5, buckets) or 0) - 0.15) < 1e-9  # halfway into the second bucket
    assert quantile(0.99, buckets) == 0.2  # past the last finite bound: that bound
    assert quantile(0.5, []) is None and quantile(0.5, [(1.0, 0.0)]) is None


def test_overview_sums_up_records_lag_latency_and_dead_letters() -> None:
    metrics = Metrics()
    metrics.records.labels("enrich", "enriched").inc(40)
    metrics.consumer_lag.labels("aimass-enrich", "aimass.documents", "0").set(3)
    metrics.consumer_lag.labels("aimass-enrich", "aimass.documents", "1").set(4)
    metrics.dead_letters.labels("decode").inc()
    for seconds in (0.01, 0.02, 0.03, 0.5):
        metrics.observe_stage("enrich", "model", seconds)
    got = overview(metrics, "all", True)
    assert got["records"] == {"enrich": {"enriched": 40.0}}
    assert got["consumer_lag"] == {"aimass-enrich": 7.0}
    assert got["dead_letters"] == {"decode": 1.0}
    model = got["latency"]["stages"]["enrich/model"]
    assert model["count"] == 4 and model["p50_ms"] <= model["p95_ms"] <= model["p99_ms"]
    assert got["latency"]["end_to_end"] is None and got["ready"] is True
