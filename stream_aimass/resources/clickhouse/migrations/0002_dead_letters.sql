-- Messages the pipeline could not use, with the stage and a readable reason. Keyed by where
-- the message was found (source topic/partition/offset), so a re-delivery collapses.
CREATE TABLE IF NOT EXISTS dead_letters
(
    source_topic LowCardinality(String),
    source_partition UInt32,
    source_offset UInt64,
    source_ts DateTime64(3, 'UTC'),
    stage LowCardinality(String),
    reason String,
    error_type LowCardinality(String),
    raw_b64 String,
    raw_bytes UInt64,
    raw_truncated UInt8,
    raw_preview String,
    failed_at DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(failed_at)
ORDER BY (source_topic, source_partition, source_offset)
SETTINGS non_replicated_deduplication_window = 1000;
