"""``processed_data/audio_features``: acoustic features of each usable recording.

Measured on the processed copies (and the upload's own levels from their sidecars); speech
rate uses the transcript's word count.
"""

import datetime as dt
import time

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
)

from voyce_assets.automation import hourly_after_upstream
from voyce_assets.catalog import table
from voyce_assets.checks import failing_partitions, named
from voyce_assets.feedback import existing_rows, partition_feedback, row_id, write_partition
from voyce_assets.partitions import by_partition, partition_dates, record_partitions
from voyce_assets.resources import Lakehouse
from voyce_assets.tables import table_asset
from voyce_assets.voice.audio.features import extract, speech_rate
from voyce_assets.voice.audio.normalize import load_processed, read_processed
from voyce_assets.voice.paths import audio_paths, error_text
from voyce_assets.voice.transcriptions import TRANSCRIPTIONS

AUDIO_FEATURES = table("processed_data/audio_features")


@table_asset(
    AUDIO_FEATURES.path,
    deps=["processed_data/processed_audio", TRANSCRIPTIONS.path],
    kinds={"librosa"},
    automation_condition=hourly_after_upstream(),
    retry_policy=RetryPolicy(max_retries=2, delay=30),
    description="Duration, real bit rate, volume (dBFS), silence ratio, speech rate (words per "
    "voiced minute), pitch (pYIN), energy, 13 MFCC means, spectral centroid/rolloff/bandwidth.",
    checks={"feature_shapes": "13 MFCC and 6 spectral values on every row."},
)
def audio_features(context: AssetExecutionContext, lakehouse: Lakehouse) -> MaterializeResult:
    dates = partition_dates(context)
    feedback = partition_feedback(lakehouse, dates)
    words = {
        fid: row.get("word_count")
        for fid, row in existing_rows(lakehouse, TRANSCRIPTIONS, dates).items()
    }
    now = dt.datetime.now(dt.UTC)
    rows, skipped, started = [], {}, time.perf_counter()
    audio_seconds = 0.0
    for item in feedback:
        try:
            processed = load_processed(audio_paths(lakehouse, item).processed)
        except Exception as exc:  # an unsafe path, a name the filesystem refuses
            skipped[item.id] = error_text(exc)
            continue
        if processed is None or not processed.ok:
            skipped[item.id] = (
                processed.error if processed else "no processed copy (run processed_audio)"
            )
            continue
        try:
            samples = read_processed(processed)
            feat = extract(
                samples,
                processed.gain_db,
                processed.original_rms_dbfs,
                processed.original_peak_dbfs,
            )
        except Exception as exc:  # one unreadable copy never stops the partition
            skipped[item.id] = f"features failed: {type(exc).__name__}: {exc}"[:500]
            continue
        info = processed.info
        audio_seconds += info["duration_seconds"]
        rows.append(
            {
                "id": row_id(item.id, "audio_features"),
                "voice_feedback_id": item.id,
                "organization_id": item.organization_id,
                "duration_seconds": round(info["duration_seconds"], 3),
                "sample_rate": info["sample_rate"],
                "bit_rate": info["bit_rate"],
                "channels": info["channels"],
                "avg_volume": feat.avg_volume,
                "max_volume": feat.max_volume,
                "silence_ratio": feat.silence_ratio,
                "speech_rate": speech_rate(words.get(item.id), feat.voiced_seconds),
                "pitch_mean": feat.pitch_mean,
                "pitch_std": feat.pitch_std,
                "energy_mean": feat.energy_mean,
                "energy_std": feat.energy_std,
                "mfcc_features": feat.mfcc,
                "spectral_features": feat.spectral,
                "created_at": now,
                "event_date": item.event_date,
            }
        )
    write_partition(lakehouse, AUDIO_FEATURES, rows, dates)
    seconds = time.perf_counter() - started
    bad_shapes = [
        r for r in rows if len(r["mfcc_features"]) != 13 or len(r["spectral_features"]) != 6
    ]
    failing = failing_partitions(r["event_date"] for r in bad_shapes)
    day_of = {item.id: item.event_date.isoformat() for item in feedback}
    per_partition = {}
    for key, day_rows in by_partition(context, rows, lambda r: r["event_date"]).items():
        per_partition[key] = {
            "dagster/partition_row_count": len(day_rows),
            "skipped_unusable": MetadataValue.json(
                {f: e for f, e in skipped.items() if day_of[f] == key}
            ),
            "audio_seconds": round(sum(r["duration_seconds"] for r in day_rows), 3),
        }
    record_partitions(context, per_partition)
    return MaterializeResult(
        metadata={
            "run_seconds": round(seconds, 3),
            "run_seconds_per_audio_minute": round(seconds / (audio_seconds / 60), 3)
            if audio_seconds
            else 0.0,
        },
        check_results=[
            AssetCheckResult(
                check_name="feature_shapes",
                passed=not bad_shapes,
                description=named(failing),
                metadata={
                    "bad_rows": MetadataValue.json([r["voice_feedback_id"] for r in bad_shapes]),
                    "failing_partitions": failing,
                },
            )
        ],
    )
