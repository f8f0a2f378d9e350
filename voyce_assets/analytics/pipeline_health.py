"""``analytics/pipeline_health``: one row per day with the seed's key metrics ("Monitoring and
Alerts"), what the alert sensors (``alerts.py``) judge.

The tables' part is ``sql/pipeline_health.sql`` (voice, sentiment, predictions, cost). The
ingestion part is not in any table: the mirrors' failed runs and failed checks live in
Dagster's event log, so they are read back from the instance here, as ``cost_tracking`` reads
the mirrors' cost rows:

- ``failed_syncs``: mirror partitions of the day that a failed run had planned;
- ``data_quality_failures``: failed evaluations of a mirror's checks in a run that synced it.

``sync_latency_seconds`` stays null: no table records when a row was synced.
"""

from collections.abc import Iterable

import pyarrow as pa
from dagster import (
    AssetCheckKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
)
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecordStatus,
)

from voyce_assets.analytics.sql_asset import Input, build_sql_asset
from voyce_assets.catalog import APP_TABLES, table
from voyce_assets.tables import table_key

HEALTH = table("analytics/pipeline_health")
# The mirrors' checks (ingestion/mirrors.py); a failed one is a data-quality failure.
MIRROR_CHECKS = ("primary_key", "required_columns", "reconciliation", "schema_drift")
# How far back the event log is read: the newest failed runs, the newest failed evaluations
# of each check. A day re-built long after its failures may count fewer than happened.
LOOKBACK = 1000
HEADLINE = (
    "processing_failure_rate",
    "low_confidence_share",
    "sentiment_errors",
    "total_cost_usd",
)

INPUTS = [
    Input("raw_data/voice_feedback"),
    Input("raw_data/transcriptions"),
    Input("raw_data/sentiment_analysis"),
    # Written by the inference stage; a day not predicted yet counts 0 predictions.
    Input("ml_models/predictions", required=False),
    Input("analytics/cost_tracking"),
]


def _planned(instance: DagsterInstance, run_id: str) -> set[tuple[tuple[str, ...], str]]:
    """(asset key path, partition) of every materialization the run planned."""
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED, limit=10_000
    ).records
    out = set()
    for record in records:
        event = record.event_log_entry.dagster_event
        partition = getattr(event.event_specific_data, "partition", None)
        if event.asset_key is not None and partition is not None:
            out.add((tuple(event.asset_key.path), partition))
    return out


def ingestion_failures(
    instance: DagsterInstance, partition_keys: Iterable[str]
) -> dict[str, dict[str, int]]:
    """Per partition key: ``failed_syncs`` and ``data_quality_failures`` of the mirrors."""
    keys = set(partition_keys)
    mirrors = {tuple(table_key(t.path).path) for t in APP_TABLES}
    out = {k: {"failed_syncs": 0, "data_quality_failures": 0} for k in keys}
    planned_by_run: dict[str, set] = {}

    def planned(run_id: str) -> set:
        if run_id not in planned_by_run:
            planned_by_run[run_id] = _planned(instance, run_id)
        return planned_by_run[run_id]

    failed_runs = instance.get_run_records(
        RunsFilter(statuses=[DagsterRunStatus.FAILURE]), limit=LOOKBACK
    )
    for record in failed_runs:
        for asset, partition in planned(record.dagster_run.run_id):
            if asset in mirrors and partition in keys:
                out[partition]["failed_syncs"] += 1
    for spec in APP_TABLES:
        asset_key = table_key(spec.path)
        for name in MIRROR_CHECKS:
            history = instance.event_log_storage.get_asset_check_execution_history(
                AssetCheckKey(asset_key, name),
                limit=LOOKBACK,
                status={AssetCheckExecutionRecordStatus.FAILED},
            )
            for check in history:
                days = sorted(p for a, p in planned(check.run_id) if a == tuple(asset_key.path))
                for day in failing_days(check, days):
                    if day in keys:
                        out[day]["data_quality_failures"] += 1
    return out


def failing_days(check, run_days: list[str]) -> list[str]:
    """The days one failed evaluation is about: those it names (``failing_partitions``, the
    per-partition checks' list, or the reconciliation's ``mismatched_partitions``); else its
    run's day; else, for a run over several days that does not say which, the newest of them:
    one failure counts once, never on each day."""
    evaluation = check.event.dagster_event.event_specific_data if check.event else None
    metadata = (evaluation.metadata or {}) if evaluation else {}
    for name in ("failing_partitions", "mismatched_partitions"):
        named = metadata.get(name)
        named = getattr(named, "value", named)
        if isinstance(named, dict | list) and named:
            return sorted(named)
    return run_days[-1:]


def with_ingestion(rows: pa.Table, failures: dict[str, dict[str, int]]) -> pa.Table:
    """The SQL's rows with the ingestion columns filled from ``failures``."""
    days = [d.isoformat() for d in rows.column("date").to_pylist()]
    for column in ("failed_syncs", "data_quality_failures"):
        values = pa.array([failures.get(d, {}).get(column, 0) for d in days], pa.int64())
        rows = rows.set_column(rows.schema.get_field_index(column), column, values)
    return rows


def _headline(context, lakehouse, rows: list[dict], dates) -> dict[str, dict]:
    """Per partition, the day's headline figures for the UI's partition view (at most one row
    per day)."""
    out: dict[str, dict] = {}
    for r in rows:
        figures = {column: float(r[column]) for column in HEADLINE if r[column] is not None}
        out.setdefault(r["date"].isoformat(), {}).update(figures)
    return out


pipeline_health = build_sql_asset(
    HEALTH.path,
    INPUTS,
    description="Failed syncs and the mirrors' failed checks read from Dagster's event log. "
    "The alert sensors read each new materialization.",
    extra_metadata=_headline,
    complete=lambda context, rows: with_ingestion(
        rows, ingestion_failures(context.instance, context.partition_keys)
    ),
)
