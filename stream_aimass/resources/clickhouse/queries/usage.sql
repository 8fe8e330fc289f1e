-- Billable usage per tenant and hour, over the hours that overlap [from, to).
-- documents, tokens and compute_ms come from the usage_documents ledger (FINAL): every
-- document VERSION enriched counts once, in the hour it was enriched, however often it was
-- delivered; documents counts distinct document ids per hour. events (distinct ids) and
-- recommendations come from usage_hourly.
-- Parameters: tenant ('' = every tenant), from, to.
SELECT
    tenant,
    hour,
    documents,
    tokens,
    events,
    recommendations,
    round(compute_ms, 3) AS compute_ms
FROM
(
    SELECT
        tenant,
        hour,
        uniqExact(doc_id) AS documents,
        sum(tokens) AS tokens,
        sum(compute_ms) AS compute_ms
    FROM usage_documents FINAL
    WHERE ({tenant:String} = '' OR tenant = {tenant:String})
        AND hour >= toStartOfHour({from:DateTime64(3)})
        AND hour < {to:DateTime64(3)}
    GROUP BY tenant, hour
) AS d
FULL OUTER JOIN
(
    SELECT
        tenant,
        hour,
        uniqExactMerge(events) AS events,
        sum(recommendations) AS recommendations
    FROM usage_hourly
    WHERE ({tenant:String} = '' OR tenant = {tenant:String})
        AND hour >= toStartOfHour({from:DateTime64(3)})
        AND hour < {to:DateTime64(3)}
    GROUP BY tenant, hour
    HAVING events > 0 OR recommendations > 0
) AS e USING (tenant, hour)
ORDER BY tenant, hour
