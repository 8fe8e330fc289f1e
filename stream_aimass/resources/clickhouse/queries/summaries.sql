-- The newest documents with their summaries: the extractive one (every document; sentences:
-- how many it picked) and, with summary_model, the generated summary and headline.
-- Parameters: tenant ('' = every tenant), from, to (document time), limit.
SELECT
    tenant,
    doc_id,
    ts,
    title,
    length(summary_starts) AS sentences,
    summary,
    headline,
    generated_summary
FROM documents FINAL
WHERE ({tenant:String} = '' OR tenant = {tenant:String})
    AND ts >= {from:DateTime64(3)}
    AND ts < {to:DateTime64(3)}
ORDER BY ts DESC, tenant, doc_id
LIMIT {limit:UInt32}
