-- Per-document model cost and provenance, for usage metering: compute_ms is the document's
-- share of its batch's model time; models maps every model that touched it to its version.
-- Rows written before this migration read as 0 / {}.
ALTER TABLE documents ADD COLUMN IF NOT EXISTS compute_ms Float32 DEFAULT 0;
ALTER TABLE documents ADD COLUMN IF NOT EXISTS models Map(LowCardinality(String), String);
