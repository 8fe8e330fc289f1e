-- User events per tenant and type, with distinct users and items (deduplicated).
SELECT tenant, type, count() AS events, uniqExact(user_id) AS users, uniqExact(item_id) AS items
FROM events FINAL
GROUP BY tenant, type
ORDER BY tenant, events DESC
