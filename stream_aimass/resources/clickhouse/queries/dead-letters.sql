-- Dead letters by stage and reason, newest first.
SELECT stage, reason, count() AS messages, max(failed_at) AS last_seen
FROM dead_letters FINAL
GROUP BY stage, reason
ORDER BY messages DESC, last_seen DESC
LIMIT 50
