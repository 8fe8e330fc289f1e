-- The latest state of every recommendable item (a document or a catalogue item), one row per
-- aimass.item-vectors message; the vector itself stays on the topic (the workers' index).
-- ReplacingMergeTree(updated_at) on (tenant, item_id), not partitioned: under FINAL the latest
-- update of an item wins, however old the item. A tombstone (null value) is a row with
-- deleted = 1, empty title/kind/category/model and updated_at = the tombstone's Kafka
-- timestamp: read live items with FINAL ... WHERE deleted = 0. source_* is where the
-- item-vectors message was (topic/partition/offset), not the document it came from. Inserts
-- carry offset-range deduplication tokens like documents.
CREATE TABLE IF NOT EXISTS items
(
    tenant LowCardinality(String),
    item_id String,
    kind LowCardinality(String),
    title String,
    category LowCardinality(String),
    ts DateTime64(3, 'UTC'),
    model_name LowCardinality(String),
    model_version LowCardinality(String),
    deleted UInt8,
    source_topic LowCardinality(String),
    source_partition UInt32,
    source_offset UInt64,
    updated_at DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (tenant, item_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- One row per recommendation served (aimass.recommendations): the items in rank order with
-- their scores. ts is when it was made, event_ts the event time of the event that triggered
-- it. ReplacingMergeTree on (tenant, user_id, trigger_event_id): a re-delivered
-- recommendation collapses under FINAL; inserts carry offset-range deduplication tokens like
-- documents. source_* is where the recommendations message was.
CREATE TABLE IF NOT EXISTS recommendations
(
    tenant LowCardinality(String),
    user_id String,
    trigger_event_id String,
    ts DateTime64(3, 'UTC'),
    event_ts DateTime64(3, 'UTC'),
    item_ids Array(String),
    scores Array(Float32),
    cold_start UInt8,
    k UInt16,
    model_name LowCardinality(String),
    model_version LowCardinality(String),
    latency_ms Float32,
    source_topic LowCardinality(String),
    source_partition UInt32,
    source_offset UInt64,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, user_id, trigger_event_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- Feeds usage_hourly.recommendations (0006_usage.sql, where it "stays 0 until" this view):
-- recommendations are billed in the hour they were stored (ingested_at, like events).
--
-- Not exactly once: the column is a plain sum (SimpleAggregateFunction(sum, UInt64)), so a
-- re-delivered recommendation (new offsets, new token) counts again; reconcile against
-- recommendations FINAL if that matters. A retried insert (same token) is dropped here as in
-- 0006_usage.sql: deduplicate_blocks_in_dependent_materialized_views = 1 (the sink sets it)
-- and the deduplication window on usage_hourly.
--
-- Counting starts when this migration runs: recommendations stored before are not backfilled.
CREATE MATERIALIZED VIEW IF NOT EXISTS usage_recommendations_mv TO usage_hourly AS
SELECT
    tenant,
    toStartOfHour(ingested_at) AS hour,
    toUInt64(count()) AS recommendations
FROM recommendations
GROUP BY tenant, hour;
