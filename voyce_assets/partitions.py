"""The one daily partitioning shared by every table (UTC event date), and its dates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
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


def require_upstream(context: AssetExecutionContext, paths: Sequence[str]) -> None:
    """Fail, naming them, when a table in ``paths`` never materialized one of the run's days.

    Not retried: the day is run again once the upstream partition exists. A step launched on
    Databricks has an ephemeral instance that knows no materializations: there the launcher
    made the same check on the host before launching (``upstream_missing``).
    """
    if is_remote_step():
        return
    missing = upstream_missing(context.instance, paths, context.partition_keys)
    if missing:
        raise upstream_failure(missing)


# Set (to "1") in a step's environment by the Databricks launchers on the remote side.
REMOTE_STEP_ENV = "VOYCE_REMOTE_STEP"


def is_remote_step() -> bool:
    import os

    return os.environ.get(REMOTE_STEP_ENV) == "1"


def upstream_missing(instance, upstream: Sequence, partition_keys: Sequence[str]) -> dict:
    """``{path: [day, ...]}`` of the days in ``partition_keys`` each upstream never
    materialized; ``upstream`` holds table paths or asset keys."""
    from dagster import AssetKey

    from voyce_assets.tables import table_key

    missing = {}
    for item in upstream:
        key = item if isinstance(item, AssetKey) else table_key(item)
        done = instance.get_materialized_partitions(key)
        keys = [k for k in partition_keys if k not in done]
        if keys:
            missing["/".join(key.path)] = keys
    return missing


def upstream_failure(missing: dict):
    from dagster import Failure

    named = "; ".join(f"{path}: {', '.join(keys)}" for path, keys in missing.items())
    return Failure(
        description=f"waiting for upstream partitions never materialized: {named}",
        metadata={"missing": missing},
        allow_retries=False,
    )
