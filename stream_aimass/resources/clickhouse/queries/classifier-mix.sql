-- Top label per classifier and model version, with its mean score (deduplicated).
SELECT
    classifier,
    model_version,
    top_label,
    count() AS documents,
    round(avg(scores[indexOf(labels, top_label)]), 3) AS mean_top_score
FROM classifications FINAL
GROUP BY classifier, model_version, top_label
ORDER BY classifier, model_version, documents DESC, top_label
