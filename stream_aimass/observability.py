"""Observability: logging set-up and the Prometheus metrics every stage reports.

Stage names are stable: they label metrics here and appear in dead letters and logs.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


def configure_logging(level: str = "info") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Kafka clients are chatty about normal group rebalances.
    for noisy in ("aiokafka", "kafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


class Metrics:
    """The worker's metrics, in a registry of its own (one per pipeline)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.stage_seconds = Histogram(
            "aimass_stage_seconds",
            "Time spent per stage and batch (decode, tokenize, queue, model, produce, "
            "insert, commit)",
            ["role", "stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.records = Counter(
            "aimass_records_total",
            "Records handled, by role and outcome (enriched, dead_letter, stored)",
            ["role", "outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "aimass_dead_letters_total", "Dead letters by stage", ["stage"], registry=r
        )
        self.batch_documents = Histogram(
            "aimass_batch_documents",
            "Documents per model batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.batch_tokens = Histogram(
            "aimass_batch_tokens",
            "Tokens per model batch (unpadded)",
            buckets=(64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536),
            registry=r,
        )
        self.rows_inserted = Counter(
            "aimass_rows_inserted_total", "Rows acknowledged by ClickHouse", ["table"], registry=r
        )
        self.insert_failures = Counter(
            "aimass_insert_failures_total", "Failed ClickHouse insert attempts", registry=r
        )
        self.rejected_rows = Counter(
            "aimass_rejected_rows_total",
            "Rows ClickHouse refused for good (stored as dead letters instead), by table",
            ["table"],
            registry=r,
        )
        self.clickhouse_connect_failures = Counter(
            "aimass_clickhouse_connect_failures_total",
            "Failed attempts to connect to ClickHouse (and migrate) at sink start",
            registry=r,
        )
        self.produce_retries = Counter(
            "aimass_produce_retries_total",
            "Records sent again after a failed Kafka produce, by topic",
            ["topic"],
            registry=r,
        )
        self.model_errors = Counter(
            "aimass_model_errors_total",
            "Model failures on a batch (the batch is split and retried), by error type",
            ["error_type"],
            registry=r,
        )
        self.end_to_end_seconds = Histogram(
            "aimass_end_to_end_seconds",
            "Source record's Kafka timestamp to the ClickHouse insert acknowledgement",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "aimass_consumer_lag",
            "Records behind the partition's high watermark",
            ["group", "topic", "partition"],
            registry=r,
        )

        self.consumer_failures = Counter(
            "aimass_consumer_failures_total",
            "Kafka consumer failures (the consumer is replaced; not ready until it fetches "
            "again), by role and cause (the error type)",
            ["role", "cause"],
            registry=r,
        )
        self.unreadable_batches = Counter(
            "aimass_unreadable_batches_total",
            "Record batches that could not be decoded (dead-lettered and skipped), by role "
            "and topic",
            ["role", "topic"],
            registry=r,
        )
        self.records_lost = Counter(
            "aimass_records_lost_total",
            "Records the broker deleted (retention) before this role read them, by role and "
            "topic: each loss is also logged as an error",
            ["role", "topic"],
            registry=r,
        )
        self.recs_publish_failures = Counter(
            "aimass_recs_publish_failures_total",
            "Failed attempts to publish a recommendation (each is retried until stopping)",
            registry=r,
        )

        self.batch_token_budget = Gauge(
            "aimass_batch_token_budget",
            "The batch token budget now (changes with the backlog under adaptive batching)",
            registry=r,
        )
        self.model_reloads = Counter(
            "aimass_model_reloads_total",
            "Classifier set reloads (hot swaps), by outcome (swapped, failed)",
            ["outcome"],
            registry=r,
        )
        self.pii_findings = Counter(
            "aimass_pii_findings_total",
            "Personal data found in documents, by type and the action the policy took",
            ["type", "action"],
            registry=r,
        )
        self.pii_policy_reloads = Counter(
            "aimass_pii_policy_reloads_total",
            "PII policy file reloads, by outcome (swapped, failed)",
            ["outcome"],
            registry=r,
        )
        self.dead_letters_protected = Counter(
            "aimass_dead_letters_protected_total",
            "Dead letters kept under the PII policy, by what they keep (redacted, hash)",
            ["raw_kind"],
            registry=r,
        )
        self.model_info = Gauge(
            "aimass_model_info",
            "Models serving the document path now (value 1), by classifier, model and version",
            ["classifier", "model", "version"],
            registry=r,
        )
        self.recs_events = Counter(
            "aimass_recs_events_total",
            "User events on the recommendation path, by outcome (applied, replayed, invalid, "
            "unreadable)",
            ["outcome"],
            registry=r,
        )
        self.recs_unknown_items = Counter(
            "aimass_recs_unknown_items_total",
            "Events on items not (yet) in the item index: no vector update",
            registry=r,
        )
        self.recs_published = Counter(
            "aimass_recommendations_total",
            "Recommendations published, by kind (personal, cold_start)",
            ["kind"],
            registry=r,
        )
        self.recs_latency_seconds = Histogram(
            "aimass_recommendation_latency_seconds",
            "Trigger event's Kafka timestamp to the recommendation's produce acknowledgement",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.recs_batch_events = Histogram(
            "aimass_recs_batch_events",
            "Users scored per batch (one matrix multiply per tenant)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.item_index_items = Gauge(
            "aimass_item_index_items", "Items in this worker's item index", registry=r
        )

        self.api_requests = Counter(
            "aimass_api_requests_total",
            "HTTP requests to the model service's POST endpoints, by endpoint and status",
            ["endpoint", "status"],
            registry=r,
        )
        self.api_documents = Counter(
            "aimass_api_documents_total",
            "Documents enriched or embedded over HTTP, by endpoint and tenant",
            ["endpoint", "tenant"],
            registry=r,
        )

    def observe_stage(self, role: str, stage: str, seconds: float) -> None:
        self.stage_seconds.labels(role, stage).observe(seconds)

    def render(self) -> bytes:
        out: bytes = generate_latest(self.registry)
        return out

    def value(self, name: str, **labels: Any) -> float:
        """A sample's current value (0 when absent): for tests and summaries."""
        found = self.registry.get_sample_value(name, labels or None)
        return float(found) if found is not None else 0.0
