"""``processed_data/processed_audio``: the volume of normalized copies of every upload.

Every upload of a partition is decoded once into a loudness-normalized 16 kHz mono copy (plus
a sidecar with the upload's facts or why it could not be used); copies that are current are
kept, so re-runs only touch new or changed uploads.
"""

import time

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, RetryPolicy

from voyce_assets.automation import hourly_after_upstream
from voyce_assets.feedback import partition_feedback
from voyce_assets.partitions import by_partition, partition_dates, record_partitions
from voyce_assets.resources import Lakehouse
from voyce_assets.tables import volume_asset
from voyce_assets.voice.audio.normalize import is_current, load_processed, process_file
from voyce_assets.voice.paths import audio_paths, error_text
from voyce_assets.voice.transcriber import Transcriber


@volume_asset(
    "processed_data/processed_audio",
    deps=["raw_data/voice_feedback"],
    automation_condition=hourly_after_upstream(),
    retry_policy=RetryPolicy(max_retries=2, delay=30),
    description="Loudness-normalized 16 kHz mono WAV copies of the uploads (volume "
    "processed_data.processed_audio), each with a JSON sidecar: the upload's format, rate, "
    "channels, bit rate and duration, the gain applied, or why it could not be used.",
)
def processed_audio(
    context: AssetExecutionContext, lakehouse: Lakehouse, transcriber: Transcriber
) -> MaterializeResult:
    feedback = partition_feedback(lakehouse, partition_dates(context))
    started = time.perf_counter()
    per_partition = {}
    for key, items in by_partition(context, feedback, lambda f: f.event_date).items():
        made = kept = 0
        errors: dict[str, str] = {}
        for item in items:
            try:
                paths = audio_paths(lakehouse, item)
                current = load_processed(paths.processed)
                if is_current(current, paths.upload):
                    kept += 1
                else:
                    current = process_file(
                        paths.upload, paths.processed, transcriber.max_duration_seconds
                    )
                    made += 1
                if not current.ok:
                    errors[item.id] = current.error
            except Exception as exc:  # one recording's trouble never stops the partition
                errors[item.id] = error_text(exc)
        for fid, error in errors.items():
            context.log.warning(f"voice_feedback {fid}: {error}")
        per_partition[key] = {
            "recordings": len(items),
            "processed": made,
            "reused": kept,
            "unusable": len(errors),
            "unusable_by_feedback": MetadataValue.json(errors),
        }
    record_partitions(context, per_partition)
    return MaterializeResult(metadata={"run_seconds": round(time.perf_counter() - started, 3)})
