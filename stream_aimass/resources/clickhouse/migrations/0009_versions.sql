-- The last PRODUCED version of a document wins, whatever order its rows were inserted in.
--
-- Before this migration the tables were ReplacingMergeTree(ingested_at): under FINAL the last
-- INSERTED row won, and batching, retries and re-delivery reorder inserts, so an update could
-- roll back to an older version. Now every row carries the version of the source message it
-- came from (stream_aimass.records.row_version: the document's own `version` field when it
-- has one, else its Kafka timestamp, in the high 64 bits; its partition offset in the low 64)
-- and the tables keep the highest version: ReplacingMergeTree(version).
--
-- The tables are also no longer partitioned by the document's ts: ReplacingMergeTree only
-- collapses rows within a partition, so an update that moved ts to another month left both
-- versions in place. dead_letters is keyed by its source message (topic, partition, offset
-- AND Kafka timestamp), so that a new message at an offset reused after a broker restart no
-- longer replaces an older dead letter, and partitioned by that timestamp, which a
-- re-delivery keeps.
--
-- The engine of a table cannot be altered: each table is rebuilt as <table>_0009 with the same
-- columns plus the version, filled from the old one, and exchanged with it. Rows stored before
-- get version 0: any later version of the same key replaces them. The migration runner records
-- every statement it completes, so a run cut short resumes where it stopped.

ALTER TABLE documents ADD COLUMN IF NOT EXISTS version UInt128 DEFAULT 0;
CREATE TABLE IF NOT EXISTS documents_0009 AS documents
ENGINE = ReplacingMergeTree(version)
PARTITION BY tuple()
ORDER BY (tenant, doc_id)
SETTINGS non_replicated_deduplication_window = 1000;
INSERT INTO documents_0009 SELECT * FROM documents;
EXCHANGE TABLES documents AND documents_0009;
DROP TABLE IF EXISTS documents_0009;

ALTER TABLE classifications ADD COLUMN IF NOT EXISTS version UInt128 DEFAULT 0;
CREATE TABLE IF NOT EXISTS classifications_0009 AS classifications
ENGINE = ReplacingMergeTree(version)
PARTITION BY tuple()
ORDER BY (tenant, classifier, doc_id)
SETTINGS non_replicated_deduplication_window = 1000;
INSERT INTO classifications_0009 SELECT * FROM classifications;
EXCHANGE TABLES classifications AND classifications_0009;
DROP TABLE IF EXISTS classifications_0009;

-- A mention row carries its document's version: a newer version of the document that no
-- longer has the mention leaves the old row in place, so readers keep only the mentions of
-- each document's current version, (tenant, doc_id, doc_version) IN documents FINAL (the
-- top-entities and entity-trend queries do). entity_mentions_hourly (0007) keeps counting
-- every mention ever stored, old versions included.
ALTER TABLE entity_mentions ADD COLUMN IF NOT EXISTS doc_version UInt128 DEFAULT 0;
CREATE TABLE IF NOT EXISTS entity_mentions_0009 AS entity_mentions
ENGINE = ReplacingMergeTree(doc_version)
PARTITION BY tuple()
ORDER BY (tenant, doc_id, mention_start, mention_end)
SETTINGS non_replicated_deduplication_window = 1000;
INSERT INTO entity_mentions_0009 SELECT * FROM entity_mentions;
EXCHANGE TABLES entity_mentions AND entity_mentions_0009;
DROP TABLE IF EXISTS entity_mentions_0009;

-- items: the version of the document (or catalogue item) the vector came from; a tombstone's
-- is its own Kafka timestamp and offset on aimass.item-vectors. A re-delivered older vector
-- no longer resurrects a deleted item.
ALTER TABLE items ADD COLUMN IF NOT EXISTS version UInt128 DEFAULT 0;
CREATE TABLE IF NOT EXISTS items_0009 AS items
ENGINE = ReplacingMergeTree(version)
PARTITION BY tuple()
ORDER BY (tenant, item_id)
SETTINGS non_replicated_deduplication_window = 1000;
INSERT INTO items_0009 SELECT * FROM items;
EXCHANGE TABLES items AND items_0009;
DROP TABLE IF EXISTS items_0009;

CREATE TABLE IF NOT EXISTS dead_letters_0009 AS dead_letters
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(source_ts)
ORDER BY (source_topic, source_partition, source_offset, source_ts)
SETTINGS non_replicated_deduplication_window = 1000;
INSERT INTO dead_letters_0009 SELECT * FROM dead_letters;
EXCHANGE TABLES dead_letters AND dead_letters_0009;
DROP TABLE IF EXISTS dead_letters_0009;

-- Billing ledger: one row per document VERSION enriched, so that tokens and compute_ms are
-- billed once per version (an update is new work, a re-delivery is not). usage_hourly (0006)
-- sums every row inserted, re-deliveries included; the `usage` query reads this ledger for
-- documents, tokens and compute_ms (FINAL), and usage_hourly for events and recommendations.
-- Not partitioned: a re-delivered version may be enriched in another hour, and both rows must
-- meet in one partition to collapse.
CREATE TABLE IF NOT EXISTS usage_documents
(
    tenant LowCardinality(String),
    doc_id String,
    version UInt128,
    hour DateTime('UTC'),
    tokens UInt32,
    compute_ms Float32,
    enriched_at DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY tuple()
ORDER BY (tenant, doc_id, version)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_documents_ledger_mv TO usage_documents AS
SELECT
    tenant,
    doc_id,
    version,
    toStartOfHour(enriched_at) AS hour,
    tokens,
    compute_ms,
    enriched_at
FROM documents;

-- Documents stored before this migration: one ledger row for the latest version of each.
INSERT INTO usage_documents (tenant, doc_id, version, hour, tokens, compute_ms, enriched_at)
SELECT tenant, doc_id, version, toStartOfHour(enriched_at), tokens, compute_ms, enriched_at
FROM documents FINAL;
