-- analytics.processing_funnel: per day of the run and organization, the feedback uploaded
-- that day (raw_data.voice_feedback) and how many of those reached each stage: transcribed (a
-- transcription without error), analysed (a sentiment analysis without error), predicted (at
-- least one row in ml_models.predictions); each rate = stage / uploaded (NULL when 0).
-- Only the day's own feedback counts: stage rows are matched by voice_feedback_id. Spark SQL;
-- parameters :start_date, :end_date (inclusive; each day gets its own rows).
WITH feedback AS (
    SELECT id, organization_id, event_date
    FROM raw_data.voice_feedback
    WHERE event_date BETWEEN CAST(:start_date AS DATE) AND CAST(:end_date AS DATE)
),
-- One row per feedback in each stage (DISTINCT: a retried stage must not count twice). The
-- stage tables are partitioned by the feedback's day, so the same window applies.
transcribed AS (
    SELECT DISTINCT voice_feedback_id
    FROM raw_data.transcriptions
    WHERE event_date BETWEEN CAST(:start_date AS DATE) AND CAST(:end_date AS DATE)
      AND error_message IS NULL
),
analysed AS (
    SELECT DISTINCT voice_feedback_id
    FROM raw_data.sentiment_analysis
    WHERE event_date BETWEEN CAST(:start_date AS DATE) AND CAST(:end_date AS DATE)
      AND error_message IS NULL
),
predicted AS (
    SELECT DISTINCT voice_feedback_id
    FROM ml_models.predictions
    WHERE event_date BETWEEN CAST(:start_date AS DATE) AND CAST(:end_date AS DATE)
),
counts AS (
    SELECT f.event_date, f.organization_id,
           COUNT(*) AS uploaded,
           SUM(CASE WHEN t.voice_feedback_id IS NULL THEN 0 ELSE 1 END) AS transcribed,
           SUM(CASE WHEN s.voice_feedback_id IS NULL THEN 0 ELSE 1 END) AS analysed,
           SUM(CASE WHEN p.voice_feedback_id IS NULL THEN 0 ELSE 1 END) AS predicted
    FROM feedback f
    LEFT JOIN transcribed t ON t.voice_feedback_id = f.id
    LEFT JOIN analysed s ON s.voice_feedback_id = f.id
    LEFT JOIN predicted p ON p.voice_feedback_id = f.id
    GROUP BY f.event_date, f.organization_id
)
SELECT event_date AS `date`,
       organization_id,
       uploaded,
       transcribed,
       analysed,
       predicted,
       CASE WHEN uploaded = 0 THEN NULL ELSE transcribed / uploaded END AS transcribed_rate,
       CASE WHEN uploaded = 0 THEN NULL ELSE analysed / uploaded END AS analysed_rate,
       CASE WHEN uploaded = 0 THEN NULL ELSE predicted / uploaded END AS predicted_rate
FROM counts
