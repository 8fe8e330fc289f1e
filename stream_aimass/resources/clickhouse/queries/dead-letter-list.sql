-- Dead letters one by one, newest first: where each message was found, the stage, the reason
-- and a preview (the DLQ topic keeps the bytes: `stream-aimass dlq replay` sends them back);
-- raw_kind says whether the bytes are the message or what the PII policy let through.
-- Parameters: stage ('' = any), topic (the source topic, '' = any), from, to (failed_at),
-- limit.
SELECT
    source_topic AS topic,
    source_partition AS partition,
    source_offset AS offset,
    source_ts,
    stage,
    reason,
    error_type,
    raw_bytes,
    raw_truncated,
    raw_preview,
    raw_kind,
    raw_sha256,
    failed_at
FROM dead_letters FINAL
WHERE ({stage:String} = '' OR stage = {stage:String})
    AND ({topic:String} = '' OR source_topic = {topic:String})
    AND failed_at >= {from:DateTime64(3)}
    AND failed_at < {to:DateTime64(3)}
ORDER BY failed_at DESC, source_topic, source_partition, source_offset
LIMIT {limit:UInt32}
