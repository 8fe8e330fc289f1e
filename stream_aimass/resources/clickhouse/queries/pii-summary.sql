-- Personal data found per tenant, type and action over [from, to) in document time: how many
-- findings and in how many documents, of each document's CURRENT version (a finding an
-- updated document no longer has stops counting). Never a value: pii_findings keeps none.
-- Parameters: tenant ('' = every tenant), from, to.
SELECT
    tenant,
    type,
    action,
    count() AS findings,
    uniqExact(doc_id) AS documents
FROM pii_findings FINAL
WHERE ({tenant:String} = '' OR tenant = {tenant:String})
    AND ts >= {from:DateTime64(3)}
    AND ts < {to:DateTime64(3)}
    -- The current version of each document: the highest in documents or its findings (a
    -- version without findings has a documents row only).
    AND (tenant, doc_id, doc_version) IN (
        SELECT tenant, doc_id, max(version)
        FROM
        (
            SELECT tenant, doc_id, version
            FROM documents FINAL
            WHERE ({tenant:String} = '' OR tenant = {tenant:String})
            UNION ALL
            SELECT tenant, doc_id, doc_version AS version
            FROM pii_findings FINAL
            WHERE ({tenant:String} = '' OR tenant = {tenant:String})
        )
        GROUP BY tenant, doc_id
    )
GROUP BY tenant, type, action
ORDER BY tenant, findings DESC, type, action
