"""``processed_data/processed_audio``: the volume of normalized copies of every upload.

Every upload of a partition is decoded once into a loudness-normalized 16 kHz mono copy (plus
a sidecar with the upload's facts or why it could not be used); copies that are current are
kept, so re-runs only touch new or changed uploads.
"""

import time

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue

from voyce_assets.feedback import partition_feedback
from voyce_assets.partitions import partition_dates
from voyce_assets.resources import Lakehouse
from voyce_assets.tables import volume_asset
from voyce_assets.voice.audio.normalize import is_current, load_processed, process_file
from voyce_assets.voice.paths import processed_path, upload_path
from voyce_assets.voice.transcriber import Transcriber


@volume_asset(
    "processed_data/processed_audio",
    deps=["raw_data/voice_feedback"],
    description="Loudness-normalized 16 kHz mono WAV copies of the uploads (volume "
    "processed_data.processed_audio), each with a JSON sidecar: the upload's format, rate, "
    "channels, bit rate and duration, the gain applied, or why it could not be used.",
)
def processed_audio(
    context: AssetExecutionContext, lakehouse: Lakehouse, transcriber: Transcriber
) -> MaterializeResult:
    feedback = partition_feedback(lakehouse, partition_dates(context))
    made = kept = 0
    errors: dict[str, str] = {}
    started = time.perf_counter()
    for item in feedback:
        source, target = upload_path(lakehouse, item), processed_path(lakehouse, item)
        current = load_processed(target)
        if is_current(current, source):
            kept += 1
        else:
            current = process_file(source, target, transcriber.max_duration_seconds)
            made += 1
        if not current.ok:
            errors[item.id] = current.error
    for fid, error in errors.items():
        context.log.warning(f"voice_feedback {fid}: {error}")
    return MaterializeResult(
        metadata={
            "recordings": len(feedback),
            "processed": made,
            "reused": kept,
            "unusable": len(errors),
            "unusable_by_feedback": MetadataValue.json(errors),
            "seconds": round(time.perf_counter() - started, 3),
        }
    )
