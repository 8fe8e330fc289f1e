-- The 20 most interacted-with items per tenant, from the events with ts in [from, to):
-- events by type, distinct users and a weighted score (view 1, click 2, like 3, purchase 5).
-- title and category come from items FINAL; an item deleted there (a tombstone on
-- aimass.item-vectors) is left out, one never seen there is kept with '' for both.
-- Deduplicated (FINAL). Parameters: tenant ('' = every tenant), from, to.
SELECT
    e.tenant AS tenant,
    e.item_id AS item_id,
    any(i.title) AS title,
    any(i.category) AS category,
    count() AS events,
    countIf(e.type = 'view') AS views,
    countIf(e.type = 'click') AS clicks,
    countIf(e.type = 'like') AS likes,
    countIf(e.type = 'purchase') AS purchases,
    uniqExact(e.user_id) AS users,
    views + 2 * clicks + 3 * likes + 5 * purchases AS score
FROM events AS e FINAL
LEFT JOIN
(
    SELECT tenant, item_id, title, category
    FROM items FINAL
    WHERE deleted = 0
) AS i ON i.tenant = e.tenant AND i.item_id = e.item_id
WHERE ({tenant:String} = '' OR e.tenant = {tenant:String})
    AND e.ts >= {from:DateTime64(3)}
    AND e.ts < {to:DateTime64(3)}
    AND (e.tenant, e.item_id) NOT IN (
        SELECT tenant, item_id FROM items FINAL WHERE deleted = 1
    )
GROUP BY tenant, item_id
ORDER BY tenant, score DESC, events DESC, item_id
LIMIT 20 BY tenant
