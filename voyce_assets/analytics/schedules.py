"""The seed's job 4: every analytics table, daily at 01:00 UTC, for the day that just ended
(each asset retries once on its own)."""

from dagster import AssetSelection

from voyce_assets.schedules import day_before_schedule, partitioned_job

analytics_job = partitioned_job(
    "analytics_daily_job",
    AssetSelection.groups("analytics"),
    "Every analytics table for one day (or a range, as a backfill).",
)

analytics_daily = day_before_schedule(
    "analytics_daily",
    "0 1 * * *",
    analytics_job,
    "analytics",
    "01:00 UTC: the analytics tables of the day before.",
)
