"""``processed_data/audio_features``: acoustic features of each usable recording.

Measured on the processed copies (and the upload's own levels from their sidecars) by
``voice_compute``'s tasks (in process, or CPU work of one Spark job); speech rate uses the
transcript's word count.
"""

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
from voyce_assets.feedback import existing_rows, partition_feedback, write_partition
from voyce_assets.partitions import by_partition, partition_dates, record_partitions
from voyce_assets.resources import Lakehouse
from voyce_assets.tables import table_asset
from voyce_assets.voice.compute import VoiceCompute
from voyce_assets.voice.paths import stage_root, work_item
from voyce_assets.voice.tasks import VoiceJob
from voyce_assets.voice.transcriptions import TRANSCRIPTIONS

AUDIO_FEATURES = table("processed_data/audio_features")
# The measurements' code (audio/features.py): a change to it is a new version of staged chunks.
FEATURES_VERSION = "librosa/1"


@table_asset(
    AUDIO_FEATURES.path,
    deps=["processed_data/processed_audio", TRANSCRIPTIONS.path],
    kinds={"librosa"},
    # On the cluster in prod (the same launcher as Whisper), as CPU work of Spark tasks.
    required_resource_keys={"gpu_step_launcher", "lakehouse", "voice_compute"},
    automation_condition=hourly_after_upstream(),
    retry_policy=RetryPolicy(max_retries=2, delay=30),
    description="Duration, real bit rate, volume (dBFS), silence ratio, speech rate (words per "
    "voiced minute), pitch (pYIN), energy, 13 MFCC means, spectral centroid/rolloff/bandwidth.",
    checks={"feature_shapes": "13 MFCC and 6 spectral values on every row."},
)
def audio_features(context: AssetExecutionContext) -> MaterializeResult:
    lakehouse: Lakehouse = context.resources.lakehouse
    compute: VoiceCompute = context.resources.voice_compute
    dates = partition_dates(context)
    feedback = partition_feedback(lakehouse, dates)
    words = {
        fid: row.get("word_count")
        for fid, row in existing_rows(lakehouse, TRANSCRIPTIONS, dates).items()
    }
    started = time.perf_counter()
    job = VoiceJob("features", FEATURES_VERSION, stage_root(lakehouse))
    items = [work_item(lakehouse, f, "processed", words.get(f.id)) for f in feedback]
    run = compute.run(job, items)
    rows = [r for r in run.rows if "_skipped" not in r]
    skipped = {r["voice_feedback_id"]: r["_skipped"] for r in run.rows if "_skipped" in r}
    # A recording whose Spark task was given up on keeps the row it had: the copy is fine.
    lost = [f for f, why in skipped.items() if why.startswith("task failed")]
    if lost:
        previous = existing_rows(lakehouse, AUDIO_FEATURES, dates)
        rows += [previous[f] for f in lost if f in previous]
    audio_seconds = sum(r["duration_seconds"] for r in rows)
    write_partition(lakehouse, AUDIO_FEATURES, rows, dates)
    run.commit(job)
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
            **run.metadata,
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
