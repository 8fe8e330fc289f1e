-- Which model versions produced the stored rows: the encoder (every document) and each
-- configured classifier (one row per classifier and version; see `models use`).
SELECT role, model_name, model_version, documents, first, last
FROM
(
    SELECT 'encoder' AS role, model_name, model_version, count() AS documents,
           min(enriched_at) AS first, max(enriched_at) AS last
    FROM documents FINAL
    GROUP BY model_name, model_version
    UNION ALL
    SELECT concat('classifier:', classifier) AS role, model_name, model_version,
           count() AS documents, min(enriched_at) AS first, max(enriched_at) AS last
    FROM classifications FINAL
    GROUP BY classifier, model_name, model_version
)
ORDER BY role, last DESC
