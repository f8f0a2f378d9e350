"""The reconciliation sweep's sensor and its checksum job: what the sweep finds becomes
visible and is repaired, and no tick does more than a tick can.

``raw_reconciliation_sweep`` ticks every 10 minutes. Each tick requests a full sync for each
incremental run that failed or was canceled (its changes are lost to the CDC cursor, which
had moved past them). Each UTC day it **counts** every partition of every app table
(``sweep.count_table``: an index-only GROUP BY in PostgreSQL, the Delta log), a few tables per
tick within one deadline (each statement's ``statement_timeout`` is what is left of it, set
before each, and the Delta log is read within it too), so a tick stays well inside Dagster's
60 s sensor timeout; a table whose counts alone outgrow the
budget has them done by the checksum run instead. Once every table is counted, it requests
one run of ``raw_reconciliation_checksum_job`` for the day: the **content checksums** of the
rolling slice, which read the partitions on both sides and take minutes on a big day.

The run records each partition it checked as an observation on the mirror asset, for that
partition, after each batch (``sweep.checksum_partitions``): the event log is the progress.
A run killed mid-way, retried, re-executed or requested again reads back the day's records
and checks only the rest; with nothing left it reads the log and stops, the app database
untouched. A run that fails after its retries or is canceled is requested again by the
sensor with the same config (at most three runs a day). The sensor reads the new records on
its next tick (reading back ``FINDINGS_LOOKBACK_SECONDS`` before the last one, since records
can commit out of storage-id order) and requests a full sync of every partition found to
differ, once.

Each table gets an observation on its mirror from the sensor (counts: partitions compared,
mismatched with both counts, full syncs requested, partitions repaired since the last sweep)
and one from the run (checksums, with the same keys). Every finding becomes a full sync of
the partitions that differ: one run per contiguous range of at most 31 days. A run key
names the table, range and the evidence (counts, checksum verdict), so the same finding is
never requested twice, and a finding that a full sync cannot change (rows the mirror holds
back for a NULL key) is not requested again every day. Partitions inside the daily full
sync's window are left to it: they are still being filled and would look wrong every
morning.
"""

import datetime as dt
import hashlib
import json
import time

import psycopg
from dagster import (
    AssetObservation,
    AssetRecordsFilter,
    Config,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    OpExecutionContext,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    job,
    op,
    sensor,
)
from dagster._core.storage.tags import RUN_KEY_TAG
from pydantic import Field

from voyce_assets.catalog import APP_TABLES, table
from voyce_assets.ingestion.mirrors import INGEST_RETRY, MIRRORS
from voyce_assets.ingestion.placement import DuplicateKeysError, partition_bounds
from voyce_assets.ingestion.resources import IngestionSettings
from voyce_assets.ingestion.schedules import raw_full_sync_job
from voyce_assets.ingestion.sweep import (
    OutOfTime,
    SweepResult,
    checksum_partitions,
    count_table,
    evaluation_metadata,
)
from voyce_assets.partitions import daily_partitions
from voyce_assets.privacy.tombstones import erased_hashes
from voyce_assets.resources import AppDatabase, Lakehouse

SWEEP_INTERVAL_SECONDS = 600
# Tables are counted until a tick has used this much time (at least one table per tick); no
# count statement may run longer than what is left of it.
SWEEP_BUDGET_SECONDS = 30.0
# The tags of every sweep run: they share the ingestion runs' concurrency limit.
SWEEP_TAGS = {"voyce/ingestion": "sweep"}
# The metadata key that marks an observation as the checksum run's record of one partition.
CHECKED = "sweep_checked"
RECORDS_PAGE = 1000
# Run records can be committed a little out of order: look back this far every tick (the
# run keys keep a failed run from being requested twice).
FAILED_RUN_LOOKBACK_SECONDS = 600.0
# The checksum runs' records likewise (their storage ids can commit out of order too).
FINDINGS_LOOKBACK_SECONDS = 600.0
# A day's checksum run that failed (after its retries) or was canceled is requested again,
# resuming where it stopped, until the day has had this many.
CHECKSUM_ATTEMPTS = 3


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
        days = _days_of(run)
        paths = [p for p in run.tags.get("voyce/tables", "").split(",") if p in MIRRORS]
        keys = sorted(
            {MIRRORS[p].key for p in paths} | set(run.asset_selection or ()), key=lambda k: k.path
        )
        if not days or not keys:
            context.log.warning(f"failed run {run.run_id}: no partition or tables to re-sync")
            continue
        for start, end in _ranges(days):
            one = start == end
            requests.append(
                RunRequest(
                    # A one-partition run's key as before; a range's by each stretch's start.
                    run_key=f"full-after-failed:{run.run_id}"
                    + ("" if len(days) == 1 else f":{start}"),
                    job_name=raw_full_sync_job.name,
                    partition_key=start if one else None,
                    asset_selection=keys,
                    tags={"voyce/sync_mode": "full", **SWEEP_TAGS}
                    | (
                        {}
                        if one
                        else {
                            "dagster/asset_partition_range_start": start,
                            "dagster/asset_partition_range_end": end,
                        }
                    ),
                )
            )
    return requests


def _days_of(run) -> list[str]:
    """The days a failed incremental run was to merge: its partition, or (a CDC run over a
    range, ``sensors.coalesce``) the changed days its ops' config named, else its range."""
    if partition := run.tags.get("dagster/partition"):
        return [partition]
    ops = (run.run_config or {}).get("ops") or {}
    named = {d for op in ops.values() for d in ((op or {}).get("config") or {}).get("days") or []}
    if named:
        return sorted(named)
    start = run.tags.get("dagster/asset_partition_range_start")
    end = run.tags.get("dagster/asset_partition_range_end")
    if not (start and end):
        return []
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


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
                job_name=raw_full_sync_job.name,
                asset_selection=[MIRRORS[path].key],
                tags={
                    "dagster/asset_partition_range_start": start,
                    "dagster/asset_partition_range_end": end,
                    "voyce/sync_mode": "full",
                    **SWEEP_TAGS,
                },
            )
        )
    return out


# The progress of the checksum run lives in Dagster's event log, as one observation per
# partition checked on the mirror asset (metadata: the sweep day, the verdict and counts).
# Written as each batch ends, it is durable wherever the instance's storage is (the same
# database as the sensor's cursor and the run records), read back by a later run and by the
# sensor through the instance, and shown in the UI on the partition it is about; a file
# under the lakehouse would need appends on object storage and a reader of its own.


def _records(instance: DagsterInstance, path: str, records_filter: AssetRecordsFilter):
    """(storage id, partition, metadata) of the checksum run's records of ``path``'s mirror
    that ``records_filter`` selects, oldest first."""
    cursor = None
    while True:
        page = instance.fetch_observations(
            records_filter, limit=RECORDS_PAGE, cursor=cursor, ascending=True
        )
        for record in page.records:
            observation = record.asset_observation
            if observation is None:
                continue
            metadata = {k: v.value for k, v in observation.metadata.items()}
            if observation.partition and CHECKED in metadata:
                yield record.storage_id, observation.partition, metadata
            else:
                yield record.storage_id, None, None
        if not page.has_more:
            return
        cursor = page.cursor


def _evidence(metadata: dict) -> dict:
    return {k: metadata[k] for k in ("source_rows", "mirror_rows", "checksum_equal")}


def checked_partitions(instance: DagsterInstance, path: str, sweep_day: str) -> dict[str, dict]:
    """{partition: evidence} of the partitions of ``path`` already checked for the sweep of
    ``sweep_day`` (by any run: a killed one's records count)."""
    start = dt.datetime.combine(dt.date.fromisoformat(sweep_day), dt.time(), tzinfo=dt.UTC)
    flt = AssetRecordsFilter(asset_key=MIRRORS[path].key, after_timestamp=start.timestamp())
    return {
        partition: {**_evidence(metadata), "kind": metadata[CHECKED]}
        for _, partition, metadata in _records(instance, path, flt)
        if partition and metadata.get("sweep_day") == sweep_day
    }


def _record(context, path: str, sweep_day: str, kind: str, found: dict[str, dict]) -> None:
    for partition, evidence in sorted(found.items()):
        # A count that differs (no verdict) or a checksum that does.
        wrong = evidence["checksum_equal"] is not True
        context.log_event(
            AssetObservation(
                asset_key=MIRRORS[path].key,
                partition=partition,
                metadata={"sweep_day": sweep_day, CHECKED: kind, "finding": wrong, **evidence},
            )
        )


class ChecksumSweepConfig(Config):
    """One day's checksum work, as the sweep's sensor requests it."""

    sweep_day: str = Field(description="The UTC day of the sweep: progress is kept per day.")
    partitions: dict[str, list[str]] = Field(
        default_factory=dict, description="{table path: the partitions to checksum}"
    )
    count: list[str] = Field(
        default_factory=list,
        description="Tables whose counts outgrew the sensor's budget: counted here first, "
        "then their day's slice checksummed.",
    )
    before: str | None = Field(
        default=None, description="Counted tables: partitions from this day on are left out."
    )
    pg_schema: str = Field(default="public", description="Schema of the app tables.")


@op(
    name="reconciliation_checksums",
    pool="app_db",
    retry_policy=INGEST_RETRY,
    description="Content checksums of the sweep's slice, source against mirror, recorded per "
    "partition as observations on the mirrors (a rerun checks only what is not recorded).",
)
def reconciliation_checksums(
    context: OpExecutionContext,
    config: ChecksumSweepConfig,
    app_db: AppDatabase,
    lakehouse: Lakehouse,
    ingestion_settings: IngestionSettings,
) -> None:
    settings = ingestion_settings.check()
    day = config.sweep_day
    valid = set(daily_partitions.get_partition_keys())
    tombstones: frozenset[str] | None = None
    for path in sorted(set(config.partitions) | set(config.count)):
        spec, counted = table(path), path in config.count
        done = checked_partitions(context.instance, path, day)
        todo = [p for p in config.partitions.get(path, []) if p not in done]
        if not todo and not counted:
            context.log.info(f"{path}: all {len(done)} partitions already checked for {day}")
            continue
        if tombstones is None:
            tombstones = erased_hashes(lakehouse)
        result = SweepResult(table=spec, day=dt.date.fromisoformat(day))
        result.compared = len(config.partitions.get(path, []))
        with app_db.connect() as conn:
            try:
                if counted:
                    result = count_table(
                        conn,
                        spec,
                        lakehouse,
                        result.day,
                        settings.checksum_every_days,
                        config.pg_schema,
                        dt.date.fromisoformat(config.before) if config.before else None,
                        partition_bounds(),
                        tombstones,
                    )
                    new = {
                        p: e for p, e in result.mismatched.items() if p in valid and p not in done
                    }
                    _record(context, path, day, "count", new)
                    done.update({p: {**e, "kind": "count"} for p, e in new.items()})
                    todo = [p for p in result.scrub if p in valid and p not in done]
                for found in checksum_partitions(
                    conn, spec, lakehouse, todo, config.pg_schema, tombstones
                ):
                    _record(context, path, day, "checksum", found)
                    done.update({p: {**e, "kind": "checksum"} for p, e in found.items()})
            except DuplicateKeysError as exc:
                result.error = str(exc)
            conn.rollback()
        # The day's whole picture of the table, earlier runs' records included.
        result.checksummed = sorted(p for p, e in done.items() if e["kind"] == "checksum")
        result.mismatched = {
            p: _evidence(e) for p, e in done.items() if e["checksum_equal"] is not True
        }
        wrong = sorted(p for p in result.mismatched if p in valid)
        context.log_event(
            AssetObservation(
                asset_key=MIRRORS[path].key,
                # full_syncs_requested: what the sensor requests on its next tick.
                metadata={**evaluation_metadata(result, wrong, []), "sweep_day": day},
            )
        )
        context.log.info(
            f"{path}: {len(result.checksummed)} partitions checksummed for {day}, "
            f"{len(result.mismatched)} differ"
        )


@job(
    name="raw_reconciliation_checksum_job",
    tags=SWEEP_TAGS,
    description="The reconciliation sweep's content checksums of one day (requested by "
    "raw_reconciliation_sweep); resumes where a killed run stopped.",
)
def raw_reconciliation_checksum_job():
    reconciliation_checksums()


def _new_findings(context, state: dict, now: float) -> list[RunRequest]:
    """Full syncs for what the checksum runs found since the last tick. Records can commit
    out of storage-id order, so each tick reads back ``FINDINGS_LOOKBACK_SECONDS`` before the
    last one; the findings already requested in that window (their storage ids, in
    ``asked``) are not requested again."""
    instance = context.instance
    since = state.pop("findings_after", None)
    state["findings_after"] = now
    if since is None and "seen" not in state:
        return []  # the first tick starts watching now
    # A cursor from before the lookback ("seen": a storage id) reads back from now.
    state.pop("seen", None)
    after = (now if since is None else since) - FINDINGS_LOOKBACK_SECONDS
    asked = set(state.get("asked", []))
    still: set[int] = set()
    requests = []
    valid = set(daily_partitions.get_partition_keys())
    pending: dict[str, list[str]] = state.setdefault("pending", {})
    for spec in APP_TABLES:
        flt = AssetRecordsFilter(asset_key=MIRRORS[spec.path].key, after_timestamp=after)
        found: dict[str, dict] = {}
        for storage_id, partition, metadata in _records(instance, spec.path, flt):
            if partition and metadata.get("finding") and partition in valid:
                still.add(storage_id)
                if storage_id not in asked:
                    found[partition] = _evidence(metadata)
        if found:
            requests += _repairs(spec.path, found, sorted(found))
            pending[spec.path] = sorted(set(pending.get(spec.path, [])) | set(found))
            context.log.info(f"{spec.path}: the checksum run found {sorted(found)}")
    # What the window no longer holds is never read again.
    state["asked"] = sorted(still)
    return requests


def _checksum_key(day: dt.date, attempt: int) -> str:
    return f"sweep-checksums:{day}" + ("" if attempt == 1 else f":{attempt}")


def _checksum_again(context, state: dict, today: dt.date) -> list[RunRequest]:
    """The day's checksum run again, with the same config, if its last attempt failed (after
    its retries) or was canceled: it resumes where that one stopped. At most
    ``CHECKSUM_ATTEMPTS`` a day."""
    attempt = state["attempt"]
    if attempt >= CHECKSUM_ATTEMPTS:
        return []
    runs = context.instance.get_runs(
        filters=RunsFilter(tags={RUN_KEY_TAG: _checksum_key(today, attempt)}), limit=1
    )
    if not runs or runs[0].status not in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
        return []
    state["attempt"] = attempt + 1
    context.log.warning(
        f"checksum run {runs[0].run_id} ended {runs[0].status.value}: requested again "
        f"({attempt + 1} of {CHECKSUM_ATTEMPTS})"
    )
    return [
        RunRequest(
            run_key=_checksum_key(today, attempt + 1),
            job_name=raw_reconciliation_checksum_job.name,
            run_config=runs[0].run_config,
            tags=SWEEP_TAGS,
        )
    ]


def _count(app_db: AppDatabase, seconds: float, **kwargs) -> SweepResult | None:
    """``count_table`` within ``seconds`` in all: each statement's timeout is what is left,
    the Delta log read within it too (None if they do not fit)."""
    deadline = time.monotonic() + seconds
    with app_db.connect() as conn:
        try:
            return count_table(conn, deadline=deadline, **kwargs)
        except (psycopg.errors.QueryCanceled, OutOfTime):
            return None
        finally:
            conn.rollback()


@sensor(
    name="raw_reconciliation_sweep",
    minimum_interval_seconds=SWEEP_INTERVAL_SECONDS,
    jobs=[raw_full_sync_job, raw_reconciliation_checksum_job],
    default_status=DefaultSensorStatus.STOPPED,
    description="Every 10 minutes: a full sync for each failed incremental run, and for each "
    "partition the day's checksum run found. Each day: the counts of every partition of every "
    "app table (older than the daily full sync's window) compared with its source, a full "
    "sync of each that differs, and one raw_reconciliation_checksum_job run for the content "
    "checksums of a rolling slice (each partition at least every checksum_every_days).",
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
    requests += _new_findings(context, state, now.timestamp())
    today = now.date()
    fresh = {"done": [], "scrub": {}, "count_in_job": [], "requested": False, "attempt": 1}
    if state.get("day") != today.isoformat():
        state.update(day=today.isoformat(), **fresh)
    for key, value in fresh.items():
        state.setdefault(key, value)  # a cursor written before the checksum run
    pending: dict[str, list[str]] = state.setdefault("pending", {})
    window_start = today - dt.timedelta(days=settings.full_sync_days - 1)
    valid = set(daily_partitions.get_partition_keys())
    events: list[AssetObservation] = []
    # Erased subjects the app still holds: compared as absent (read once per tick).
    tombstones: frozenset[str] | None = None
    first = True
    for spec in APP_TABLES:
        path = spec.path
        if path in state["done"]:
            continue
        left = SWEEP_BUDGET_SECONDS - (time.monotonic() - started)
        if not first and left <= 1:
            break  # the rest next tick
        if tombstones is None:
            tombstones = erased_hashes(lakehouse)
        result = _count(
            app_db,
            left,
            table=spec,
            lakehouse=lakehouse,
            day=today,
            checksum_every_days=settings.checksum_every_days,
            before=window_start,
            bounds=partition_bounds(),
            tombstones=tombstones,
        )
        if result is None and not first:
            break  # next tick, with the whole budget
        first = False
        if result is None:
            # Too big to count within a tick: the checksum run counts it.
            context.log.warning(f"{path}: counts over {left:.0f} s, left to the checksum run")
            state["count_in_job"].append(path)
            state["done"].append(path)
            continue
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
        state["scrub"][path] = [p for p in result.scrub if p in valid]
        events.append(
            AssetObservation(
                asset_key=MIRRORS[path].key,
                metadata={
                    **evaluation_metadata(result, wrong, repaired),
                    "partitions_to_checksum": len(state["scrub"][path]),
                },
            )
        )
        state["done"].append(path)
        context.log.info(
            f"{path}: {result.compared} partitions counted, {len(result.mismatched)} differ, "
            f"{len(state['scrub'][path])} to checksum"
        )
    if len(state["done"]) == len(APP_TABLES) and not state["requested"]:
        work = {path: keys for path, keys in state["scrub"].items() if keys}
        if work or state["count_in_job"]:
            config = ChecksumSweepConfig(
                sweep_day=today.isoformat(),
                partitions=work,
                count=state["count_in_job"],
                before=window_start.isoformat(),
            )
            requests.append(
                RunRequest(
                    run_key=_checksum_key(today, 1),
                    job_name=raw_reconciliation_checksum_job.name,
                    run_config={
                        "ops": {"reconciliation_checksums": {"config": config.model_dump()}}
                    },
                    tags=SWEEP_TAGS,
                )
            )
        state.update(requested=True, scrub={})
    elif state["requested"]:
        requests += _checksum_again(context, state, today)
    cursor = json.dumps(state, sort_keys=True)
    if not requests and not events:
        return SensorResult(skip_reason=SkipReason("swept today; nothing found"), cursor=cursor)
    return SensorResult(run_requests=requests, asset_events=events, cursor=cursor)
