-- analytics.cost_by_organization: per as-of day of the run, per organization and resource
-- type over the 30 days D-29..D: the cost (analytics.cost_tracking, DECIMAL sum; rows without
-- an organization are left out), the organization's feedback in those days and cost per
-- feedback (NULL when none). Flagged by the notebook's rule (the cost_flag macro,
-- sql_macros.py: above a multiple of the p90 or of the median) against the same resource
-- type over the organizations in that snapshot (NULL values skipped); a NULL cost per
-- feedback is never flagged. Spark SQL; parameters :start_date, :end_date.
WITH as_of AS (
    SELECT CAST(d AS DATE) AS as_of_date,
           CAST(date_sub(CAST(d AS DATE), 29) AS DATE) AS window_start
    FROM (SELECT explode(sequence(CAST(:start_date AS DATE), CAST(:end_date AS DATE), INTERVAL 1 DAY)) AS d) s
),
-- Per day first, so the as-of join multiplies days, not rows; filtered to the run's
-- earliest day so a warehouse prunes partitions.
daily_costs AS (
    SELECT cost_date, organization_id, resource_type, SUM(total_cost) AS total_cost
    FROM analytics.cost_tracking
    WHERE organization_id IS NOT NULL
      AND cost_date BETWEEN CAST(date_sub(CAST(:start_date AS DATE), 29) AS DATE)
                        AND CAST(:end_date AS DATE)
    GROUP BY cost_date, organization_id, resource_type
),
daily_feedback AS (
    SELECT event_date, organization_id, COUNT(*) AS feedback_count
    FROM raw_data.voice_feedback
    WHERE event_date BETWEEN CAST(date_sub(CAST(:start_date AS DATE), 29) AS DATE)
                         AND CAST(:end_date AS DATE)
    GROUP BY event_date, organization_id
),
costs AS (
    SELECT a.as_of_date, c.organization_id, c.resource_type, SUM(c.total_cost) AS total_cost_usd
    FROM as_of a
    JOIN daily_costs c ON c.cost_date BETWEEN a.window_start AND a.as_of_date
    GROUP BY a.as_of_date, c.organization_id, c.resource_type
),
feedback AS (
    SELECT a.as_of_date, f.organization_id, SUM(f.feedback_count) AS feedback_count
    FROM as_of a
    JOIN daily_feedback f ON f.event_date BETWEEN a.window_start AND a.as_of_date
    GROUP BY a.as_of_date, f.organization_id
),
per_org AS (
    SELECT c.as_of_date, c.organization_id, c.resource_type, c.total_cost_usd,
           COALESCE(f.feedback_count, 0) AS feedback_count,
           CASE WHEN f.feedback_count IS NULL THEN NULL
                ELSE CAST(c.total_cost_usd AS DOUBLE) / f.feedback_count END
               AS cost_per_feedback_usd
    FROM costs c
    LEFT JOIN feedback f
        ON f.as_of_date = c.as_of_date AND f.organization_id = c.organization_id
),
-- percentile_cont as a grouped aggregate (not a window): linear interpolation on both
-- engines (the Spark / Databricks engines write it as Spark's exact percentile).
thresholds AS (
    SELECT as_of_date, resource_type,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY cost_per_feedback_usd) AS p90,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY cost_per_feedback_usd) AS median
    FROM per_org
    WHERE cost_per_feedback_usd IS NOT NULL
    GROUP BY as_of_date, resource_type
)
SELECT p.as_of_date,
       p.organization_id,
       p.resource_type,
       p.total_cost_usd,
       CAST(p.feedback_count AS BIGINT) AS feedback_count,
       p.cost_per_feedback_usd,
       -- NULL OR FALSE is NULL: a NULL comparison means "not flagged".
       {{ cost_flag }}
FROM per_org p
-- LEFT: a type with no value to compare has no thresholds (and is not flagged).
LEFT JOIN thresholds t ON t.as_of_date = p.as_of_date AND t.resource_type = p.resource_type
