"""The management console's data: the worker's own metrics, summed up for a page.

:func:`overview` reads this worker's Prometheus registry (what ``/metrics`` serves) and
returns what the console's health panel shows: records per role and outcome (the page
turns successive counts into rates), consumer lag per group, latency percentiles from the
histograms (linear within a bucket, as Prometheus' ``histogram_quantile`` does) and dead
letters per stage.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Any

from stream_aimass.observability import Metrics

QUANTILES = (0.5, 0.95, 0.99)


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of a histogram given as sorted (upper bound, cumulative count)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower  # beyond the last finite bound: the best known is that bound
            inside = count - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 0.0)
        lower, below = upper, count
    return lower


def _histograms(metrics: Metrics, name: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """Per label values (joined by '/'): count, sum and the QUANTILES of histogram ``name``."""
    found: dict[str, dict[str, Any]] = defaultdict(lambda: {"buckets": [], "count": 0.0})
    for family in metrics.registry.collect():
        if family.name != name:
            continue
        for sample in family.samples:
            key = "/".join(sample.labels.get(k, "") for k in keys)
            if sample.name.endswith("_bucket"):
                found[key]["buckets"].append((float(sample.labels["le"]), sample.value))
            elif sample.name.endswith("_count"):
                found[key]["count"] = sample.value
    out = {}
    for key, h in found.items():
        buckets = sorted(h["buckets"])
        if h["count"] <= 0:
            continue
        out[key] = {
            "count": int(h["count"]),
            **{f"p{round(q * 100)}_ms": _ms(quantile(q, buckets)) for q in QUANTILES},
        }
    return out


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _samples(metrics: Metrics, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (dict(sample.labels), sample.value)
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == name
    ]


def overview(metrics: Metrics, role: str, ready: bool) -> dict[str, Any]:
    """The health panel's numbers, now."""
    records: dict[str, dict[str, float]] = defaultdict(dict)
    for labels, value in _samples(metrics, "aimass_records_total"):
        records[labels["role"]][labels["outcome"]] = value
    lag: dict[str, float] = defaultdict(float)
    for labels, value in _samples(metrics, "aimass_consumer_lag"):
        lag[labels["group"]] += value
    dead = {
        labels["stage"]: value for labels, value in _samples(metrics, "aimass_dead_letters_total")
    }
    api = {
        f"{labels['endpoint']} {labels['status']}": value
        for labels, value in _samples(metrics, "aimass_api_requests_total")
    }
    return {
        "role": role,
        "ready": ready,
        "at_ms": time.time_ns() // 1_000_000,
        "records": records,
        "consumer_lag": dict(lag),
        "dead_letters": dead,
        "latency": {
            "end_to_end": _histograms(metrics, "aimass_end_to_end_seconds", ()).get("", None),
            "stages": _histograms(metrics, "aimass_stage_seconds", ("role", "stage")),
        },
        "api_requests": api,
    }
