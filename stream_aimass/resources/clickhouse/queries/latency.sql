-- Produce -> ClickHouse row latency (ms) over all documents.
SELECT
    count() AS documents,
    round(quantile(0.5)(dateDiff('millisecond', source_ts, ingested_at)), 1) AS p50_ms,
    round(quantile(0.95)(dateDiff('millisecond', source_ts, ingested_at)), 1) AS p95_ms,
    round(quantile(0.99)(dateDiff('millisecond', source_ts, ingested_at)), 1) AS p99_ms
FROM documents FINAL
