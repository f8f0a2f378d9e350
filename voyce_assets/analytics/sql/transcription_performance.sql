-- analytics.transcription_performance: per day of the run and transcription engine, every
-- transcription attempt of that day (raw_data.transcriptions, event_date = the feedback's
-- day): files, failed (error_message set), error rate, and over the successful rows only:
-- processing time p50 / p95 (linear interpolation, NULL when none succeeded), mean
-- confidence and the audio transcribed in minutes (voice_feedback.audio_duration_seconds of
-- the recording; known durations only, 0 when none). Spark SQL; parameters :start_date,
-- :end_date (inclusive; each day gets its own rows).
WITH attempts AS (
    SELECT t.event_date, t.transcription_engine,
           t.error_message IS NULL AS ok,
           t.processing_time_ms, t.confidence_score, f.audio_duration_seconds
    FROM raw_data.transcriptions t
    -- LEFT: an attempt still counts as a file when its feedback row is missing.
    LEFT JOIN raw_data.voice_feedback f ON f.id = t.voice_feedback_id
    WHERE t.event_date BETWEEN CAST(:start_date AS DATE) AND CAST(:end_date AS DATE)
),
totals AS (
    SELECT event_date, transcription_engine,
           COUNT(*) AS files,
           SUM(CASE WHEN ok THEN 0 ELSE 1 END) AS failed,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY CASE WHEN ok THEN processing_time_ms END)
               AS p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY CASE WHEN ok THEN processing_time_ms END)
               AS p95,
           AVG(CASE WHEN ok THEN confidence_score END) AS avg_confidence,
           COALESCE(SUM(CASE WHEN ok THEN audio_duration_seconds END), 0) / 60 AS audio_minutes
    FROM attempts
    GROUP BY event_date, transcription_engine
)
SELECT t.event_date AS `date`,
       t.transcription_engine,
       t.files,
       t.failed,
       CASE WHEN t.files = 0 THEN NULL ELSE t.failed / t.files END AS error_rate,
       t.p50 AS p50_processing_ms,
       t.p95 AS p95_processing_ms,
       t.avg_confidence,
       t.audio_minutes
FROM totals t
