"""The one daily partitioning shared by every table (UTC event date), and its dates."""

from __future__ import annotations

import datetime as dt

from dagster import AssetExecutionContext, BackfillPolicy, DailyPartitionsDefinition

from voyce_assets.settings import partitions_start

# end_offset=1: today's partition exists, so the 15-minute CDC can fill it during the day.
daily_partitions = DailyPartitionsDefinition(
    start_date=partitions_start(), timezone="UTC", end_offset=1
)

# A backfill of many days runs as few runs, each over a range of partitions.
daily_backfill_policy = BackfillPolicy.multi_run(max_partitions_per_run=31)


def partition_dates(context: AssetExecutionContext) -> list[dt.date]:
    """The dates of the partitions a run covers (one, or a backfill's range)."""
    return [dt.date.fromisoformat(k) for k in context.partition_keys]
