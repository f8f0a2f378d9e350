-- analytics.sentiment_trends_weekly: per as-of day of the run, per organization, the 12 ISO
-- weeks (Monday start) up to that day: volume and sentiment mix. A week still running counts
-- its days up to the as-of day only. Spark SQL; parameters :start_date, :end_date.
WITH as_of AS (
    SELECT CAST(d AS DATE) AS as_of_date
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
           CAST(date_trunc('WEEK', f.event_date) AS DATE) AS week_start,
           f.sentiment_label, f.sentiment_score
    FROM as_of a
    JOIN feedback f
        ON f.event_date <= a.as_of_date
       AND f.event_date >= date_sub(CAST(date_trunc('WEEK', a.as_of_date) AS DATE), 77)
)
SELECT as_of_date, organization_id, week_start,
       COUNT(*) AS feedback_count,
       SUM(CASE WHEN sentiment_label = 'positive' THEN 1 ELSE 0 END) AS positive_count,
       SUM(CASE WHEN sentiment_label = 'neutral' THEN 1 ELSE 0 END) AS neutral_count,
       SUM(CASE WHEN sentiment_label = 'negative' THEN 1 ELSE 0 END) AS negative_count,
       SUM(CASE WHEN sentiment_label = 'mixed' THEN 1 ELSE 0 END) AS mixed_count,
       AVG(sentiment_score) AS avg_sentiment_score,
       CASE WHEN COUNT(sentiment_label) = 0 THEN NULL
            ELSE SUM(CASE WHEN sentiment_label = 'negative' THEN 1 ELSE 0 END)
                 / COUNT(sentiment_label) END AS negative_share
FROM windowed
GROUP BY as_of_date, organization_id, week_start
