"""The analytics job: every analytics table for one day or a range (a backfill, by hand).

The seed's job 4 cadence (01:00 UTC for the day that ended, and again for late data) is each
table's automation condition (``voyce_assets.automation.daily_then_late``), evaluated by the
``voyce_automation`` sensor; a schedule as well would run the tables twice.
"""

from dagster import AssetSelection

from voyce_assets.schedules import partitioned_job

analytics_job = partitioned_job(
    "analytics_daily_job",
    AssetSelection.groups("analytics"),
    "Every analytics table for one day (or a range, as a backfill).",
)
