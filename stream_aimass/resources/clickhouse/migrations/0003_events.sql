-- One row per user event. ReplacingMergeTree on (tenant, event_id): a re-delivered event
-- collapses under FINAL; inserts carry offset-range deduplication tokens like documents.
CREATE TABLE IF NOT EXISTS events
(
    tenant LowCardinality(String),
    event_id String,
    user_id String,
    item_id String,
    type LowCardinality(String),
    ts DateTime64(3, 'UTC'),
    source_topic LowCardinality(String),
    source_partition UInt32,
    source_offset UInt64,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, event_id)
SETTINGS non_replicated_deduplication_window = 1000;
