-- analytics.transcription_duration_buckets: per day of the run and recording-length bucket
-- (voice_feedback.audio_duration_seconds: <30s, 30s-1m, 1-2m, 2-5m, >5m; 'unknown' when the
-- duration, or the feedback row, is missing), every transcription attempt of that day: files,
-- failed (error_message set), error rate, and over the successful rows the mean and p95
-- processing time (linear interpolation; NULL when none succeeded). A bucket without
-- attempts that day has no row. Spark SQL; parameters :start_date, :end_date (inclusive;
-- each day gets its own rows).
WITH attempts AS (
    SELECT t.event_date,
           CASE WHEN f.audio_duration_seconds IS NULL THEN 'unknown'
                WHEN f.audio_duration_seconds < 30 THEN '<30s'
                WHEN f.audio_duration_seconds < 60 THEN '30s-1m'
                WHEN f.audio_duration_seconds < 120 THEN '1-2m'
                WHEN f.audio_duration_seconds < 300 THEN '2-5m'
                ELSE '>5m' END AS duration_bucket,
           t.error_message IS NULL AS ok,
           t.processing_time_ms
    FROM raw_data.transcriptions t
    LEFT JOIN raw_data.voice_feedback f ON f.id = t.voice_feedback_id
    WHERE t.event_date BETWEEN CAST(:start_date AS DATE) AND CAST(:end_date AS DATE)
),
totals AS (
    SELECT event_date, duration_bucket,
           COUNT(*) AS files,
           SUM(CASE WHEN ok THEN 0 ELSE 1 END) AS failed,
           AVG(CASE WHEN ok THEN processing_time_ms END) AS avg_processing_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY CASE WHEN ok THEN processing_time_ms END)
               AS p95
    FROM attempts
    GROUP BY event_date, duration_bucket
)
SELECT t.event_date AS `date`,
       t.duration_bucket,
       t.files,
       t.failed,
       CASE WHEN t.files = 0 THEN NULL ELSE t.failed / t.files END AS error_rate,
       t.avg_processing_ms,
       t.p95 AS p95_processing_ms
FROM totals t
