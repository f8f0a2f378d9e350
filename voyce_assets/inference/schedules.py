"""The seed's job 6: batch inference every hour, over today's and yesterday's partitions
(feedback analysed after midnight still belongs to yesterday); the asset retries twice."""

import datetime as dt

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    schedule,
)

from voyce_assets.schedules import partitioned_job

inference_job = partitioned_job(
    "batch_inference_job",
    AssetSelection.assets(["ml_models", "predictions"]),
    "Champion and challenger predictions for a day or a range.",
)


@schedule(
    name="batch_inference_hourly",
    cron_schedule="0 * * * *",
    execution_timezone="UTC",
    job=inference_job,
    default_status=DefaultScheduleStatus.STOPPED,
    description="Every hour: predictions for yesterday and today (a two-day range run).",
)
def batch_inference_hourly(context: ScheduleEvaluationContext):
    now = context.scheduled_execution_time.astimezone(dt.UTC)
    today = now.date()
    yesterday = today - dt.timedelta(days=1)
    return RunRequest(
        run_key=f"inference:{now:%Y-%m-%dT%H}",
        tags={
            "dagster/asset_partition_range_start": yesterday.isoformat(),
            "dagster/asset_partition_range_end": today.isoformat(),
        },
    )
