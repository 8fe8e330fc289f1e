-- Where the documents of each tenant and hour came from: the stream (the source topic, e.g.
-- aimass.documents) or the HTTP API (source `api`, POST /v1/enrich). The stored version of
-- each document, in the hour it was enriched; the billing totals are the `usage` query's.
-- Parameters: tenant ('' = every tenant), from, to.
SELECT
    tenant,
    toStartOfHour(enriched_at) AS hour,
    source_topic AS source,
    uniqExact(doc_id) AS documents,
    sum(tokens) AS tokens,
    round(sum(compute_ms), 3) AS compute_ms
FROM documents FINAL
WHERE ({tenant:String} = '' OR tenant = {tenant:String})
    AND toStartOfHour(enriched_at) >= toStartOfHour({from:DateTime64(3)})
    AND toStartOfHour(enriched_at) < {to:DateTime64(3)}
GROUP BY tenant, hour, source
ORDER BY tenant, hour, source
