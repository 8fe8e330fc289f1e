-- Dead letters by source topic, stage and reason (deduplicated), most frequent first.
SELECT source_topic AS topic, stage, reason, count() AS messages, max(failed_at) AS last_seen
FROM dead_letters FINAL
GROUP BY source_topic, stage, reason
ORDER BY messages DESC, last_seen DESC
LIMIT 50
