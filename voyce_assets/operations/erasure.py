"""``raw_data/erasure_log`` and the ``erasure`` job: right to erasure, and the cascade of the
app's own deletes.

The asset erases the subjects its run config names (``privacy.erasure.erase``: the stages'
stores through the ``erasure_stores`` resource, then every catalog table) and appends one
log row per subject to the partition of the day the run was requested (a run queued over
midnight still logs there). Its materialization says which feedback days the
subjects were counted on (``feedback_days``: dates only, never an id): the analytics stage
recomputes those (its ``erasure_recompute`` sensor; ``voyce erase`` does it in process).

``erasure_cascade``: after a sync of ``raw_data/voice_feedback``, the feedback ids the
pipeline's tables hold for the synced days but the mirror no longer does (the app deleted
them, and the app database does not hold them either) are erased with reason ``app_delete``:
their derived rows, files, caches and index entries go by themselves on the next sync. A
feedback the app still holds is never cascaded (the sync may have held its row back: a NULL
in a required column, a repeated key, a timestamp Arrow cannot hold), and the erasure asks
the app again before it erases (``still_in_app``). The cursor keeps the hashes it asked for
until an erasure_log row holds them: a run that failed is asked for again the next day.
"""

import datetime as dt
import hashlib
import json

from dagster import (
    AssetExecutionContext,
    AssetRecordsFilter,
    Config,
    DagsterRunStatus,
    DefaultSensorStatus,
    Failure,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    sensor,
)
from pydantic import Field

from voyce_assets.partitions import daily_partitions, partition_dates
from voyce_assets.privacy.erasure import (
    FEEDBACK,
    LOG,
    REASONS,
    SUBJECT_TYPES,
    Subject,
    append_log,
    erase,
    find_by_hashes,
    held_by_app,
    purge,
    tombstone_row,
    tombstones_of,
    vanished_ids,
)
from voyce_assets.privacy.tombstones import erased_hashes, subject_hash
from voyce_assets.resources import AppDatabase, Lakehouse
from voyce_assets.resources.app_db import APP_DB_POOL
from voyce_assets.tables import table_asset, table_key

ERASURE_JOB = "erasure"
CASCADE = "erasure_cascade"


class ErasureConfig(Config):
    """Who to erase (the Launchpad shows it; ``voyce erase`` and the cascade pass it)."""

    subject_type: str = Field(description=f"One of {', '.join(SUBJECT_TYPES)}.")
    subject_hashes: list[str] = Field(
        default_factory=list,
        description="The subjects' privacy.tombstones.subject_hash (what voyce erase and the "
        "cascade pass): the run's config stays in Dagster's run storage, which cannot be "
        "edited per person, so it should hold no id. One log row each.",
    )
    subject_ids: list[str] = Field(
        default_factory=list,
        description="The subjects' ids (UUIDs), when typed by hand: kept in the run's config.",
    )
    reason: str = Field(
        default="request",
        description="request (a right-to-erasure request) or app_delete (the app deleted it).",
    )
    purge: bool = Field(
        default=False,
        description="Vacuum the superseded Delta files at once (no time travel to before the "
        "erasure); otherwise the weekly VACUUM deletes them after the tables' retention.",
    )


def run_config(
    subject_type: str, subject_ids: list[str], reason: str = "request", purge: bool = False
) -> dict:
    """The ``erasure`` job's run config for ``subject_ids``, by their hashes only."""
    config = {
        "subject_type": subject_type,
        "subject_hashes": [subject_hash(i) for i in subject_ids],
        "reason": reason,
        "purge": purge,
    }
    return {"ops": {"raw_data__erasure_log": {"config": config}}}


@table_asset(
    LOG.path,
    required_resource_keys={"lakehouse", "app_db", "erasure_stores"},
    # It asks the app database and rewrites the mirrors: never beside a sync of them.
    pool=APP_DB_POOL,
    description="Materialized by the `erasure` job only (`voyce erase` locally), for the "
    "partition of the day the run is requested, with the subjects in its run config.",
)
def erasure_log(context: AssetExecutionContext, config: ErasureConfig) -> MaterializeResult:
    (day,) = partition_dates(context)
    # Logged on the day it was requested (the run's creation), however long it was queued:
    # that day's partition, or the day before (requested just before midnight).
    record = context.instance.get_run_record_by_id(context.run_id)
    now = record.create_timestamp if record is not None else dt.datetime.now(dt.UTC)
    now = now if now.tzinfo else now.replace(tzinfo=dt.UTC)
    if day not in (now.date(), now.date() - dt.timedelta(days=1)):
        raise Failure(f"an erasure is logged on the day it was requested: run it for {now.date()}")
    if config.reason not in REASONS:
        raise Failure(f"reason must be one of {', '.join(REASONS)}, got {config.reason!r}")
    bad = [h for h in config.subject_hashes if len(h) != 64 or h.strip("0123456789abcdef")]
    if bad:
        raise Failure(f"{len(bad)} subject_hashes are not subject_hash values (64 hex digits)")
    lakehouse = context.resources.lakehouse
    try:
        subjects = [Subject(config.subject_type, i) for i in config.subject_ids]
        found = find_by_hashes(lakehouse, config.subject_type, config.subject_hashes)
        unknown = [h for h in dict.fromkeys(config.subject_hashes) if h not in found]
        subjects += [found[h] for h in dict.fromkeys(config.subject_hashes) if h in found]
    except ValueError as exc:
        raise Failure(str(exc)) from None
    still_in_app = 0
    if config.reason == "app_delete" and subjects:
        # The app deleted nothing of these: the sync held their rows back from the mirror
        # (a NULL in a required column, a repeated key, a timestamp Arrow cannot hold).
        held = held_by_app(context.resources.app_db, config.subject_type, [s.id for s in subjects])
        subjects = [s for s in subjects if s.id not in held]
        still_in_app = len(held)
        if held:
            context.log.warning(
                f"{still_in_app} {config.subject_type} the app still holds left alone "
                "(missing from the mirror, not deleted)"
            )
    # Held nowhere any more: a tombstone all the same.
    rows = [
        tombstone_row(config.subject_type, h, config.reason, now, config.purge) for h in unknown
    ]
    removed, days = {}, set()
    for subject in subjects:
        outcome = erase(
            lakehouse,
            subject,
            context.resources.erasure_stores,
            app_db=context.resources.app_db,
            reason=config.reason,
            purge_now=config.purge,
            requested_at=now,
            log=context.log.info,
        )
        rows.append(outcome.row)
        days |= set(outcome.plan.feedback_days)
        for key, count in outcome.removed.items():
            removed[key] = removed.get(key, 0) + count
    if config.purge and unknown:
        # Gone from the tables already (an earlier erasure): what time travel, the change
        # feed and the log still hold of them goes now.
        hashes = set().union(*(tombstones_of(lakehouse, h) for h in unknown))
        for key, count in purge(lakehouse, set(), hashes).items():
            removed[key] = removed.get(key, 0) + count
        for row in rows:
            if row["subject_hash"] in unknown:
                row["removed"] = json.dumps(removed, sort_keys=True)
    unchecked = sorted(k.removesuffix("_unchecked") for k in removed if k.endswith("_unchecked"))
    if unchecked:
        context.log.warning(
            f"not checked, not reachable from where this ran: {', '.join(unchecked)} "
            "(the log row's removed says so; erase again where they are mounted)"
        )
    for row in rows:
        row["event_date"] = day
    if rows:
        append_log(lakehouse, rows)
    # No id, no text: the event log cannot be edited per person.
    return MaterializeResult(
        metadata={
            "subjects": MetadataValue.int(len(rows)),
            "reason": config.reason,
            "purged": config.purge,
            "still_in_app": MetadataValue.int(still_in_app),
            "removed": MetadataValue.json(removed),
            "feedback_days": MetadataValue.json(sorted(d.isoformat() for d in days)),
        }
    )


erasure_job = define_asset_job(
    ERASURE_JOB,
    selection=[table_key(LOG.path)],
    partitions_def=daily_partitions,
    description="Right to erasure: the subjects of the run config removed from every table, "
    "volume, cache and index, one erasure_log row each (run it for today's partition).",
)


# The tag Dagster gives the runs a sensor requests.
SENSOR_NAME_TAG = "dagster/sensor_name"
# Runs of the erasure job not yet finished: a pending cascade is not asked for again meanwhile.
_UNFINISHED = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def _cursor(value: str | None) -> tuple[int | None, dict[str, str]]:
    """(the last sync looked at, ``{hash: day last requested}`` of the cascaded feedback no
    log row holds yet). An older cursor is the storage id alone."""
    if not value:
        return None, {}
    if value.isdigit():
        return int(value), {}
    state = json.loads(value)
    return state.get("after"), dict(state.get("pending", {}))


def _in_flight(context: SensorEvaluationContext) -> bool:
    runs = context.instance.get_runs(
        filters=RunsFilter(
            job_name=ERASURE_JOB,
            statuses=_UNFINISHED,
            tags={SENSOR_NAME_TAG: CASCADE},
        ),
        limit=1,
    )
    return bool(runs)


@sensor(
    name=CASCADE,
    job=erasure_job,
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.STOPPED,
    description="After a sync of raw_data/voice_feedback: the feedback the pipeline's tables "
    "hold for the synced days that the mirror no longer holds and the app does not either "
    "(the app deleted them) are erased, reason app_delete; those no erasure_log row holds yet "
    "(a run that failed) are asked for again each day.",
)
def erasure_cascade(context: SensorEvaluationContext, lakehouse: Lakehouse, app_db: AppDatabase):
    after, pending = _cursor(context.cursor)
    fresh = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=table_key(FEEDBACK.path), after_storage_id=after),
        limit=1000,
        ascending=True,
    ).records
    today = dt.datetime.now(dt.UTC).date()
    if pending:
        # Erased since (or found erased already): a log row holds their hash.
        logged = erased_hashes(lakehouse)
        pending = {h: d for h, d in pending.items() if h not in logged}
    new: set[str] = set()
    if fresh:
        after = max(r.storage_id for r in fresh)
        days = sorted(
            {dt.date.fromisoformat(r.partition_key) for r in fresh if r.partition_key is not None}
        )
        missing = vanished_ids(lakehouse, days)
        # Missing from the mirror but not deleted: the sync held their rows back.
        missing -= held_by_app(app_db, "feedback", missing)
        new = {subject_hash(i) for i in missing} - set(pending)
    # Still not logged a day after they were asked for, and no erasure run under way.
    again = {h for h, d in pending.items() if d < today.isoformat()}
    if again and _in_flight(context):
        again = set()
    wanted = sorted(new | again)
    # A new key for each request of a hash (the day it was last asked for is in it).
    digest = hashlib.sha256(json.dumps([[h, pending.get(h)] for h in wanted]).encode())
    pending |= {h: today.isoformat() for h in wanted}
    context.update_cursor(json.dumps({"after": after, "pending": dict(sorted(pending.items()))}))
    if not wanted:
        if not fresh:
            return SkipReason("no sync of raw_data/voice_feedback since the last look")
        return SkipReason("every feedback of the synced days is still in the mirror or the app")
    # By hash: the run's config is kept in Dagster's run storage.
    config = {
        "subject_type": "feedback",
        "subject_hashes": wanted,
        "reason": "app_delete",
        "purge": False,
    }
    return RunRequest(
        run_key=f"{CASCADE}:{today.isoformat()}:{digest.hexdigest()[:16]}",
        partition_key=today.isoformat(),
        run_config={"ops": {"raw_data__erasure_log": {"config": config}}},
    )
