-- analytics.cost_by_month: per as-of day of the run, per calendar month of the 12 months to
-- the as-of day's month (a month in progress counts up to the as-of day only) and resource
-- type: the cost (analytics.cost_tracking, DECIMAL sum), the feedback of that month (all
-- organizations; likewise up to the as-of day) and cost per feedback (NULL when none).
-- Flagged by the notebook's rule (the cost_flag macro, sql_macros.py: above a multiple of
-- the p90 or of the median) against the same resource type's months shown in that snapshot
-- (NULL values skipped); a NULL cost per feedback is never flagged. Spark SQL; parameters
-- :start_date, :end_date.
WITH as_of AS (
    SELECT CAST(d AS DATE) AS as_of_date,
           CAST(add_months(CAST(date_trunc('MONTH', d) AS DATE), -11) AS DATE) AS first_month
    FROM (SELECT explode(sequence(CAST(:start_date AS DATE), CAST(:end_date AS DATE), INTERVAL 1 DAY)) AS d) s
),
-- Per day first, so the as-of join multiplies days, not rows; filtered to the run's
-- earliest month so a warehouse prunes partitions.
daily_costs AS (
    SELECT cost_date, resource_type, SUM(total_cost) AS total_cost
    FROM analytics.cost_tracking
    WHERE cost_date BETWEEN CAST(add_months(
                            CAST(date_trunc('MONTH', CAST(:start_date AS DATE)) AS DATE), -11
                        ) AS DATE)
                        AND CAST(:end_date AS DATE)
    GROUP BY cost_date, resource_type
),
daily_feedback AS (
    SELECT event_date, COUNT(*) AS feedback_count
    FROM raw_data.voice_feedback
    WHERE event_date BETWEEN CAST(add_months(
                            CAST(date_trunc('MONTH', CAST(:start_date AS DATE)) AS DATE), -11
                        ) AS DATE)
                         AND CAST(:end_date AS DATE)
    GROUP BY event_date
),
costs AS (
    SELECT a.as_of_date, CAST(date_trunc('MONTH', c.cost_date) AS DATE) AS month_start,
           c.resource_type, SUM(c.total_cost) AS total_cost_usd
    FROM as_of a
    JOIN daily_costs c ON c.cost_date BETWEEN a.first_month AND a.as_of_date
    GROUP BY a.as_of_date, CAST(date_trunc('MONTH', c.cost_date) AS DATE), c.resource_type
),
feedback AS (
    SELECT a.as_of_date, CAST(date_trunc('MONTH', f.event_date) AS DATE) AS month_start,
           SUM(f.feedback_count) AS feedback_count
    FROM as_of a
    JOIN daily_feedback f ON f.event_date BETWEEN a.first_month AND a.as_of_date
    GROUP BY a.as_of_date, CAST(date_trunc('MONTH', f.event_date) AS DATE)
),
per_month AS (
    SELECT c.as_of_date, c.month_start, c.resource_type, c.total_cost_usd,
           COALESCE(f.feedback_count, 0) AS feedback_count,
           CASE WHEN f.feedback_count IS NULL THEN NULL
                ELSE CAST(c.total_cost_usd AS DOUBLE) / f.feedback_count END
               AS cost_per_feedback_usd
    FROM costs c
    LEFT JOIN feedback f ON f.as_of_date = c.as_of_date AND f.month_start = c.month_start
),
-- percentile_cont as a grouped aggregate (not a window): linear interpolation on both
-- engines (the Spark / Databricks engines write it as Spark's exact percentile).
thresholds AS (
    SELECT as_of_date, resource_type,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY cost_per_feedback_usd) AS p90,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY cost_per_feedback_usd) AS median
    FROM per_month
    WHERE cost_per_feedback_usd IS NOT NULL
    GROUP BY as_of_date, resource_type
)
SELECT p.as_of_date,
       p.month_start,
       p.resource_type,
       p.total_cost_usd,
       CAST(p.feedback_count AS BIGINT) AS feedback_count,
       p.cost_per_feedback_usd,
       -- NULL OR FALSE is NULL: a NULL comparison means "not flagged".
       {{ cost_flag }}
FROM per_month p
-- LEFT: a type with no value to compare has no thresholds (and is not flagged).
LEFT JOIN thresholds t ON t.as_of_date = p.as_of_date AND t.resource_type = p.resource_type
