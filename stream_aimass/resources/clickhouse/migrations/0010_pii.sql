-- Personal data found in documents (issue 19): one row per finding, what the PII policy did
-- with it and where it is in the stored text. Never the value. Keyed like entity_mentions:
-- a re-delivered document collapses under FINAL, and each row carries its document's
-- version (readers keep the current version's findings: the pii-summary query does).
CREATE TABLE IF NOT EXISTS pii_findings
(
    tenant LowCardinality(String),
    doc_id String,
    ts DateTime64(3, 'UTC'),
    -- text, title, or meta.<path>: which string of the document.
    field String,
    type LowCardinality(String),
    -- Character offsets in the stored (rewritten) string, end exclusive.
    start UInt32,
    `end` UInt32,
    action LowCardinality(String),
    detector LowCardinality(String),
    score Float32,
    enriched_topic LowCardinality(String),
    enriched_partition UInt32,
    enriched_offset UInt64,
    enriched_at DateTime64(3, 'UTC'),
    doc_version UInt128 DEFAULT 0,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(doc_version)
PARTITION BY tuple()
ORDER BY (tenant, doc_id, field, start, `end`)
SETTINGS non_replicated_deduplication_window = 1000;

-- Dead letters say what their raw bytes are: the message ('raw'), a copy under the PII policy
-- ('redacted'), or nothing but the message's SHA-256 ('hash'); the source coordinates say
-- where the message itself still is.
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS raw_kind LowCardinality(String) DEFAULT 'raw';
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS raw_sha256 String DEFAULT '';
