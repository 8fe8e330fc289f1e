-- Mentions of one linked entity per hour (document time) over the hours that overlap
-- [from, to): distinct mentions and documents, from entity_mentions_hourly.
-- Parameters: entity (a knowledge-base id, e.g. company/apple), tenant ('' = every tenant),
-- from, to.
SELECT
    hour,
    uniqExactMerge(mentions) AS mentions,
    uniqExactMerge(documents) AS documents
FROM entity_mentions_hourly
WHERE entity_id = {entity:String}
    AND ({tenant:String} = '' OR tenant = {tenant:String})
    AND hour >= toStartOfHour({from:DateTime64(3)})
    AND hour < {to:DateTime64(3)}
GROUP BY hour
ORDER BY hour
