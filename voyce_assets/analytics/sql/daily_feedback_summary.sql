-- analytics.daily_feedback_summary: one row per organization and day of feedback.
-- Spark SQL (Databricks); DuckDB runs it transpiled by sqlglot. Parameters: :start_date,
-- :end_date (inclusive). Counts of nothing are 0 and rates of nothing NULL, never NaN.
WITH feedback AS (
    SELECT id, organization_id, event_date, audio_duration_seconds
    FROM raw_data.voice_feedback
    WHERE event_date BETWEEN :start_date AND :end_date
),
transcripts AS (
    SELECT t.voice_feedback_id, t.error_message, t.processing_time_ms
    FROM raw_data.transcriptions t
    WHERE t.event_date BETWEEN :start_date AND :end_date
),
sentiment AS (
    SELECT s.voice_feedback_id, s.sentiment_label, s.sentiment_score
    FROM raw_data.sentiment_analysis s
    WHERE s.event_date BETWEEN :start_date AND :end_date AND s.error_message IS NULL
),
-- The notebooks collected arrays of arrays here; topics are flattened, counted, ranked.
topics AS (
    SELECT f.organization_id, f.event_date, topic
    FROM (
        SELECT voice_feedback_id, explode(topics) AS topic
        FROM processed_data.enhanced_transcriptions
        WHERE event_date BETWEEN :start_date AND :end_date
    ) e
    JOIN feedback f ON f.id = e.voice_feedback_id
),
topic_rank AS (
    SELECT organization_id, event_date, topic,
           ROW_NUMBER() OVER (
               PARTITION BY organization_id, event_date ORDER BY COUNT(*) DESC, topic
           ) AS rn
    FROM topics
    GROUP BY organization_id, event_date, topic
),
top_topics AS (
    SELECT organization_id, event_date,
           transform(
               sort_array(collect_list(named_struct('rn', rn, 'name', topic))), x -> x.name
           ) AS top_topics
    FROM topic_rank
    WHERE rn <= 5
    GROUP BY organization_id, event_date
),
tag_rank AS (
    SELECT f.organization_id, f.event_date, g.name,
           ROW_NUMBER() OVER (
               PARTITION BY f.organization_id, f.event_date ORDER BY COUNT(*) DESC, g.name
           ) AS rn
    FROM raw_data.feedback_tags ft
    JOIN raw_data.tags g ON g.id = ft.tag_id
    JOIN feedback f ON f.id = ft.voice_feedback_id
    GROUP BY f.organization_id, f.event_date, g.name
),
top_tags AS (
    SELECT organization_id, event_date,
           transform(
               sort_array(collect_list(named_struct('rn', rn, 'name', name))), x -> x.name
           ) AS top_tags
    FROM tag_rank
    WHERE rn <= 5
    GROUP BY organization_id, event_date
),
per_feedback AS (
    SELECT f.organization_id, f.event_date, f.audio_duration_seconds,
           t.voice_feedback_id IS NOT NULL AS transcribed_attempted,
           t.voice_feedback_id IS NOT NULL AND t.error_message IS NULL AS transcribed,
           CASE WHEN t.error_message IS NULL THEN t.processing_time_ms END AS processing_time_ms,
           s.sentiment_label, s.sentiment_score
    FROM feedback f
    LEFT JOIN transcripts t ON t.voice_feedback_id = f.id
    LEFT JOIN sentiment s ON s.voice_feedback_id = f.id
),
summary AS (
    SELECT organization_id, event_date,
           COUNT(*) AS total_feedback_count,
           AVG(audio_duration_seconds) AS avg_duration_seconds,
           -- SUM(CASE ...), not COUNT_IF: DuckDB's COUNT_IF of only NULLs is NULL, Spark's 0.
           SUM(CASE WHEN sentiment_label = 'positive' THEN 1 ELSE 0 END)
               AS sentiment_positive_count,
           SUM(CASE WHEN sentiment_label = 'neutral' THEN 1 ELSE 0 END) AS sentiment_neutral_count,
           SUM(CASE WHEN sentiment_label = 'negative' THEN 1 ELSE 0 END)
               AS sentiment_negative_count,
           AVG(sentiment_score) AS avg_sentiment_score,
           CASE WHEN SUM(CASE WHEN transcribed_attempted THEN 1 ELSE 0 END) = 0 THEN NULL
                ELSE SUM(CASE WHEN transcribed THEN 1 ELSE 0 END)
                     / SUM(CASE WHEN transcribed_attempted THEN 1 ELSE 0 END) END
               AS processing_success_rate,
           AVG(processing_time_ms) AS avg_processing_time_ms
    FROM per_feedback
    GROUP BY organization_id, event_date
)
SELECT s.event_date AS `date`,
       s.organization_id,
       s.total_feedback_count,
       s.avg_duration_seconds,
       s.sentiment_positive_count,
       s.sentiment_neutral_count,
       s.sentiment_negative_count,
       s.avg_sentiment_score,
       COALESCE(tt.top_topics, array()) AS top_topics,
       COALESCE(tg.top_tags, array()) AS top_tags,
       s.processing_success_rate,
       s.avg_processing_time_ms
FROM summary s
LEFT JOIN top_topics tt ON tt.organization_id = s.organization_id AND tt.event_date = s.event_date
LEFT JOIN top_tags tg ON tg.organization_id = s.organization_id AND tg.event_date = s.event_date
