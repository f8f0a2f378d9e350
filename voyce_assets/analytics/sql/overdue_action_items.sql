-- analytics.overdue_action_items: per as-of day D of the run, one row per action item
-- created on or before D, not completed by the end of D (completed_at NULL or on a later
-- day), not cancelled (current status), whose due date is before D; days_overdue =
-- datediff(D, due_date) >= 1. The organization comes through the item's voice_feedback.
-- Spark SQL; parameters :start_date, :end_date (inclusive; each day gets its own rows).
WITH as_of AS (
    SELECT CAST(d AS DATE) AS as_of_date
    FROM (SELECT explode(sequence(CAST(:start_date AS DATE), CAST(:end_date AS DATE), INTERVAL 1 DAY)) AS d) s
)
SELECT a.as_of_date,
       i.id AS action_item_id,
       f.organization_id,
       i.voice_feedback_id,
       i.description,
       i.priority,
       i.status,
       i.assigned_to,
       i.due_date,
       datediff(a.as_of_date, i.due_date) AS days_overdue
FROM as_of a
-- event_date is created_at's date: created on or before D.
JOIN raw_data.action_items i
    ON i.event_date <= a.as_of_date
   AND i.due_date < a.as_of_date
   AND (i.completed_at IS NULL OR CAST(i.completed_at AS DATE) > a.as_of_date)
   AND i.status <> 'cancelled'
JOIN raw_data.voice_feedback f ON f.id = i.voice_feedback_id
