-- analytics.topic_sentiment: per as-of day D of the run, organization, topic and sentiment
-- label, the distinct feedback naming the topic over the 30 days D-29..D of
-- processed_data.enhanced_transcriptions (transcripts without a label left out).
-- share_of_topic = mention_count / the topic's labelled mentions in the window.
-- Spark SQL; parameters :start_date, :end_date (inclusive).
WITH as_of AS (
    SELECT CAST(d AS DATE) AS as_of_date
    FROM (SELECT explode(sequence(CAST(:start_date AS DATE), CAST(:end_date AS DATE), INTERVAL 1 DAY)) AS d) s
),
-- One row per feedback and topic: a topic named twice in one transcript is one mention.
mentions AS (
    SELECT DISTINCT a.as_of_date, x.organization_id, x.topic, x.sentiment_label,
           x.voice_feedback_id, x.sentiment_score
    FROM as_of a
    JOIN (
        SELECT organization_id, voice_feedback_id, event_date, sentiment_label, sentiment_score,
               explode(topics) AS topic
        FROM processed_data.enhanced_transcriptions
        WHERE sentiment_label IS NOT NULL
    ) x
        ON x.event_date <= a.as_of_date
       -- date_sub is a timestamp on DuckDB: cast so both compare dates.
       AND x.event_date >= CAST(date_sub(a.as_of_date, 29) AS DATE)
    WHERE x.topic IS NOT NULL
),
counts AS (
    SELECT as_of_date, organization_id, topic, sentiment_label,
           COUNT(DISTINCT voice_feedback_id) AS mention_count,
           AVG(sentiment_score) AS avg_sentiment_score
    FROM mentions
    GROUP BY as_of_date, organization_id, topic, sentiment_label
),
totals AS (
    SELECT *,
           SUM(mention_count) OVER (PARTITION BY as_of_date, organization_id, topic)
               AS topic_mentions
    FROM counts
)
SELECT as_of_date, organization_id, topic, sentiment_label, mention_count,
       CASE WHEN topic_mentions = 0 THEN NULL
            ELSE CAST(mention_count AS DOUBLE) / topic_mentions END AS share_of_topic,
       avg_sentiment_score
FROM totals
