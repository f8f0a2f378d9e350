-- analytics.organization_metrics: per organization and day with activity (feedback or
-- cost), its users, engagement, audio, storage and cost. Spark SQL; parameters :start_date,
-- :end_date (inclusive). Averages of nothing are NULL, never NaN.
WITH days AS (
    SELECT CAST(d AS DATE) AS metric_date
    FROM (SELECT explode(sequence(CAST(:start_date AS DATE), CAST(:end_date AS DATE),
                                  INTERVAL 1 DAY)) AS d) s
),
day_feedback AS (
    SELECT organization_id, event_date AS metric_date,
           COUNT(*) AS total_feedback_count,
           COUNT(DISTINCT user_id) AS active_users,
           SUM(audio_duration_seconds) / 60 AS total_audio_minutes
    FROM raw_data.voice_feedback
    WHERE event_date BETWEEN :start_date AND :end_date
    GROUP BY organization_id, event_date
),
day_cost AS (
    SELECT organization_id, cost_date AS metric_date, SUM(total_cost) AS processing_cost_usd
    FROM analytics.cost_tracking
    WHERE cost_date BETWEEN :start_date AND :end_date AND organization_id IS NOT NULL
    GROUP BY organization_id, cost_date
),
-- Paid calls to a language model: the local analyzer and cached answers call nothing.
day_calls AS (
    SELECT f.organization_id, s.event_date AS metric_date, COUNT(*) AS api_calls_count
    FROM raw_data.sentiment_analysis s
    JOIN raw_data.voice_feedback f ON f.id = s.voice_feedback_id
    WHERE s.event_date BETWEEN :start_date AND :end_date
      AND s.provider <> 'local' AND NOT COALESCE(s.cached, FALSE)
    GROUP BY f.organization_id, s.event_date
),
active AS (
    SELECT organization_id, metric_date FROM day_feedback
    UNION
    SELECT organization_id, metric_date FROM day_cost
),
-- Users and storage as they stood at the end of each day.
users_by_day AS (
    SELECT d.metric_date, u.organization_id, COUNT(*) AS total_users
    FROM days d
    JOIN raw_data.users u ON u.event_date <= d.metric_date AND u.is_active
    GROUP BY d.metric_date, u.organization_id
),
storage_by_day AS (
    SELECT d.metric_date, f.organization_id,
           CAST(SUM(COALESCE(f.file_size_bytes, 0)) AS DOUBLE) / 1073741824 AS storage_used_gb
    FROM days d
    JOIN raw_data.voice_feedback f ON f.event_date <= d.metric_date
    GROUP BY d.metric_date, f.organization_id
)
SELECT a.organization_id,
       a.metric_date,
       COALESCE(u.total_users, 0) AS total_users,
       COALESCE(f.active_users, 0) AS active_users,
       COALESCE(f.total_feedback_count, 0) AS total_feedback_count,
       CASE WHEN COALESCE(f.active_users, 0) = 0 THEN NULL
            ELSE f.total_feedback_count / f.active_users END AS avg_feedback_per_user,
       f.total_audio_minutes,
       COALESCE(s.storage_used_gb, 0.0) AS storage_used_gb,
       COALESCE(c.api_calls_count, 0) AS api_calls_count,
       COALESCE(k.processing_cost_usd, CAST(0 AS DECIMAL(18, 6))) AS processing_cost_usd
FROM active a
LEFT JOIN day_feedback f ON f.organization_id = a.organization_id AND f.metric_date = a.metric_date
LEFT JOIN day_cost k ON k.organization_id = a.organization_id AND k.metric_date = a.metric_date
LEFT JOIN day_calls c ON c.organization_id = a.organization_id AND c.metric_date = a.metric_date
LEFT JOIN users_by_day u ON u.organization_id = a.organization_id AND u.metric_date = a.metric_date
LEFT JOIN storage_by_day s
    ON s.organization_id = a.organization_id AND s.metric_date = a.metric_date
