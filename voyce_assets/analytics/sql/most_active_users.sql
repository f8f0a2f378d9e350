-- analytics.most_active_users: per as-of day D of the run and organization, its 10 users
-- (user_id known) with the most feedback over the 30 days D-29..D of raw_data.voice_feedback.
-- total_audio_minutes = summed durations / 60 (NULL when no duration is known);
-- avg_sentiment_score over their analysed feedback (error_message IS NULL); rank by
-- feedback_count desc, then the latest feedback first, then user_id. Spark SQL; parameters
-- :start_date, :end_date (inclusive).
WITH as_of AS (
    SELECT CAST(d AS DATE) AS as_of_date
    FROM (SELECT explode(sequence(CAST(:start_date AS DATE), CAST(:end_date AS DATE), INTERVAL 1 DAY)) AS d) s
),
feedback AS (
    SELECT a.as_of_date, f.id, f.organization_id, f.user_id, f.audio_duration_seconds,
           f.created_at
    FROM as_of a
    JOIN raw_data.voice_feedback f
        ON f.event_date <= a.as_of_date
       -- date_sub is a timestamp on DuckDB: cast so both compare dates.
       AND f.event_date >= CAST(date_sub(a.as_of_date, 29) AS DATE)
    WHERE f.user_id IS NOT NULL
),
sentiment AS (
    SELECT voice_feedback_id, sentiment_score
    FROM raw_data.sentiment_analysis
    WHERE error_message IS NULL
),
per_user AS (
    SELECT f.as_of_date, f.organization_id, f.user_id,
           COUNT(*) AS feedback_count,
           -- SUM of only NULLs is NULL on both engines: minutes unknown, not 0.
           SUM(f.audio_duration_seconds) / 60 AS total_audio_minutes,
           AVG(s.sentiment_score) AS avg_sentiment_score,
           MAX(f.created_at) AS last_feedback_at
    FROM feedback f
    LEFT JOIN sentiment s ON s.voice_feedback_id = f.id
    GROUP BY f.as_of_date, f.organization_id, f.user_id
),
ranked AS (
    SELECT *,
           ROW_NUMBER() OVER (
               PARTITION BY as_of_date, organization_id
               ORDER BY feedback_count DESC, last_feedback_at DESC, user_id
           ) AS `rank`
    FROM per_user
)
SELECT as_of_date, organization_id, user_id, `rank`, feedback_count, total_audio_minutes,
       avg_sentiment_score, last_feedback_at
FROM ranked
WHERE `rank` <= 10
