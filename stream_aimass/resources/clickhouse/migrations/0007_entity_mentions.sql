-- One row per entity mention found in a document (NER spans, linked to the knowledge base or
-- NIL). ReplacingMergeTree on (tenant, doc_id, span): a re-delivered document collapses under
-- FINAL; inserts carry offset-range deduplication tokens like documents. A re-enrichment with
-- another NER model that finds other spans leaves the old spans in place (filter on
-- ner_version to read one model's view).
CREATE TABLE IF NOT EXISTS entity_mentions
(
    tenant LowCardinality(String),
    doc_id String,
    ts DateTime64(3, 'UTC'),
    -- Character offsets of the mention in the document text, end exclusive.
    mention_start UInt32,
    mention_end UInt32,
    mention_text String,
    label LowCardinality(String),
    -- '' for a NIL mention (not linked to any knowledge-base entity).
    entity_id String,
    entity_name String,
    linked UInt8,
    score Float32,
    ner_model LowCardinality(String),
    ner_version LowCardinality(String),
    kb_name LowCardinality(String),
    kb_version LowCardinality(String),
    enriched_topic LowCardinality(String),
    enriched_partition UInt32,
    enriched_offset UInt64,
    enriched_at DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, doc_id, mention_start, mention_end)
SETTINGS non_replicated_deduplication_window = 1000;

-- Linked mentions per entity per hour, kept up to date by the materialized view below (read
-- it with the `top-entities` and `entity-trend` queries: uniqExactMerge, grouped by entity).
--
-- Exactly once, as far as ClickHouse can: mentions are distinct (tenant, doc_id,
-- mention_start) and documents distinct (tenant, doc_id), so a re-delivered document (new
-- offsets, new token) does not count twice. tenant is in the states so that merging hours of
-- several tenants (top-entities without --tenant) keeps two tenants' same doc_id apart.
--
-- Retries: as in 0006_usage.sql, a retried block is dropped here only with
-- deduplicate_blocks_in_dependent_materialized_views = 1 (the sink sets it on every insert)
-- AND the deduplication window on this table. Without the window a retry would reach the
-- view again (harmless for the exact distinct counts, but it would grow the table).
--
-- Counting starts when this migration runs: mentions stored before are not backfilled.
CREATE TABLE IF NOT EXISTS entity_mentions_hourly
(
    tenant LowCardinality(String),
    entity_id String,
    hour DateTime('UTC'),
    mentions AggregateFunction(uniqExact, String, String, UInt32),
    documents AggregateFunction(uniqExact, String, String),
    label SimpleAggregateFunction(anyLast, LowCardinality(String)),
    entity_name SimpleAggregateFunction(anyLast, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, entity_id, hour)
SETTINGS non_replicated_deduplication_window = 1000;

-- Mentions count in the hour the DOCUMENT was written (its ts), not when it was enriched or
-- stored: the trend is about when things were said, so a late or replayed document adds to
-- its own (possibly long past) hour. NIL mentions (entity_id '') are left out.
CREATE MATERIALIZED VIEW IF NOT EXISTS entity_mentions_hourly_mv TO entity_mentions_hourly AS
SELECT
    tenant,
    entity_id,
    toStartOfHour(ts) AS hour,
    uniqExactState(tenant, doc_id, mention_start) AS mentions,
    uniqExactState(tenant, doc_id) AS documents,
    anyLast(label) AS label,
    anyLast(entity_name) AS entity_name
FROM entity_mentions
WHERE entity_id != ''
GROUP BY tenant, entity_id, hour;
