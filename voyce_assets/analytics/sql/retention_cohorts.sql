-- analytics.retention_cohorts: per as-of day D of the run and organization, monthly
-- retention of raw_data.voice_feedback users (user_id known). A user's cohort_month is the
-- month of their first feedback ever (all history up to D); the cohorts of the 12 months to
-- D's month are shown, each with one row per month n = 0 .. (D's month - cohort month),
-- zeros included. active_users = cohort users with feedback in month cohort + n, counting
-- feedback up to D only; retention_rate = active_users / cohort_users. Spark SQL;
-- parameters :start_date, :end_date (inclusive); the input holds all history to :end_date.
WITH as_of AS (
    SELECT CAST(d AS DATE) AS as_of_date,
           CAST(date_trunc('MONTH', d) AS DATE) AS as_of_month
    FROM (SELECT explode(sequence(CAST(:start_date AS DATE), CAST(:end_date AS DATE), INTERVAL 1 DAY)) AS d) s
),
-- Months a user gave feedback in, as seen on each as-of day.
activity AS (
    SELECT DISTINCT a.as_of_date, a.as_of_month, f.organization_id, f.user_id,
           CAST(date_trunc('MONTH', f.event_date) AS DATE) AS active_month
    FROM as_of a
    JOIN raw_data.voice_feedback f ON f.event_date <= a.as_of_date
    WHERE f.user_id IS NOT NULL
),
cohort_of AS (
    SELECT as_of_date, as_of_month, organization_id, user_id,
           MIN(active_month) AS cohort_month
    FROM activity
    GROUP BY as_of_date, as_of_month, organization_id, user_id
),
-- Month index by year * 12 + month: months_between is fractional and differs by engine.
user_months AS (
    SELECT c.as_of_date, c.organization_id, c.cohort_month, c.user_id,
           (year(c.as_of_month) - year(c.cohort_month)) * 12
               + month(c.as_of_month) - month(c.cohort_month) AS months_to_as_of,
           (year(a.active_month) - year(c.cohort_month)) * 12
               + month(a.active_month) - month(c.cohort_month) AS months_since_first
    FROM cohort_of c
    JOIN activity a
        ON a.as_of_date = c.as_of_date
       AND a.organization_id = c.organization_id
       AND a.user_id = c.user_id
),
cohorts AS (
    SELECT as_of_date, organization_id, cohort_month, months_to_as_of,
           COUNT(DISTINCT user_id) AS cohort_users
    FROM user_months
    WHERE months_to_as_of <= 11
    GROUP BY as_of_date, organization_id, cohort_month, months_to_as_of
),
active AS (
    SELECT as_of_date, organization_id, cohort_month, months_since_first,
           COUNT(DISTINCT user_id) AS active_users
    FROM user_months
    WHERE months_to_as_of <= 11
    GROUP BY as_of_date, organization_id, cohort_month, months_since_first
),
-- Every month from the cohort's to D's, so a month nobody came back in shows 0.
grid AS (
    SELECT c.as_of_date, c.organization_id, c.cohort_month, c.cohort_users, n.months_since_first
    FROM cohorts c
    JOIN (SELECT explode(sequence(0, 11)) AS months_since_first) n
        ON n.months_since_first <= c.months_to_as_of
)
SELECT g.as_of_date, g.organization_id, g.cohort_month, g.months_since_first, g.cohort_users,
       COALESCE(x.active_users, 0) AS active_users,
       CASE WHEN g.cohort_users = 0 THEN NULL
            ELSE COALESCE(x.active_users, 0) / g.cohort_users END AS retention_rate
FROM grid g
LEFT JOIN active x
    ON x.as_of_date = g.as_of_date
   AND x.organization_id = g.organization_id
   AND x.cohort_month = g.cohort_month
   AND x.months_since_first = g.months_since_first
