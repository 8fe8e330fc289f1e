-- Summaries (issue 21): the extractive summary of every document and, with summary_model,
-- the generated summary and headline. Offsets are into the text as stored (under the PII
-- policy), one pair per picked sentence, in document order.
ALTER TABLE documents ADD COLUMN IF NOT EXISTS summary String DEFAULT '';
ALTER TABLE documents ADD COLUMN IF NOT EXISTS summary_starts Array(UInt32) DEFAULT [];
ALTER TABLE documents ADD COLUMN IF NOT EXISTS summary_ends Array(UInt32) DEFAULT [];
ALTER TABLE documents ADD COLUMN IF NOT EXISTS generated_summary String DEFAULT '';
ALTER TABLE documents ADD COLUMN IF NOT EXISTS headline String DEFAULT '';
