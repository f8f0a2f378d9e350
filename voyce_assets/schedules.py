"""Schedule helpers the stages share: a job over assets on the daily partitions, and a
schedule that asks, at its time, for the partition of the day before (once per day)."""

import datetime as dt

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    define_asset_job,
    schedule,
)

from voyce_assets.partitions import daily_partitions


def partitioned_job(name: str, selection: AssetSelection, description: str):
    return define_asset_job(
        name, selection=selection, partitions_def=daily_partitions, description=description
    )


def day_before_schedule(
    name: str, cron: str, job, run_key: str, description: str
) -> ScheduleDefinition:
    """``job`` for the UTC day before each tick, run key ``<run_key>:<day>``; starts stopped
    (automation is switched on per deployment)."""

    @schedule(
        name=name,
        cron_schedule=cron,
        execution_timezone="UTC",
        job=job,
        default_status=DefaultScheduleStatus.STOPPED,
        description=description,
    )
    def _day_before(context: ScheduleEvaluationContext):
        day = context.scheduled_execution_time.astimezone(dt.UTC).date() - dt.timedelta(days=1)
        return RunRequest(run_key=f"{run_key}:{day}", partition_key=day.isoformat())

    return _day_before
