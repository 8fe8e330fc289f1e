-- Usage per tenant per hour, for billing, kept up to date by the materialized views below
-- (read it with the `usage` query: uniqExactMerge / sum, grouped by tenant and hour).
--
-- Exactly once, as far as ClickHouse can: documents and events are exact distinct ids, so a
-- re-delivered row (new offsets, new token) is not billed twice within an hour. tokens and
-- compute_ms are plain sums: a re-delivery that reaches ClickHouse twice adds them twice
-- (reconcile against documents FINAL if that matters).
--
-- Retries: since ClickHouse 24.7 a block the source table drops as a duplicate still flows
-- into its materialized views, which deduplicate only with
-- deduplicate_blocks_in_dependent_materialized_views = 1 (the sink sets it on every insert;
-- on by default in chdb 26.9, off in older servers like compose's 24.8) AND a deduplication
-- window on the target table (below). Without the window a retried insert counts twice.
--
-- Counting starts when this migration runs: rows stored before are not backfilled.
CREATE TABLE IF NOT EXISTS usage_hourly
(
    tenant LowCardinality(String),
    hour DateTime('UTC'),
    documents AggregateFunction(uniqExact, String),
    tokens SimpleAggregateFunction(sum, UInt64),
    compute_ms SimpleAggregateFunction(sum, Float64),
    events AggregateFunction(uniqExact, String),
    -- Stays 0 until recommendations are served and a view feeds it.
    recommendations SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, hour)
SETTINGS non_replicated_deduplication_window = 1000;

-- Documents are billed in the hour they were enriched (enriched_at, not the document's ts).
CREATE MATERIALIZED VIEW IF NOT EXISTS usage_documents_mv TO usage_hourly AS
SELECT
    tenant,
    toStartOfHour(enriched_at) AS hour,
    uniqExactState(doc_id) AS documents,
    toUInt64(sum(tokens)) AS tokens,
    toFloat64(sum(compute_ms)) AS compute_ms
FROM documents
GROUP BY tenant, hour;

-- Events are billed in the hour they were stored (events.ingested_at, not the event's ts):
-- a late event lands in the current hour instead of changing an hour already billed.
CREATE MATERIALIZED VIEW IF NOT EXISTS usage_events_mv TO usage_hourly AS
SELECT
    tenant,
    toStartOfHour(ingested_at) AS hour,
    uniqExactState(event_id) AS events
FROM events
GROUP BY tenant, hour;
