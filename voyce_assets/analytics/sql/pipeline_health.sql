-- analytics.pipeline_health: one row per day of the run that has feedback, transcriptions,
-- analyses, predictions or cost (a day with none of them has no row): the seed's key
-- metrics. Counts of nothing are 0, rates of nothing NULL. The ingestion columns are NULL
-- here: no table records syncs; the asset fills failed_syncs and data_quality_failures from
-- Dagster's event log, and sync_latency_seconds stays NULL (no synced_at to measure from).
-- Spark SQL; parameters :start_date, :end_date.
WITH feedback AS (
    SELECT event_date AS day,
           COUNT(*) AS feedback_count,
           SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS feedback_failed_count
    FROM raw_data.voice_feedback
    WHERE event_date BETWEEN :start_date AND :end_date
    GROUP BY event_date
),
voice AS (
    SELECT event_date AS day,
           COUNT(*) AS files_processed,
           SUM(CASE WHEN error_message IS NOT NULL THEN 1 ELSE 0 END) AS files_failed,
           AVG(CASE WHEN error_message IS NULL THEN confidence_score END)
               AS avg_transcription_confidence,
           AVG(CASE WHEN error_message IS NULL THEN processing_time_ms END)
               AS avg_processing_time_ms
    FROM raw_data.transcriptions
    WHERE event_date BETWEEN :start_date AND :end_date
    GROUP BY event_date
),
-- A call is an analysis the provider was asked for: not served from the cache, or failed.
sentiment AS (
    SELECT event_date AS day,
           SUM(CASE WHEN NOT cached OR error_message IS NOT NULL THEN 1 ELSE 0 END)
               AS sentiment_calls,
           SUM(CASE WHEN error_message IS NOT NULL THEN 1 ELSE 0 END) AS sentiment_errors,
           AVG(CASE WHEN error_message IS NULL THEN sentiment_confidence END)
               AS avg_sentiment_confidence,
           SUM(CASE WHEN error_message IS NULL AND sentiment_label = 'positive' THEN 1 ELSE 0 END)
               AS sentiment_positive_count,
           SUM(CASE WHEN error_message IS NULL AND sentiment_label = 'neutral' THEN 1 ELSE 0 END)
               AS sentiment_neutral_count,
           SUM(CASE WHEN error_message IS NULL AND sentiment_label = 'negative' THEN 1 ELSE 0 END)
               AS sentiment_negative_count,
           SUM(CASE WHEN error_message IS NULL AND sentiment_label = 'mixed' THEN 1 ELSE 0 END)
               AS sentiment_mixed_count
    FROM raw_data.sentiment_analysis
    WHERE event_date BETWEEN :start_date AND :end_date
    GROUP BY event_date
),
-- 0.6: the seed's low-confidence line (a DOUBLE: a decimal literal is a DECIMAL on both).
predictions AS (
    SELECT event_date AS day,
           COUNT(*) AS prediction_count,
           SUM(CASE WHEN prediction_confidence < CAST(0.6 AS DOUBLE) THEN 1 ELSE 0 END)
               / COUNT(*) AS low_confidence_share,
           AVG(inference_time_ms) AS avg_inference_time_ms
    FROM ml_models.predictions
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
    UNION SELECT day FROM voice
    UNION SELECT day FROM sentiment
    UNION SELECT day FROM predictions
    UNION SELECT day FROM costs
)
SELECT d.day AS `date`,
       CAST(NULL AS DOUBLE) AS sync_latency_seconds,
       CAST(NULL AS BIGINT) AS failed_syncs,
       CAST(NULL AS BIGINT) AS data_quality_failures,
       COALESCE(f.feedback_count, 0) AS feedback_count,
       COALESCE(f.feedback_failed_count, 0) AS feedback_failed_count,
       COALESCE(v.files_processed, 0) AS files_processed,
       COALESCE(v.files_failed, 0) AS files_failed,
       CASE WHEN v.files_processed IS NULL THEN NULL
            ELSE (v.files_processed - v.files_failed) / v.files_processed END
           AS processing_success_rate,
       CASE WHEN v.files_processed IS NULL THEN NULL
            ELSE v.files_failed / v.files_processed END AS processing_failure_rate,
       v.avg_transcription_confidence,
       v.avg_processing_time_ms,
       COALESCE(s.sentiment_calls, 0) AS sentiment_calls,
       COALESCE(s.sentiment_errors, 0) AS sentiment_errors,
       CASE WHEN COALESCE(s.sentiment_calls, 0) = 0 THEN NULL
            ELSE (s.sentiment_calls - s.sentiment_errors) / s.sentiment_calls END
           AS sentiment_success_rate,
       s.avg_sentiment_confidence,
       COALESCE(s.sentiment_positive_count, 0) AS sentiment_positive_count,
       COALESCE(s.sentiment_neutral_count, 0) AS sentiment_neutral_count,
       COALESCE(s.sentiment_negative_count, 0) AS sentiment_negative_count,
       COALESCE(s.sentiment_mixed_count, 0) AS sentiment_mixed_count,
       COALESCE(p.prediction_count, 0) AS prediction_count,
       p.low_confidence_share,
       p.avg_inference_time_ms,
       COALESCE(c.total_cost_usd, CAST(0 AS DECIMAL(18, 6))) AS total_cost_usd,
       CASE WHEN f.feedback_count IS NULL THEN NULL
            ELSE CAST(COALESCE(c.total_cost_usd, 0) AS DOUBLE) / f.feedback_count END
           AS cost_per_feedback_usd
FROM days d
LEFT JOIN feedback f ON f.day = d.day
LEFT JOIN voice v ON v.day = d.day
LEFT JOIN sentiment s ON s.day = d.day
LEFT JOIN predictions p ON p.day = d.day
LEFT JOIN costs c ON c.day = d.day
