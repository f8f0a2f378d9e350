"""``raw_data/erasure_log`` and the ``erasure`` job: right to erasure, and the cascade of the
app's own deletes.

The asset erases the subjects its run config names (``privacy.erasure.erase``: the stages'
stores through the ``erasure_stores`` resource, then every catalog table) and appends one
log row per subject to today's partition. Its materialization says which feedback days the
subjects were counted on (``feedback_days``: dates only, never an id): the analytics stage
recomputes those (its ``erasure_recompute`` sensor; ``voyce erase`` does it in process).

``erasure_cascade``: after a sync of ``raw_data/voice_feedback``, the feedback ids the
pipeline's tables hold for the synced days but the mirror no longer does (the app deleted
them) are erased with reason ``app_delete``: their derived rows, files, caches and index
entries go by themselves on the next sync.
"""

import datetime as dt
import hashlib
import json

from dagster import (
    AssetExecutionContext,
    AssetRecordsFilter,
    Config,
    DefaultSensorStatus,
    Failure,
    MaterializeResult,
    MetadataValue,
    RunRequest,
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
    find_by_hash,
    held_by_app,
    purge,
    tombstone_row,
    tombstones_of,
    vanished_ids,
)
from voyce_assets.privacy.tombstones import subject_hash
from voyce_assets.resources import AppDatabase, Lakehouse
from voyce_assets.tables import table_asset, table_key

ERASURE_JOB = "erasure"


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
    description="Materialized by the `erasure` job only (`voyce erase` locally), for today's "
    "partition, with the subjects in its run config.",
)
def erasure_log(context: AssetExecutionContext, config: ErasureConfig) -> MaterializeResult:
    (day,) = partition_dates(context)
    now = dt.datetime.now(dt.UTC)
    if day != now.date():
        raise Failure(f"an erasure is logged on the day it runs: run it for {now.date()}")
    if config.reason not in REASONS:
        raise Failure(f"reason must be one of {', '.join(REASONS)}, got {config.reason!r}")
    bad = [h for h in config.subject_hashes if len(h) != 64 or h.strip("0123456789abcdef")]
    if bad:
        raise Failure(f"{len(bad)} subject_hashes are not subject_hash values (64 hex digits)")
    lakehouse = context.resources.lakehouse
    try:
        subjects = [Subject(config.subject_type, i) for i in config.subject_ids]
        unknown = []
        for hashed in config.subject_hashes:
            found = find_by_hash(lakehouse, config.subject_type, hashed)
            if found is None:
                unknown.append(hashed)
            else:
                subjects.append(found)
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


@sensor(
    name="erasure_cascade",
    job=erasure_job,
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.STOPPED,
    description="After a sync of raw_data/voice_feedback: the feedback the pipeline's tables "
    "hold for the synced days that the mirror no longer does (the app deleted them) are "
    "erased, reason app_delete.",
)
def erasure_cascade(context: SensorEvaluationContext, lakehouse: Lakehouse, app_db: AppDatabase):
    after = int(context.cursor) if context.cursor else None
    fresh = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=table_key(FEEDBACK.path), after_storage_id=after),
        limit=1000,
        ascending=True,
    ).records
    if not fresh:
        return SkipReason("no sync of raw_data/voice_feedback since the last look")
    days = sorted(
        {dt.date.fromisoformat(r.partition_key) for r in fresh if r.partition_key is not None}
    )
    context.update_cursor(str(max(r.storage_id for r in fresh)))
    missing = vanished_ids(lakehouse, days)
    # Missing from the mirror but not deleted: the sync held their rows back.
    missing = sorted(missing - held_by_app(app_db, "feedback", missing))
    if not missing:
        return SkipReason(f"every feedback of {len(days)} synced days is still in the mirror")
    today = dt.datetime.now(dt.UTC).date()
    digest = hashlib.sha256(json.dumps(missing).encode()).hexdigest()[:16]
    # By hash: the run's config is kept in Dagster's run storage.
    return RunRequest(
        run_key=f"erasure_cascade:{digest}",
        partition_key=today.isoformat(),
        run_config=run_config("feedback", missing, reason="app_delete"),
    )
