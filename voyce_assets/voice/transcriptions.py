"""``raw_data/transcriptions``: Whisper speech-to-text, one row per voice feedback.

Keeps transcripts that are still valid (same engine/model, made after the current copy),
transcribes the rest from the processed copies on ``voice_compute`` (in process, or as one
Spark job: ``voice/compute.py``), chunk by chunk with progress staged, and replaces the
partitions in one commit. Failures are rows with ``error_message``.
"""

import datetime as dt
import time

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
)

from voyce_assets.automation import hourly_after_upstream
from voyce_assets.catalog import table
from voyce_assets.checks import MAX_FAILURE_RATE, rate_check
from voyce_assets.feedback import Feedback, existing_rows, partition_feedback, write_partition
from voyce_assets.partitions import by_partition, partition_dates, record_partitions
from voyce_assets.resources import Lakehouse
from voyce_assets.tables import table_asset
from voyce_assets.voice.compute import VoiceCompute
from voyce_assets.voice.paths import audio_paths, error_text, stage_root, work_item
from voyce_assets.voice.tasks import VoiceJob
from voyce_assets.voice.transcriber import Transcriber

TRANSCRIPTIONS = table("raw_data/transcriptions")


@table_asset(
    TRANSCRIPTIONS.path,
    deps=["processed_data/processed_audio", "raw_data/voice_feedback"],
    retry_policy=RetryPolicy(max_retries=2, delay=30),
    automation_condition=hourly_after_upstream(),
    kinds={"whisper"},
    # GPU-heavy: one at a time per pool slot (dagster.yaml), on the GPU step launcher in prod.
    pool="gpu",
    # The step launcher is picked up as a required resource; the others are read from it too.
    required_resource_keys={"gpu_step_launcher", "lakehouse", "transcriber", "voice_compute"},
    description="One row per voice feedback of the partition; failures (corrupt, missing, "
    "silent, too long ...) are rows with error_message. Feedback already transcribed by the "
    "same engine/model is kept, not transcribed again.",
    checks={"failure_rate": f"At most {MAX_FAILURE_RATE:.0%} of each partition of the run failed."},
)
def transcriptions(context: AssetExecutionContext) -> MaterializeResult:
    lakehouse: Lakehouse = context.resources.lakehouse
    transcriber: Transcriber = context.resources.transcriber
    compute: VoiceCompute = context.resources.voice_compute
    dates = partition_dates(context)
    feedback = partition_feedback(lakehouse, dates)
    previous = existing_rows(lakehouse, TRANSCRIPTIONS, dates)
    label = transcriber.label
    rows, pending = [], []
    for item in feedback:
        old = previous.get(item.id)
        if old and _still_valid(old, label, lakehouse, item):
            rows.append({**old, "_reused": True})
        else:
            pending.append(item)
    if pending:
        # A broken engine (no weights, CUDA asked for and absent, a bad setting) fails the
        # step here, with its own message, before any row is written: never a partition of
        # error rows. Retrying cannot fix a setting, so it is not retried.
        try:
            transcriber.load()
        except Exception as exc:
            raise Failure(
                description=f"transcriber {transcriber.label} on {transcriber.device} cannot "
                f"work: {error_text(exc)}",
                allow_retries=False,
            ) from exc
    started = time.perf_counter()
    job = transcription_job(lakehouse, transcriber)
    run = compute.run(job, [work_item(lakehouse, item, "processed") for item in pending])
    busy_seconds = time.perf_counter() - started
    audio_seconds = sum(r["_audio_seconds"] for r in run.rows)
    rows += run.rows
    write_partition(lakehouse, TRANSCRIPTIONS, [_stored(r) for r in rows], dates)
    run.commit(job)
    per_partition = {}
    for key, day_rows in by_partition(context, rows, lambda r: r["event_date"]).items():
        failures = {
            r["voice_feedback_id"]: r["error_message"] for r in day_rows if r["error_message"]
        }
        reused = sum(1 for r in day_rows if r.get("_reused"))
        good = [r for r in day_rows if not r["error_message"]]
        for fid, error in failures.items():  # kept rows never carry an error: all are new
            context.log.warning(f"voice_feedback {fid}: {error}")
        per_partition[key] = {
            "dagster/partition_row_count": len(day_rows),
            "transcribed": len(day_rows) - reused - len(failures),
            "reused": reused,
            "failed": len(failures),
            "failure_rate": round(len(failures) / len(day_rows), 4) if day_rows else 0.0,
            "failures": MetadataValue.json(failures),
            "audio_seconds_transcribed": round(
                sum(r.get("_audio_seconds", 0.0) for r in day_rows), 2
            ),
            "mean_confidence": round(
                sum(r["confidence_score"] or 0 for r in good) / max(1, len(good)), 4
            ),
        }
    record_partitions(context, per_partition)
    return MaterializeResult(
        metadata={
            "engine": label,
            "run_realtime_factor": round(audio_seconds / busy_seconds, 2) if busy_seconds else 0.0,
            **run.metadata,
        },
        check_results=[failure_rate_check(rows, context.partition_keys)],
    )


def transcription_job(lakehouse: Lakehouse, transcriber: Transcriber) -> VoiceJob:
    """The Whisper job: the transcriber's settings travel to the tasks, which build it again."""
    settings = {name: getattr(transcriber, name) for name in Transcriber.model_fields}
    return VoiceJob("transcribe", transcriber.label, stage_root(lakehouse), settings)


def failure_rate_check(rows: list[dict], partitions: list[str]) -> AssetCheckResult:
    """Failed rows per partition of the run: one day over the alert fails the check, however
    clean the other days of a backfill are, and the check names it."""
    return rate_check(
        "failure_rate",
        rows,
        partitions,
        day=lambda r: r["event_date"],
        counts=lambda r: bool(r["error_message"]),
        max_rate=MAX_FAILURE_RATE,
        example=lambda r: f"{r['voice_feedback_id']}: {r['error_message']}",
    )


def _stored(row: dict) -> dict:
    """The row as the table holds it (bookkeeping keys dropped)."""
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _still_valid(row: dict, label: str, lakehouse: Lakehouse, item: Feedback) -> bool:
    """A transcript to keep: same engine/model, no error, made after the current audio copy."""
    if row["transcription_engine"] != label or row["error_message"]:
        return False
    try:
        copy = audio_paths(lakehouse, item).processed
        copied = dt.datetime.fromtimestamp(copy.stat().st_mtime, dt.UTC)
    except Exception:  # unusable since (gone, unsafe, a link loop): transcribe again to say why
        return False
    return copied <= row["created_at"]
