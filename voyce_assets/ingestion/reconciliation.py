"""The reconciliation sweep's sensor: what the sweep finds becomes visible and is repaired.

``raw_reconciliation_sweep`` ticks every 10 minutes. Each tick requests a full sync for each
incremental run that failed or was canceled (its changes are lost to the CDC cursor, which
had moved past them). Each UTC day it sweeps every app table (``sweep.sweep_table``), a few
tables per tick within a time budget so a tick stays well inside Dagster's sensor timeout,
and for each table records an observation on the mirror asset (partitions compared,
checksummed, mismatched with both counts, full syncs requested, partitions repaired since
the last sweep) and requests a full sync of every partition that differs: one run per
contiguous range of at most 31 days. A run key names the table, range and the evidence
(counts, checksum verdict), so the same finding is never requested twice, and a finding
that a full sync cannot change (rows the mirror holds back for a NULL key) is not requested
again every day. Partitions inside the daily full sync's window are left to it: they are
still being filled and would look wrong every morning.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time

from dagster import (
    AssetObservation,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from voyce_assets.catalog import APP_TABLES
from voyce_assets.ingestion.mirrors import MIRRORS, raw_mirrors
from voyce_assets.ingestion.placement import partition_bounds
from voyce_assets.ingestion.resources import IngestionSettings
from voyce_assets.ingestion.sweep import evaluation_metadata, sweep_table
from voyce_assets.partitions import daily_partitions
from voyce_assets.privacy.tombstones import erased_hashes
from voyce_assets.resources import AppDatabase, Lakehouse

SWEEP_INTERVAL_SECONDS = 600
# Tables are swept until a tick has used this much time (at least one table per tick).
SWEEP_BUDGET_SECONDS = 30.0
# Run records can be committed a little out of order: look back this far every tick (the
# run keys keep a failed run from being requested twice).
FAILED_RUN_LOOKBACK_SECONDS = 600.0


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


def _failed_incremental_runs(context, after: float) -> list[RunRequest]:
    """A full sync for the partition and tables of each incremental run that failed (after
    its retries) or was canceled since ``after``."""
    records = context.instance.get_run_records(
        filters=RunsFilter(
            statuses=[DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED],
            tags={"voyce/sync_mode": "incremental"},
            updated_after=dt.datetime.fromtimestamp(after - FAILED_RUN_LOOKBACK_SECONDS, dt.UTC),
        )
    )
    requests = []
    for record in records:
        run = record.dagster_run
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
    return requests


def _repairs(path: str, mismatched: dict[str, dict], days: list[str]) -> list[RunRequest]:
    out = []
    for start, end in _ranges(days):
        evidence = json.dumps(
            [mismatched[d] for d in sorted(days) if start <= d <= end], sort_keys=True
        )
        digest = hashlib.sha256(evidence.encode()).hexdigest()[:12]
        out.append(
            RunRequest(
                run_key=f"sweep:{path}:{start}:{end}:{digest}",
                asset_selection=[MIRRORS[path].key],
                tags={
                    "dagster/asset_partition_range_start": start,
                    "dagster/asset_partition_range_end": end,
                    "voyce/sync_mode": "full",
                    "voyce/ingestion": "sweep",
                },
            )
        )
    return out


@sensor(
    name="raw_reconciliation_sweep",
    minimum_interval_seconds=SWEEP_INTERVAL_SECONDS,
    asset_selection=raw_mirrors,
    default_status=DefaultSensorStatus.STOPPED,
    description="Every 10 minutes: a full sync for each failed incremental run. Each day: "
    "every partition of every app table (older than the daily full sync's window) compared "
    "with its source (counts; content checksums of a rolling slice, each partition at least "
    "every checksum_every_days), and a full sync of each partition that differs.",
)
def raw_reconciliation_sweep(
    context: SensorEvaluationContext,
    app_db: AppDatabase,
    lakehouse: Lakehouse,
    ingestion_settings: IngestionSettings,
):
    settings = ingestion_settings.check()
    started = time.monotonic()
    state = json.loads(context.cursor) if context.cursor else {}
    now = dt.datetime.now(dt.UTC)
    # The first tick starts watching now: history's failed runs are not all re-run at once.
    requests = (
        _failed_incremental_runs(context, state["failed_after"]) if "failed_after" in state else []
    )
    state["failed_after"] = now.timestamp()
    today = now.date()
    if state.get("day") != today.isoformat():
        state["day"], state["done"] = today.isoformat(), []
    pending: dict[str, list[str]] = state.setdefault("pending", {})
    window_start = today - dt.timedelta(days=settings.full_sync_days - 1)
    valid = set(daily_partitions.get_partition_keys())
    events: list[AssetObservation] = []
    # Erased subjects the app still holds: compared as absent (read once per tick).
    tombstones: frozenset[str] | None = None
    for spec in APP_TABLES:
        path = spec.path
        if path in state["done"]:
            continue
        if state["done"] and time.monotonic() - started > SWEEP_BUDGET_SECONDS:
            break  # the rest next tick
        if tombstones is None:
            tombstones = erased_hashes(lakehouse)
        with app_db.connect() as conn:
            result = sweep_table(
                conn,
                spec,
                lakehouse,
                today,
                settings.checksum_every_days,
                before=window_start,
                bounds=partition_bounds(),
                tombstones=tombstones,
            )
            conn.rollback()
        wrong = sorted(p for p in result.mismatched if p in valid)
        outside = sorted(set(result.mismatched) - set(wrong))
        if outside:
            context.log.warning(f"{path}: rows outside the partitions, not repaired: {outside}")
        if result.error:
            context.log.error(f"{path}: not compared: {result.error}")
        if result.outside.rows:
            context.log.warning(
                f"{path}: {result.outside.rows} rows have a created_at no partition holds "
                f"(not mirrored): {', '.join(result.outside.ids)}"
            )
        requests += _repairs(path, result.mismatched, wrong)
        repaired = sorted(set(pending.get(path, [])) - set(result.mismatched))
        pending[path] = wrong
        events.append(
            AssetObservation(
                asset_key=MIRRORS[path].key,
                metadata=evaluation_metadata(result, wrong, repaired),
            )
        )
        state["done"].append(path)
        context.log.info(
            f"{path}: {result.compared} partitions compared, "
            f"{len(result.checksummed)} checksummed, {len(result.mismatched)} differ"
        )
    cursor = json.dumps(state, sort_keys=True)
    if not requests and not events:
        return SensorResult(skip_reason=SkipReason("swept today; no failed run"), cursor=cursor)
    return SensorResult(run_requests=requests, asset_events=events, cursor=cursor)
