-- analytics.sentiment_trends_monthly: per as-of day of the run, per organization, the 12
-- calendar months up to that day (the as-of month and the 11 before): volume and sentiment
-- mix. The month still running counts its days up to the as-of day only; feedback whose
-- analysis failed counts as volume, not in the mix. Spark SQL; parameters :start_date,
-- :end_date (inclusive).
WITH as_of AS (
    SELECT CAST(d AS DATE) AS as_of_date,
           -- date_trunc gives a timestamp on Spark, add_months one on DuckDB: both cast.
           CAST(add_months(CAST(date_trunc('MONTH', d) AS DATE), -11) AS DATE) AS first_month
    FROM (SELECT explode(sequence(CAST(:start_date AS DATE), CAST(:end_date AS DATE), INTERVAL 1 DAY)) AS d) s
),
feedback AS (
    SELECT f.id, f.organization_id, f.event_date, s.sentiment_label, s.sentiment_score
    FROM raw_data.voice_feedback f
    LEFT JOIN raw_data.sentiment_analysis s
        ON s.voice_feedback_id = f.id AND s.error_message IS NULL
),
windowed AS (
    SELECT a.as_of_date, f.organization_id,
           CAST(date_trunc('MONTH', f.event_date) AS DATE) AS month_start,
           f.sentiment_label, f.sentiment_score
    FROM as_of a
    JOIN feedback f
        ON f.event_date <= a.as_of_date
       AND f.event_date >= a.first_month
)
SELECT as_of_date, organization_id, month_start,
       COUNT(*) AS feedback_count,
       SUM(CASE WHEN sentiment_label = 'positive' THEN 1 ELSE 0 END) AS positive_count,
       SUM(CASE WHEN sentiment_label = 'neutral' THEN 1 ELSE 0 END) AS neutral_count,
       SUM(CASE WHEN sentiment_label = 'negative' THEN 1 ELSE 0 END) AS negative_count,
       SUM(CASE WHEN sentiment_label = 'mixed' THEN 1 ELSE 0 END) AS mixed_count,
       AVG(sentiment_score) AS avg_sentiment_score,
       -- Analysed feedback only; NULL (not NaN) when none of the month's was analysed.
       CASE WHEN COUNT(sentiment_label) = 0 THEN NULL
            ELSE SUM(CASE WHEN sentiment_label = 'negative' THEN 1 ELSE 0 END)
                 / COUNT(sentiment_label) END AS negative_share
FROM windowed
GROUP BY as_of_date, organization_id, month_start
