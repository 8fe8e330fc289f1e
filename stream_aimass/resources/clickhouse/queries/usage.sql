-- Billable usage per tenant and hour, over the hours that overlap [from, to).
-- Parameters: tenant ('' = every tenant), from, to.
SELECT
    tenant,
    hour,
    uniqExactMerge(documents) AS documents,
    sum(tokens) AS tokens,
    uniqExactMerge(events) AS events,
    sum(recommendations) AS recommendations,
    round(sum(compute_ms), 3) AS compute_ms
FROM usage_hourly
WHERE ({tenant:String} = '' OR tenant = {tenant:String})
    AND hour >= toStartOfHour({from:DateTime64(3)})
    AND hour < {to:DateTime64(3)}
GROUP BY tenant, hour
ORDER BY tenant, hour
