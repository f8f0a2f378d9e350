-- analytics.trending_topics: per as-of day D of the run, organization and topic, the distinct
-- feedback naming the topic in this week (D-6..D) against last week (D-13..D-7), from
-- processed_data.enhanced_transcriptions; a row for every topic named in either week.
-- growth_rate = change / last_week_count, NULL when the topic is new (last week 0).
-- Spark SQL; parameters :start_date, :end_date (inclusive).
WITH as_of AS (
    SELECT CAST(d AS DATE) AS as_of_date
    FROM (SELECT explode(sequence(CAST(:start_date AS DATE), CAST(:end_date AS DATE), INTERVAL 1 DAY)) AS d) s
),
mentions AS (
    SELECT DISTINCT a.as_of_date, x.organization_id, x.topic, x.voice_feedback_id,
           -- date_sub is a timestamp on DuckDB: cast so both compare dates.
           x.event_date >= CAST(date_sub(a.as_of_date, 6) AS DATE) AS this_week
    FROM as_of a
    JOIN (
        SELECT organization_id, voice_feedback_id, event_date, explode(topics) AS topic
        FROM processed_data.enhanced_transcriptions
    ) x
        ON x.event_date <= a.as_of_date
       AND x.event_date >= CAST(date_sub(a.as_of_date, 13) AS DATE)
    WHERE x.topic IS NOT NULL
),
counts AS (
    SELECT as_of_date, organization_id, topic,
           COUNT(DISTINCT CASE WHEN this_week THEN voice_feedback_id END) AS this_week_count,
           COUNT(DISTINCT CASE WHEN NOT this_week THEN voice_feedback_id END) AS last_week_count
    FROM mentions
    GROUP BY as_of_date, organization_id, topic
)
SELECT as_of_date, organization_id, topic, this_week_count, last_week_count,
       this_week_count - last_week_count AS change,
       CASE WHEN last_week_count = 0 THEN NULL
            ELSE (this_week_count - last_week_count) / last_week_count END AS growth_rate,
       last_week_count = 0 AS is_new
FROM counts
