"""The analytics days an erasure changes, and the sensor that recomputes them.

Analytics tables are aggregates: after an erasure removed a subject's rows from the tables
they are computed from, the partitions that counted them are recomputed, not edited. A table
of one row set per day (``date``, ``metric_date``, ``cost_date``) is recomputed for the
subject's feedback days; a windowed view (``as_of_date``: the 30 days, 12 weeks or 12
months up to a day) for every partition it has from the first of those days on, up to
``WINDOW_DAYS`` after the last.
"""

from __future__ import annotations

import datetime as dt
import json

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from voyce_assets.analytics.schedules import analytics_job
from voyce_assets.catalog import TABLES, Table
from voyce_assets.lake import partition_files
from voyce_assets.resources import Lakehouse
from voyce_assets.tables import table_key

ERASURE_LOG = table_key("raw_data/erasure_log")
# The longest window a view looks back over (12 months), with room to spare.
WINDOW_DAYS = 400


def analytics_tables() -> list[Table]:
    return [t for t in TABLES if t.stage == "analytics"]


def recompute_partitions(lakehouse, days: list[dt.date]) -> dict[str, list[AssetKey]]:
    """``{partition key: analytics asset keys}`` to recompute after an erasure that removed
    feedback of ``days``."""
    if not days:
        return {}
    first, last = min(days), max(days) + dt.timedelta(days=WINDOW_DAYS)
    out: dict[str, list[AssetKey]] = {}
    for spec in analytics_tables():
        if spec.partition_column != "as_of_date":
            wanted = set(days)
        elif lakehouse.exists(spec):
            held = partition_files(lakehouse.table_uri(spec), spec, None, lakehouse.storage_options)
            wanted = {d for d in map(dt.date.fromisoformat, held) if first <= d <= last}
        else:
            wanted = set()
        for day in sorted(wanted):
            out.setdefault(day.isoformat(), []).append(table_key(spec.path))
    return dict(sorted(out.items()))


@sensor(
    name="erasure_recompute",
    job=analytics_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.STOPPED,
    description="After an erasure (raw_data/erasure_log materialized): the analytics "
    "partitions that counted the erased feedback, recomputed (one run per day).",
)
def erasure_recompute(context: SensorEvaluationContext, lakehouse: Lakehouse):
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=ERASURE_LOG, after_storage_id=after),
        limit=100,
        ascending=True,
    ).records
    if not records:
        return SkipReason("no erasure since the last look")
    days: set[dt.date] = set()
    for record in records:
        value = record.asset_materialization.metadata.get("feedback_days")
        days |= {dt.date.fromisoformat(d) for d in (value.value if value else [])}
    context.update_cursor(str(max(r.storage_id for r in records)))
    plan = recompute_partitions(lakehouse, sorted(days))
    if not plan:
        return SkipReason("the erasures removed no feedback: nothing to recompute")
    return [
        RunRequest(
            run_key=f"erasure_recompute:{context.cursor}:{day}",
            partition_key=day,
            asset_selection=keys,
            tags={"voyce/erasure_recompute": json.dumps(len(keys))},
        )
        for day, keys in plan.items()
    ]
