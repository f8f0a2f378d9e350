"""The seed's job 4: every analytics table, daily at 01:00 UTC, for the day that just ended
(each asset retries once on its own)."""

import datetime as dt

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    define_asset_job,
    schedule,
)

from voyce_assets.partitions import daily_partitions

analytics_job = define_asset_job(
    "analytics_daily_job",
    selection=AssetSelection.groups("analytics"),
    partitions_def=daily_partitions,
    description="Every analytics table for one day (or a range, as a backfill).",
)


@schedule(
    name="analytics_daily",
    cron_schedule="0 1 * * *",
    execution_timezone="UTC",
    job=analytics_job,
    default_status=DefaultScheduleStatus.STOPPED,
    description="01:00 UTC: the analytics tables of the day before.",
)
def analytics_daily(context: ScheduleEvaluationContext):
    day = context.scheduled_execution_time.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    return RunRequest(run_key=f"analytics:{day}", partition_key=day.isoformat())
