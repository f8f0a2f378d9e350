-- analytics.topic_ranking: per as-of day of the run and organization, its 10 most mentioned
-- topics over the 7 days D-6..D of processed_data.enhanced_transcriptions. mention_count =
-- distinct feedback naming the topic; share_of_feedback = mention_count / the organization's
-- feedback with a sentiment label in the window (NULL when none); avg_sentiment_score over
-- the mentioning feedback; rank by mentions desc, then topic name. Spark SQL; parameters
-- :start_date, :end_date (inclusive).
WITH as_of AS (
    SELECT CAST(d AS DATE) AS as_of_date
    FROM (SELECT explode(sequence(CAST(:start_date AS DATE), CAST(:end_date AS DATE), INTERVAL 1 DAY)) AS d) s
),
windowed AS (
    SELECT a.as_of_date, e.organization_id, e.voice_feedback_id, e.sentiment_label,
           e.sentiment_score, e.topics
    FROM as_of a
    JOIN processed_data.enhanced_transcriptions e
        ON e.event_date <= a.as_of_date
       -- date_sub is a timestamp on DuckDB: cast so both compare dates.
       AND e.event_date >= CAST(date_sub(a.as_of_date, 6) AS DATE)
),
labelled AS (
    SELECT as_of_date, organization_id,
           COUNT(DISTINCT CASE WHEN sentiment_label IS NOT NULL THEN voice_feedback_id END)
               AS labelled_feedback
    FROM windowed
    GROUP BY as_of_date, organization_id
),
-- One row per feedback and topic: a topic named twice in one transcript is one mention.
mentions AS (
    SELECT DISTINCT as_of_date, organization_id, voice_feedback_id, sentiment_label,
           sentiment_score, topic
    FROM (
        SELECT as_of_date, organization_id, voice_feedback_id, sentiment_label,
               sentiment_score, explode(topics) AS topic
        FROM windowed
    ) x
    WHERE topic IS NOT NULL
),
ranked AS (
    SELECT as_of_date, organization_id, topic,
           COUNT(DISTINCT voice_feedback_id) AS mention_count,
           -- The share's numerator counts what its denominator counts: labelled feedback.
           COUNT(DISTINCT CASE WHEN sentiment_label IS NOT NULL THEN voice_feedback_id END)
               AS labelled_mentions,
           AVG(sentiment_score) AS avg_sentiment_score,
           ROW_NUMBER() OVER (
               PARTITION BY as_of_date, organization_id
               ORDER BY COUNT(DISTINCT voice_feedback_id) DESC, topic
           ) AS `rank`
    FROM mentions
    GROUP BY as_of_date, organization_id, topic
)
SELECT r.as_of_date, r.organization_id, r.topic, r.`rank`, r.mention_count,
       CASE WHEN l.labelled_feedback = 0 THEN NULL
            ELSE r.labelled_mentions / l.labelled_feedback END AS share_of_feedback,
       r.avg_sentiment_score
FROM ranked r
JOIN labelled l ON l.as_of_date = r.as_of_date AND l.organization_id = r.organization_id
WHERE r.`rank` <= 10
