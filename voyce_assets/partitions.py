"""The one daily partitioning shared by every table (UTC event date), and its dates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from dagster import AssetExecutionContext, BackfillPolicy, DailyPartitionsDefinition

from voyce_assets.settings import partitions_start

T = TypeVar("T")

# end_offset=1: today's partition exists, so the 15-minute CDC can fill it during the day.
daily_partitions = DailyPartitionsDefinition(
    start_date=partitions_start(), timezone="UTC", end_offset=1
)

# A backfill of many days runs as few runs, each over a range of partitions.
daily_backfill_policy = BackfillPolicy.multi_run(max_partitions_per_run=31)


def partition_dates(context: AssetExecutionContext) -> list[dt.date]:
    """The dates of the partitions a run covers (one, or a backfill's range)."""
    return [dt.date.fromisoformat(k) for k in context.partition_keys]


def by_partition(
    context: AssetExecutionContext, items: Iterable[T], day: Callable[[T], dt.date]
) -> dict[str, list[T]]:
    """``items`` grouped by partition key: every partition of the run, empty ones included."""
    out: dict[str, list[T]] = {key: [] for key in context.partition_keys}
    for item in items:
        out.setdefault(day(item).isoformat(), []).append(item)
    return out


def record_partitions(
    context: AssetExecutionContext, per_partition: Mapping[str, Mapping[str, Any]]
) -> None:
    """Attach each partition's own metadata to its own materialization.

    A run over a range of partitions (a backfill) records one materialization per partition;
    metadata returned from the asset is copied onto every one of them, so counts, costs and
    previews go here instead, partition by partition. A partition with nothing is recorded as
    such, never left with the range's numbers.
    """
    for key in context.partition_keys:
        context.add_asset_metadata(dict(per_partition.get(key, {})), partition_key=key)
