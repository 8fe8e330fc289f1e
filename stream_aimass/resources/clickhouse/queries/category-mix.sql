-- Share of each top category per tenant (deduplicated).
SELECT
    tenant,
    top_category AS category,
    count() AS documents,
    round(count() / sum(count()) OVER (PARTITION BY tenant), 3) AS share,
    round(avg(category_scores[indexOf(category_labels, top_category)]), 3) AS mean_score
FROM documents FINAL
GROUP BY tenant, top_category
ORDER BY tenant, documents DESC
