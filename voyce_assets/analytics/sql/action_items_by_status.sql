-- analytics.action_items_by_status: per as-of day D of the run, organization (through the
-- item's voice_feedback), status as of D and priority: the action items created on or before
-- D. Status as of D: 'completed' when completed_at's date <= D; an item completed only later
-- (or marked completed without completed_at) was still 'open' on D; otherwise the current
-- status. completion_rate = the organization's completed-as-of-D items / all its items
-- created by D (the same on each of its rows). Spark SQL; parameters :start_date, :end_date.
WITH as_of AS (
    SELECT CAST(d AS DATE) AS as_of_date
    FROM (SELECT explode(sequence(CAST(:start_date AS DATE), CAST(:end_date AS DATE), INTERVAL 1 DAY)) AS d) s
),
items AS (
    SELECT a.as_of_date, f.organization_id, i.priority,
           CASE WHEN CAST(i.completed_at AS DATE) <= a.as_of_date THEN 'completed'
                WHEN i.status = 'completed' THEN 'open'
                ELSE i.status END AS status
    FROM as_of a
    -- event_date is created_at's date: created on or before D.
    JOIN raw_data.action_items i ON i.event_date <= a.as_of_date
    JOIN raw_data.voice_feedback f ON f.id = i.voice_feedback_id
),
counts AS (
    SELECT as_of_date, organization_id, status, priority, COUNT(*) AS item_count
    FROM items
    GROUP BY as_of_date, organization_id, status, priority
),
org_totals AS (
    SELECT as_of_date, organization_id,
           SUM(item_count) AS total,
           SUM(CASE WHEN status = 'completed' THEN item_count ELSE 0 END) AS completed
    FROM counts
    GROUP BY as_of_date, organization_id
)
-- The counts are cast to DOUBLE before dividing: the same double on both engines.
SELECT c.as_of_date,
       c.organization_id,
       c.status,
       c.priority,
       c.item_count,
       CASE WHEN o.total = 0 THEN NULL
            ELSE CAST(o.completed AS DOUBLE) / CAST(o.total AS DOUBLE) END AS completion_rate
FROM counts c
JOIN org_totals o ON o.as_of_date = c.as_of_date AND o.organization_id = c.organization_id
