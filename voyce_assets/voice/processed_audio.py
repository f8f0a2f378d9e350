"""``processed_data/processed_audio``: the volume of normalized copies of every upload.

Every upload of a partition is decoded once into a loudness-normalized 16 kHz mono copy (plus
a sidecar with the upload's facts or why it could not be used); copies that are current are
kept, so re-runs only touch new or changed uploads. The decoding runs on ``voice_compute``:
in this process, or as Spark tasks that write the copies to the volume themselves.
"""

import time

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, RetryPolicy

from voyce_assets.automation import hourly_after_upstream
from voyce_assets.feedback import partition_feedback
from voyce_assets.partitions import by_partition, partition_dates, record_partitions
from voyce_assets.resources import Lakehouse
from voyce_assets.tables import volume_asset
from voyce_assets.voice.compute import VoiceCompute
from voyce_assets.voice.paths import stage_root, work_item
from voyce_assets.voice.tasks import VoiceJob
from voyce_assets.voice.transcriber import Transcriber

# The copies' format (normalize.py): a change to it is a new version of every staged chunk.
PROCESSED_VERSION = "normalize/1"


@volume_asset(
    "processed_data/processed_audio",
    deps=["raw_data/voice_feedback"],
    automation_condition=hourly_after_upstream(),
    retry_policy=RetryPolicy(max_retries=2, delay=30),
    # On the cluster in prod (the same launcher as Whisper): the tasks write the copies.
    required_resource_keys={"gpu_step_launcher", "lakehouse", "transcriber", "voice_compute"},
    description="Loudness-normalized 16 kHz mono WAV copies of the uploads (volume "
    "processed_data.processed_audio), each with a JSON sidecar: the upload's format, rate, "
    "channels, bit rate and duration, the gain applied, or why it could not be used.",
)
def processed_audio(context: AssetExecutionContext) -> MaterializeResult:
    lakehouse: Lakehouse = context.resources.lakehouse
    transcriber: Transcriber = context.resources.transcriber
    compute: VoiceCompute = context.resources.voice_compute
    feedback = partition_feedback(lakehouse, partition_dates(context))
    started = time.perf_counter()
    job = VoiceJob(
        "processed",
        PROCESSED_VERSION,
        stage_root(lakehouse),
        {"max_duration_seconds": transcriber.max_duration_seconds},
    )
    run = compute.run(job, [work_item(lakehouse, f, "upload") for f in feedback])
    per_partition = {}
    for key, rows in by_partition(context, run.rows, lambda r: r["event_date"]).items():
        errors = {r["voice_feedback_id"]: r["error"] for r in rows if r["error"]}
        for fid, error in errors.items():
            context.log.warning(f"voice_feedback {fid}: {error}")
        per_partition[key] = {
            "recordings": len(rows),
            "processed": sum(1 for r in rows if r["outcome"] == "processed"),
            "reused": sum(1 for r in rows if r["outcome"] == "reused"),
            "unusable": len(errors),
            "unusable_by_feedback": MetadataValue.json(errors),
        }
    record_partitions(context, per_partition)
    run.commit(job)
    return MaterializeResult(
        metadata={"run_seconds": round(time.perf_counter() - started, 3), **run.metadata}
    )
