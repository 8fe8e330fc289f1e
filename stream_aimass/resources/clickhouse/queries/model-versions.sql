-- Which model versions produced the stored documents.
SELECT model_name, model_version, count() AS documents, min(enriched_at) AS first, max(enriched_at) AS last
FROM documents FINAL
GROUP BY model_name, model_version
ORDER BY last DESC
