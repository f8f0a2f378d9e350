-- analytics.platform_summary: one row per day of the run that has feedback or cost (a day
-- with neither has no row), for the whole platform: organizations and users with feedback
-- (NULL user_id not counted), feedback, audio hours, transcription and analysis success
-- (rows of the day without error / rows of the day; NULL without rows), sentiment over the
-- analysed rows (error_message IS NULL), the day's cost and cost per feedback.
-- total_cost_usd is 0, not NULL, on a day with feedback but no cost rows (nothing was
-- spent); cost_per_feedback_usd is NULL on a day without feedback.
-- Spark SQL; parameters :start_date, :end_date.
WITH feedback AS (
    SELECT event_date AS day,
           COUNT(DISTINCT organization_id) AS active_organizations,
           COUNT(DISTINCT user_id) AS active_users,
           COUNT(*) AS feedback_count,
           SUM(audio_duration_seconds) / 3600 AS audio_hours
    FROM raw_data.voice_feedback
    WHERE event_date BETWEEN :start_date AND :end_date
    GROUP BY event_date
),
transcripts AS (
    SELECT event_date AS day,
           SUM(CASE WHEN error_message IS NULL THEN 1 ELSE 0 END) / COUNT(*)
               AS transcription_success_rate
    FROM raw_data.transcriptions
    WHERE event_date BETWEEN :start_date AND :end_date
    GROUP BY event_date
),
sentiment AS (
    SELECT event_date AS day,
           SUM(CASE WHEN error_message IS NULL THEN 1 ELSE 0 END) / COUNT(*)
               AS analysis_success_rate,
           AVG(CASE WHEN error_message IS NULL THEN sentiment_score END) AS avg_sentiment_score,
           CASE WHEN SUM(CASE WHEN error_message IS NULL THEN 1 ELSE 0 END) = 0 THEN NULL
                ELSE SUM(CASE WHEN error_message IS NULL AND sentiment_label = 'negative'
                              THEN 1 ELSE 0 END)
                     / SUM(CASE WHEN error_message IS NULL THEN 1 ELSE 0 END) END
               AS negative_share
    FROM raw_data.sentiment_analysis
    WHERE event_date BETWEEN :start_date AND :end_date
    GROUP BY event_date
),
costs AS (
    SELECT cost_date AS day, SUM(total_cost) AS total_cost_usd
    FROM analytics.cost_tracking
    WHERE cost_date BETWEEN :start_date AND :end_date
    GROUP BY cost_date
),
days AS (
    SELECT day FROM feedback
    UNION
    SELECT day FROM costs
)
SELECT d.day AS `date`,
       COALESCE(f.active_organizations, 0) AS active_organizations,
       COALESCE(f.active_users, 0) AS active_users,
       COALESCE(f.feedback_count, 0) AS feedback_count,
       f.audio_hours,
       t.transcription_success_rate,
       s.analysis_success_rate,
       s.avg_sentiment_score,
       s.negative_share,
       COALESCE(c.total_cost_usd, CAST(0 AS DECIMAL(18, 6))) AS total_cost_usd,
       CASE WHEN f.feedback_count IS NULL THEN NULL
            ELSE CAST(COALESCE(c.total_cost_usd, 0) AS DOUBLE) / f.feedback_count END
           AS cost_per_feedback_usd
FROM days d
LEFT JOIN feedback f ON f.day = d.day
LEFT JOIN transcripts t ON t.day = d.day
LEFT JOIN sentiment s ON s.day = d.day
LEFT JOIN costs c ON c.day = d.day
