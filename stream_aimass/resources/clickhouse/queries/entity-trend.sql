-- Mentions of one linked entity per hour (document time) over the hours that overlap
-- [from, to): distinct mentions and documents, of each document's current version only.
-- Parameters: entity (a knowledge-base id, e.g. company/apple), tenant ('' = every tenant),
-- from, to.
SELECT
    toStartOfHour(ts) AS hour,
    count() AS mentions,
    uniqExact(tenant, doc_id) AS documents
FROM entity_mentions FINAL
WHERE entity_id = {entity:String}
    AND entity_id != ''
    AND ({tenant:String} = '' OR tenant = {tenant:String})
    AND ts >= toStartOfHour({from:DateTime64(3)})
    AND toStartOfHour(ts) < {to:DateTime64(3)}
    -- The current version of each document: the highest in documents or its mentions (a
    -- version that lost all its mentions has a documents row only).
    AND (tenant, doc_id, doc_version) IN (
        SELECT tenant, doc_id, max(version)
        FROM
        (
            SELECT tenant, doc_id, version
            FROM documents FINAL
            WHERE ({tenant:String} = '' OR tenant = {tenant:String})
            UNION ALL
            SELECT tenant, doc_id, doc_version AS version
            FROM entity_mentions FINAL
            WHERE ({tenant:String} = '' OR tenant = {tenant:String})
        )
        GROUP BY tenant, doc_id
    )
GROUP BY hour
ORDER BY hour
