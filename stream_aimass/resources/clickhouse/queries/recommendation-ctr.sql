-- Recommendation click-through per tenant and hour, over the hours that overlap [from, to).
-- Event time throughout: a recommendation belongs to the hour of its trigger event's time
-- (event_ts), and a recommended item counts as clicked when the same user clicked it (an
-- events row of type 'click', same tenant) at an event time after the trigger event's, at
-- any time later. Comparing event times with event times keeps replays and backfills
-- right (the recommendation's own ts is the worker's clock). An item recommended in
-- several recommendations counts as clicked in each one the click came after.
-- Deduplicated (FINAL on both tables).
-- Parameters: tenant ('' = every tenant), from, to.
SELECT
    r.tenant AS tenant,
    toStartOfHour(r.event_ts) AS hour,
    uniqExact(r.user_id, r.trigger_event_id) AS recommendations,
    countIf(r.position > 0) AS items_recommended,
    countIf(r.position > 0 AND c.last_click > r.event_ts) AS items_clicked,
    if(items_recommended = 0, 0, round(items_clicked / items_recommended, 4)) AS ctr
FROM
(
    -- One row per recommended item; a recommendation without items keeps one row
    -- (position 0) so that it still counts as a recommendation.
    SELECT tenant, user_id, trigger_event_id, event_ts, item_id, position
    FROM recommendations FINAL
    LEFT ARRAY JOIN item_ids AS item_id, arrayEnumerate(item_ids) AS position
    WHERE ({tenant:String} = '' OR tenant = {tenant:String})
        AND event_ts >= toStartOfHour({from:DateTime64(3)})
        AND toStartOfHour(event_ts) < {to:DateTime64(3)}
) AS r
LEFT JOIN
(
    -- The user's latest click on the item: clicked after a recommendation iff it is later.
    SELECT tenant, user_id, item_id, max(ts) AS last_click
    FROM events FINAL
    WHERE type = 'click'
        AND ({tenant:String} = '' OR tenant = {tenant:String})
        AND ts > toStartOfHour({from:DateTime64(3)})
    GROUP BY tenant, user_id, item_id
) AS c ON c.tenant = r.tenant AND c.user_id = r.user_id AND c.item_id = r.item_id
GROUP BY tenant, hour
ORDER BY tenant, hour
