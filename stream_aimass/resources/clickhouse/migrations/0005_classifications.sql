-- One row per document per configured classifier. ReplacingMergeTree on
-- (tenant, classifier, doc_id): a re-delivered document collapses under FINAL; inserts carry
-- offset-range deduplication tokens like documents.
CREATE TABLE IF NOT EXISTS classifications
(
    tenant LowCardinality(String),
    doc_id String,
    ts DateTime64(3, 'UTC'),
    classifier LowCardinality(String),
    model_name LowCardinality(String),
    model_version LowCardinality(String),
    multi_label UInt8,
    top_label LowCardinality(String),
    predicted Array(String),
    labels Array(LowCardinality(String)),
    scores Array(Float32),
    enriched_topic LowCardinality(String),
    enriched_partition UInt32,
    enriched_offset UInt64,
    enriched_at DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, classifier, doc_id)
SETTINGS non_replicated_deduplication_window = 1000;
