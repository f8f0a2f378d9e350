-- analytics.organization_dashboard: per as-of day D of the run, one row per organization that
-- is active (raw_data.organizations.is_active, created on or before D) or has feedback in the
-- 30 days D-29..D: feedback, distinct users (NULL user_id not counted), sentiment over the
-- analysed feedback (error_message IS NULL; negative share NULL when none analysed), the most
-- mentioned topic (ties by name; NULL if none), action items open at the end of D (created
-- on or before D, not completed by the end of D, not cancelled) and those of them due before
-- D, and the window's cost (DECIMAL; NULL without cost rows).
-- Spark SQL; parameters :start_date, :end_date.
WITH as_of AS (
    SELECT CAST(d AS DATE) AS as_of_date,
           CAST(date_sub(CAST(d AS DATE), 29) AS DATE) AS window_start
    FROM (SELECT explode(sequence(CAST(:start_date AS DATE), CAST(:end_date AS DATE), INTERVAL 1 DAY)) AS d) s
),
window_feedback AS (
    SELECT a.as_of_date, f.id, f.organization_id, f.user_id
    FROM as_of a
    JOIN raw_data.voice_feedback f ON f.event_date BETWEEN a.window_start AND a.as_of_date
),
feedback_stats AS (
    SELECT as_of_date, organization_id,
           COUNT(*) AS feedback_count_30d,
           COUNT(DISTINCT user_id) AS active_users_30d
    FROM window_feedback
    GROUP BY as_of_date, organization_id
),
-- Counted apart from feedback_stats so a second analysis row cannot inflate feedback counts.
sentiment_stats AS (
    SELECT f.as_of_date, f.organization_id,
           AVG(s.sentiment_score) AS avg_sentiment_score_30d,
           SUM(CASE WHEN s.sentiment_label = 'negative' THEN 1 ELSE 0 END) / COUNT(*)
               AS negative_share_30d
    FROM window_feedback f
    JOIN raw_data.sentiment_analysis s
        ON s.voice_feedback_id = f.id AND s.error_message IS NULL
    GROUP BY f.as_of_date, f.organization_id
),
topic_rank AS (
    SELECT a.as_of_date, e.organization_id, e.topic,
           ROW_NUMBER() OVER (
               PARTITION BY a.as_of_date, e.organization_id ORDER BY COUNT(*) DESC, e.topic
           ) AS rn
    FROM as_of a
    JOIN (
        SELECT organization_id, event_date, explode(topics) AS topic
        FROM processed_data.enhanced_transcriptions
    ) e ON e.event_date BETWEEN a.window_start AND a.as_of_date
    WHERE e.topic IS NOT NULL
    GROUP BY a.as_of_date, e.organization_id, e.topic
),
-- Open as at the end of D: a later completion (or a status changed since) does not count.
-- event_date is created_at's date.
action_stats AS (
    SELECT a.as_of_date, f.organization_id,
           COUNT(*) AS open_action_items,
           SUM(CASE WHEN ai.due_date < a.as_of_date THEN 1 ELSE 0 END) AS overdue_action_items
    FROM as_of a
    JOIN raw_data.action_items ai ON ai.event_date <= a.as_of_date
    JOIN raw_data.voice_feedback f ON f.id = ai.voice_feedback_id
    WHERE ai.status <> 'cancelled'
      AND (ai.completed_at IS NULL OR CAST(ai.completed_at AS DATE) > a.as_of_date)
    GROUP BY a.as_of_date, f.organization_id
),
cost_stats AS (
    SELECT a.as_of_date, c.organization_id, SUM(c.total_cost) AS cost_usd_30d
    FROM as_of a
    JOIN analytics.cost_tracking c ON c.cost_date BETWEEN a.window_start AND a.as_of_date
    WHERE c.organization_id IS NOT NULL
    GROUP BY a.as_of_date, c.organization_id
),
shown AS (
    SELECT a.as_of_date, o.id AS organization_id
    FROM as_of a
    JOIN raw_data.organizations o ON o.is_active AND o.event_date <= a.as_of_date
    UNION
    SELECT as_of_date, organization_id FROM feedback_stats
)
SELECT sh.as_of_date,
       sh.organization_id,
       o.name AS organization_name,
       COALESCE(fs.feedback_count_30d, 0) AS feedback_count_30d,
       COALESCE(fs.active_users_30d, 0) AS active_users_30d,
       ss.avg_sentiment_score_30d,
       ss.negative_share_30d,
       tr.topic AS top_topic_30d,
       COALESCE(ac.open_action_items, 0) AS open_action_items,
       COALESCE(ac.overdue_action_items, 0) AS overdue_action_items,
       cs.cost_usd_30d
FROM shown sh
LEFT JOIN raw_data.organizations o ON o.id = sh.organization_id
LEFT JOIN feedback_stats fs
    ON fs.as_of_date = sh.as_of_date AND fs.organization_id = sh.organization_id
LEFT JOIN sentiment_stats ss
    ON ss.as_of_date = sh.as_of_date AND ss.organization_id = sh.organization_id
LEFT JOIN topic_rank tr
    ON tr.as_of_date = sh.as_of_date AND tr.organization_id = sh.organization_id AND tr.rn = 1
LEFT JOIN action_stats ac
    ON ac.as_of_date = sh.as_of_date AND ac.organization_id = sh.organization_id
LEFT JOIN cost_stats cs
    ON cs.as_of_date = sh.as_of_date AND cs.organization_id = sh.organization_id
