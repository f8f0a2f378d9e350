-- analytics.cost_by_day: per day of the run and resource type that had cost that day: the
-- cost (analytics.cost_tracking, DECIMAL sum), the feedback of that day (all organizations:
-- the feedback the money served) and cost per feedback (NULL when the day had no feedback).
-- Flagged by the notebook's rule (the cost_flag macro, sql_macros.py: above a multiple of
-- the p90 or of the median) against the same resource type's cost per feedback on the 30
-- days date-29..date (the day itself included; days without cost of that type, and NULL
-- values, are not in the set). A NULL cost per feedback is never flagged. Spark SQL;
-- parameters :start_date, :end_date.
WITH run_days AS (
    SELECT CAST(d AS DATE) AS day
    FROM (SELECT explode(sequence(CAST(:start_date AS DATE), CAST(:end_date AS DATE), INTERVAL 1 DAY)) AS d) s
),
-- Days back to start_date - 29: the comparison window of the run's first day.
costs AS (
    SELECT cost_date, resource_type, SUM(total_cost) AS total_cost_usd
    FROM analytics.cost_tracking
    WHERE cost_date BETWEEN CAST(date_sub(CAST(:start_date AS DATE), 29) AS DATE)
                        AND CAST(:end_date AS DATE)
    GROUP BY cost_date, resource_type
),
feedback AS (
    SELECT event_date, COUNT(*) AS feedback_count
    FROM raw_data.voice_feedback
    WHERE event_date BETWEEN CAST(date_sub(CAST(:start_date AS DATE), 29) AS DATE)
                         AND CAST(:end_date AS DATE)
    GROUP BY event_date
),
per_day AS (
    SELECT c.cost_date, c.resource_type, c.total_cost_usd,
           COALESCE(f.feedback_count, 0) AS feedback_count,
           CASE WHEN f.feedback_count IS NULL THEN NULL
                ELSE CAST(c.total_cost_usd AS DOUBLE) / f.feedback_count END
               AS cost_per_feedback_usd
    FROM costs c
    LEFT JOIN feedback f ON f.event_date = c.cost_date
),
-- The comparison set of each run day: the type's days date-29..date with a value.
comparison AS (
    SELECT r.day, p.resource_type, p.cost_per_feedback_usd AS v
    FROM run_days r
    JOIN per_day p
        ON p.cost_date BETWEEN CAST(date_sub(r.day, 29) AS DATE) AND r.day
    WHERE p.cost_per_feedback_usd IS NOT NULL
),
-- percentile_cont as a grouped aggregate (not a window): linear interpolation on both
-- engines (the Spark / Databricks engines write it as Spark's exact percentile).
thresholds AS (
    SELECT day, resource_type,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY v) AS p90,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS median
    FROM comparison
    GROUP BY day, resource_type
)
SELECT p.cost_date AS `date`,
       p.resource_type,
       p.total_cost_usd,
       p.feedback_count,
       p.cost_per_feedback_usd,
       -- NULL OR FALSE is NULL: a NULL comparison means "not flagged".
       {{ cost_flag }}
FROM per_day p
-- LEFT: a type whose days all lack feedback has no thresholds (and is not flagged).
LEFT JOIN thresholds t ON t.day = p.cost_date AND t.resource_type = p.resource_type
WHERE p.cost_date BETWEEN CAST(:start_date AS DATE) AND CAST(:end_date AS DATE)
