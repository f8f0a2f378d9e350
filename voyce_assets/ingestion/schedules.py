"""Schedules: the daily full sync of the app tables, the safety net under the CDC sensor.

It re-syncs the last ``full_sync_days`` (``VOYCE_FULL_SYNC_DAYS``, default 3) partitions in one run over the
range: deletes, and changes the CDC cursor could not see, are corrected there. It runs at
00:30 UTC, before the 01:00 analytics of the day that ended, so they read the corrected
mirrors (and wait while it runs); what it changes in older days reaches their analytics as
late data (``voyce_assets.automation``).
"""

from __future__ import annotations

import datetime as dt

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    define_asset_job,
    schedule,
)

from voyce_assets.ingestion.mirrors import raw_mirrors
from voyce_assets.ingestion.resources import IngestionSettings

raw_full_sync_job = define_asset_job(
    "raw_full_sync_job",
    selection=raw_mirrors,
    description="Replace partitions of the six app-table mirrors with the source's rows.",
)


@schedule(
    name="raw_daily_full_sync",
    cron_schedule="30 0 * * *",
    execution_timezone="UTC",
    job=raw_full_sync_job,
    default_status=DefaultScheduleStatus.STOPPED,
    description="00:30 UTC: full sync of the last VOYCE_FULL_SYNC_DAYS days of app tables.",
)
def raw_daily_full_sync(context: ScheduleEvaluationContext, ingestion_settings: IngestionSettings):
    today = context.scheduled_execution_time.astimezone(dt.UTC).date()
    days = ingestion_settings.check().full_sync_days
    # Today's partition too: it exists (end_offset=1) and holds today's changes so far.
    first, last = today - dt.timedelta(days=days - 1), today
    return RunRequest(
        run_key=f"full-sync:{today}",
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
            "voyce/sync_mode": "full",
            "voyce/ingestion": "schedule",
        },
    )
