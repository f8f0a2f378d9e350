"""``raw_data/transcriptions``: Whisper speech-to-text, one row per voice feedback.

Keeps transcripts that are still valid (same engine/model and redaction, made after the
current copy), transcribes the rest from the processed copies on ``voice_compute`` (in
process, or as one Spark job: ``voice/compute.py``), chunk by chunk with progress staged,
and replaces the partitions in one commit. Failures are rows with ``error_message``.

Each row also holds its redacted text and the personal data found, with the seconds that
said it; those seconds are silenced in the processed copy (``voice/redaction.py``), which
the ``pii_audio_silent`` check verifies.
"""

import collections
import datetime as dt
import json
import time
from pathlib import Path

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
from voyce_assets.voice import redaction
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
    "silent, too long ...) are rows with error_message. Each row holds the text, the text with "
    "personal data redacted and where that data is (characters and seconds); those seconds are "
    "silenced in the processed copy. Feedback already transcribed by the same engine/model, "
    "redacted the same way, is kept, not transcribed again.",
    checks={
        "failure_rate": f"At most {MAX_FAILURE_RATE:.0%} of each partition of the run failed.",
        "pii_audio_silent": "The audio spans of the personal data found in the run's rows are "
        "silent in their processed copies.",
    },
)
def transcriptions(context: AssetExecutionContext) -> MaterializeResult:
    lakehouse: Lakehouse = context.resources.lakehouse
    transcriber: Transcriber = context.resources.transcriber
    compute: VoiceCompute = context.resources.voice_compute
    dates = partition_dates(context)
    feedback = partition_feedback(lakehouse, dates)
    previous = existing_rows(lakehouse, TRANSCRIPTIONS, dates)
    label = transcriber.label
    redacting = redaction.label(transcriber.redact_pii)
    rows, pending = [], []
    for item in feedback:
        old = previous.get(item.id)
        if old and _still_valid(old, label, redacting, lakehouse, item):
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
            # How much personal data was redacted and silenced: counts by type, never text.
            "personal_data_redacted": MetadataValue.json(_pii_counts(day_rows)),
        }
    record_partitions(context, per_partition)
    return MaterializeResult(
        metadata={
            "engine": label,
            "run_realtime_factor": round(audio_seconds / busy_seconds, 2) if busy_seconds else 0.0,
            **run.metadata,
        },
        check_results=[
            failure_rate_check(rows, context.partition_keys),
            pii_audio_silent_check(rows, _copies(lakehouse, feedback)),
        ],
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


def pii_audio_silent_check(rows: list[dict], copies: dict[str, Path | None]) -> AssetCheckResult:
    """Every audio span of the personal data in ``rows`` is silent in its processed copy
    (``copies``: feedback id -> copy path): the peak in each span is under ``SILENT_PEAK``.
    A copy that cannot be read counts as not silent: nothing shows that it is. Fails naming
    the feedback ids (never their text)."""
    from voyce_assets.voice.audio.normalize import SILENT_PEAK, peak

    loud: dict[str, str] = {}
    checked = spans_checked = 0
    for row in rows:
        spans = redaction.spans(row.get("pii_entities"))
        if not spans:
            continue
        fid = row["voice_feedback_id"]
        checked += 1
        spans_checked += len(spans)
        try:
            samples = _samples(copies.get(fid))
        except Exception as exc:
            loud[fid] = f"copy not readable: {error_text(exc)}"
            continue
        worst = max(peak(samples, a, b) for a, b in spans)
        if worst >= SILENT_PEAK:
            loud[fid] = f"peak {worst:.4f} inside a span (at most {SILENT_PEAK} is silent)"
    return AssetCheckResult(
        check_name="pii_audio_silent",
        passed=not loud,
        description=(
            f"{len(loud)} of {checked} copies with personal data not silent in their spans: "
            + ", ".join(sorted(loud))
            if loud
            else f"{spans_checked} spans in {checked} copies silent"
        ),
        metadata={
            "rows_with_entities": checked,
            "spans_checked": spans_checked,
            "not_silent": MetadataValue.json(loud),
        },
    )


def _samples(path: Path | None):
    import soundfile as sf

    if path is None:
        raise FileNotFoundError("no processed copy")
    samples, _ = sf.read(path, dtype="float32")
    return samples


def _copies(lakehouse: Lakehouse, feedback: list[Feedback]) -> dict[str, Path | None]:
    """Each feedback's processed copy path (None where its path is unsafe)."""
    out: dict[str, Path | None] = {}
    for item in feedback:
        try:
            out[item.id] = audio_paths(lakehouse, item).processed
        except Exception:
            out[item.id] = None
    return out


def _pii_counts(rows: list[dict]) -> dict[str, int]:
    """Spans of personal data found in ``rows``, by type."""
    counts = collections.Counter(
        e["type"] for r in rows for e in json.loads(r.get("pii_entities") or "[]")
    )
    return dict(sorted(counts.items()))


def _stored(row: dict) -> dict:
    """The row as the table holds it (bookkeeping keys dropped)."""
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _still_valid(
    row: dict, label: str, redacting: str, lakehouse: Lakehouse, item: Feedback
) -> bool:
    """A transcript to keep: same engine/model, redacted as the settings now say (the same
    redactor version, or both off; a row from before redaction has none), no error, made
    after the current audio copy (silencing the copy keeps its time: ``tasks._silence``)."""
    if row["transcription_engine"] != label or row["error_message"]:
        return False
    if row.get("redaction") != redacting:
        return False
    try:
        copy = audio_paths(lakehouse, item).processed
        copied = dt.datetime.fromtimestamp(copy.stat().st_mtime, dt.UTC)
    except Exception:  # unusable since (gone, unsafe, a link loop): transcribe again to say why
        return False
    return copied <= row["created_at"]
