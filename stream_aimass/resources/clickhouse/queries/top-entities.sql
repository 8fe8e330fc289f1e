-- The 20 most mentioned linked entities over the hours that overlap [from, to), in document
-- time (when the documents were written). Distinct mentions and documents, from
-- entity_mentions_hourly; label and name are the latest seen for the entity.
-- Parameters: tenant ('' = every tenant), from, to.
SELECT
    entity_id,
    argMax(entity_name, hour) AS entity_name,
    argMax(label, hour) AS label,
    uniqExactMerge(mentions) AS mentions,
    uniqExactMerge(documents) AS documents
FROM entity_mentions_hourly
WHERE ({tenant:String} = '' OR tenant = {tenant:String})
    AND hour >= toStartOfHour({from:DateTime64(3)})
    AND hour < {to:DateTime64(3)}
GROUP BY entity_id
ORDER BY mentions DESC, documents DESC, entity_id
LIMIT 20
