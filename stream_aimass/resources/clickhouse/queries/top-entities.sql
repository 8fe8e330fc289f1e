-- The 20 most mentioned linked entities over the hours that overlap [from, to), in document
-- time (when the documents were written). Distinct mentions and documents of each document's
-- CURRENT version only (an updated document that no longer names an entity stops counting
-- for it); label and name are those of its latest mention.
-- Parameters: tenant ('' = every tenant), from, to.
SELECT
    entity_id,
    argMax(entity_name, ts) AS entity_name,
    argMax(label, ts) AS label,
    count() AS mentions,
    uniqExact(tenant, doc_id) AS documents
FROM entity_mentions FINAL
WHERE entity_id != ''
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
GROUP BY entity_id
ORDER BY mentions DESC, documents DESC, entity_id
LIMIT 20
