-- Enriched documents per tenant (deduplicated).
SELECT tenant, count() AS documents, sum(tokens) AS tokens, max(ts) AS latest
FROM documents FINAL
GROUP BY tenant
ORDER BY tenant
