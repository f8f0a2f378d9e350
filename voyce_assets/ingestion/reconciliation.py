"""The reconciliation sweep's sensor and check: what the sweep finds becomes visible (the
``reconciliation_sweep`` check of each mirror) and is repaired (full-sync runs).

``raw_reconciliation_sweep`` ticks hourly. Each tick requests a full sync for every
incremental run that failed since the last tick (after its retries: the CDC cursor had moved
past its changes). Once a UTC day it sweeps every app table (``sweep.sweep_table``), reports
each table's findings as a check evaluation (partitions compared, checksummed, mismatched;
full syncs requested; partitions repaired since the last sweep) and requests a full sync of
every partition that differs: one run per contiguous range of at most 31 days, with a run
key of the day, table and range, so a repeated tick never requests twice.
"""

from __future__ import annotations

import datetime as dt
import json

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetChecksDefinition,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset_check,
    sensor,
)

from voyce_assets.catalog import APP_TABLES, table
from voyce_assets.ingestion.mirrors import MIRRORS, raw_mirrors
from voyce_assets.ingestion.resources import IngestionSettings
from voyce_assets.ingestion.sweep import evaluation_metadata, sweep_table
from voyce_assets.partitions import daily_partitions
from voyce_assets.resources import AppDatabase, Lakehouse

SWEEP_INTERVAL_SECONDS = 3600
SWEEP_CHECK = "reconciliation_sweep"


def _ranges(days: list[str], longest: int = 31) -> list[tuple[str, str]]:
    """Contiguous runs of partition keys, at most ``longest`` days each (one run apiece)."""
    out: list[tuple[str, str]] = []
    for day in sorted(days):
        d = dt.date.fromisoformat(day)
        if out:
            start, end = out[-1]
            first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
            if d == last + dt.timedelta(days=1) and (d - first).days < longest:
                out[-1] = (start, day)
                continue
        out.append((day, day))
    return out


def _failed_incremental_runs(context, after: float | None) -> tuple[list[RunRequest], float]:
    """A full sync for the partition and tables of each incremental run that failed (after
    its retries) since ``after``: the CDC cursor moved past its changes when it was requested.
    """
    records = context.instance.get_run_records(
        filters=RunsFilter(
            statuses=[DagsterRunStatus.FAILURE],
            tags={"voyce/sync_mode": "incremental"},
            updated_after=dt.datetime.fromtimestamp(after, dt.UTC) if after else None,
        )
    )
    requests, newest = [], after or 0.0
    for record in records:
        run = record.dagster_run
        newest = max(newest, record.update_timestamp.timestamp())
        partition = run.tags.get("dagster/partition")
        paths = [p for p in run.tags.get("voyce/tables", "").split(",") if p in MIRRORS]
        keys = sorted(
            {MIRRORS[p].key for p in paths} | set(run.asset_selection or ()), key=lambda k: k.path
        )
        if not partition or not keys:
            context.log.warning(f"failed run {run.run_id}: no partition or tables to re-sync")
            continue
        requests.append(
            RunRequest(
                run_key=f"full-after-failed:{run.run_id}",
                partition_key=partition,
                asset_selection=keys,
                tags={"voyce/sync_mode": "full", "voyce/ingestion": "sweep"},
            )
        )
    return requests, newest


@sensor(
    name="raw_reconciliation_sweep",
    minimum_interval_seconds=SWEEP_INTERVAL_SECONDS,
    asset_selection=raw_mirrors,
    default_status=DefaultSensorStatus.STOPPED,
    description="Hourly: a full sync for each failed incremental run; once a day: every "
    "partition of every app table compared with its source (counts; checksums of a rolling "
    "slice, each partition at least every checksum_every_days), and a full sync of each "
    "partition that differs.",
)
def raw_reconciliation_sweep(
    context: SensorEvaluationContext,
    app_db: AppDatabase,
    lakehouse: Lakehouse,
    ingestion_settings: IngestionSettings,
):
    settings = ingestion_settings.checked()
    state = json.loads(context.cursor) if context.cursor else {}
    requests, failed_after = _failed_incremental_runs(context, state.get("failed_after"))
    state["failed_after"] = failed_after
    today = dt.datetime.now(dt.UTC).date()
    events: list[AssetCheckEvaluation] = []
    if state.get("swept") != today.isoformat():
        valid = set(daily_partitions.get_partition_keys())
        pending: dict[str, list[str]] = state.get("pending", {})
        with app_db.connect() as conn:
            results = [
                sweep_table(conn, spec, lakehouse, today, settings.checksum_every_days)
                for spec in APP_TABLES
            ]
            conn.rollback()
        for result in results:
            path = result.table.path
            wrong = [p for p in result.mismatched if p in valid]
            outside = sorted(set(result.mismatched) - set(wrong))
            if outside:
                context.log.warning(f"{path}: rows outside the partitions, not repaired: {outside}")
            for start, end in _ranges(wrong):
                requests.append(
                    RunRequest(
                        run_key=f"sweep:{today}:{path}:{start}:{end}",
                        asset_selection=[MIRRORS[path].key],
                        tags={
                            "dagster/asset_partition_range_start": start,
                            "dagster/asset_partition_range_end": end,
                            "voyce/sync_mode": "full",
                            "voyce/ingestion": "sweep",
                        },
                    )
                )
            repaired = sorted(set(pending.get(path, [])) - set(result.mismatched))
            pending[path] = sorted(wrong)
            events.append(
                AssetCheckEvaluation(
                    asset_key=MIRRORS[path].key,
                    check_name=SWEEP_CHECK,
                    passed=result.passed,
                    metadata=evaluation_metadata(result, sorted(wrong), repaired),
                )
            )
            context.log.info(
                f"{path}: {result.compared} partitions compared, "
                f"{len(result.checksummed)} checksummed, {len(result.mismatched)} differ"
            )
        state["swept"], state["pending"] = today.isoformat(), pending
    cursor = json.dumps(state, sort_keys=True)
    if not requests and not events:
        return SensorResult(skip_reason=SkipReason("swept today; no failed run"), cursor=cursor)
    return SensorResult(run_requests=requests, asset_events=events, cursor=cursor)


def build_sweep_check(path: str) -> AssetChecksDefinition:
    """The sweep's verdict on one mirror; the sensor reports it daily, and it runs on demand."""

    @asset_check(
        asset=MIRRORS[path].key,
        name=SWEEP_CHECK,
        description="Every partition's row count (and, on a rolling schedule, its content "
        "checksum) in PostgreSQL equals the mirror's. Reported daily by the "
        "raw_reconciliation_sweep sensor, which requests a full sync of each that differs.",
    )
    def sweep_check(
        app_db: AppDatabase, lakehouse: Lakehouse, ingestion_settings: IngestionSettings
    ) -> AssetCheckResult:
        settings = ingestion_settings.checked()
        with app_db.connect() as conn:
            result = sweep_table(
                conn,
                table(path),
                lakehouse,
                dt.datetime.now(dt.UTC).date(),
                settings.checksum_every_days,
            )
            conn.rollback()
        return AssetCheckResult(passed=result.passed, metadata=evaluation_metadata(result, [], []))

    return sweep_check


sweep_checks = [build_sweep_check(spec.path) for spec in APP_TABLES]
