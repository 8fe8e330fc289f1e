-- One row per enriched document. ReplacingMergeTree on (tenant, doc_id): a re-delivered or
-- retried document collapses to one row (query with FINAL); inserts also carry a
-- deduplication token derived from the enriched topic's partition/offset range.
CREATE TABLE IF NOT EXISTS documents
(
    tenant LowCardinality(String),
    doc_id String,
    ts DateTime64(3, 'UTC'),
    title String,
    lang LowCardinality(String),
    text_chars UInt32,
    tokens UInt32,
    top_category LowCardinality(String),
    category_labels Array(LowCardinality(String)),
    category_scores Array(Float32),
    meta String,
    model_name LowCardinality(String),
    model_version LowCardinality(String),
    source_topic LowCardinality(String),
    source_partition UInt32,
    source_offset UInt64,
    source_ts DateTime64(3, 'UTC'),
    enriched_topic LowCardinality(String),
    enriched_partition UInt32,
    enriched_offset UInt64,
    enriched_at DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, doc_id)
SETTINGS non_replicated_deduplication_window = 1000;
