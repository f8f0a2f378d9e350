"""processed_data: the processed-audio volume, audio features, enriched transcripts, training set.

``processed_audio`` decodes every upload of a partition once into a loudness-normalized 16 kHz
mono copy (plus a sidecar with the upload's facts or why it could not be used); copies that
are current are kept, so re-runs only touch new or changed uploads. ``audio_features`` measures
those copies. Later tables stay lineage-only specs until their stages land.
"""

import datetime as dt
import time

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    asset,
)

from voyce_assets.audio.features import extract, speech_rate
from voyce_assets.audio.normalize import is_current, load_processed, process_file, read_processed
from voyce_assets.catalog import table
from voyce_assets.partitions import daily_backfill_policy, daily_partitions
from voyce_assets.resources import Lakehouse
from voyce_assets.resources.transcriber import Transcriber
from voyce_assets.tables import table_key, table_kinds, table_metadata, table_spec
from voyce_assets.voice import (
    existing_rows,
    partition_feedback,
    processed_path,
    row_id,
    upload_path,
    write_partition,
)

PROCESSED_AUDIO = AssetKey(["processed_data", "processed_audio"])
AUDIO_FEATURES = table("processed_data/audio_features")
TRANSCRIPTIONS = table("raw_data/transcriptions")


def _dates(context) -> list[dt.date]:
    return [dt.date.fromisoformat(k) for k in context.partition_keys]


@asset(
    key=PROCESSED_AUDIO,
    deps=[table_key("raw_data/voice_feedback")],
    group_name="processed_data",
    partitions_def=daily_partitions,
    backfill_policy=daily_backfill_policy,
    kinds={"volume"},
    description="Loudness-normalized 16 kHz mono WAV copies of the uploads (volume "
    "processed_data.processed_audio), each with a JSON sidecar: the upload's format, rate, "
    "channels, bit rate and duration, the gain applied, or why it could not be used.",
)
def processed_audio(
    context: AssetExecutionContext, lakehouse: Lakehouse, transcriber: Transcriber
) -> MaterializeResult:
    feedback = partition_feedback(lakehouse, _dates(context))
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


@asset(
    key=table_key(AUDIO_FEATURES.path),
    deps=[PROCESSED_AUDIO, table_key(TRANSCRIPTIONS.path)],
    group_name="processed_data",
    partitions_def=daily_partitions,
    backfill_policy=daily_backfill_policy,
    metadata=table_metadata(AUDIO_FEATURES),
    kinds=table_kinds(AUDIO_FEATURES) | {"librosa"},
    description=f"{AUDIO_FEATURES.description} Duration, real bit rate, volume (dBFS), silence "
    "ratio, speech rate (words per voiced minute), pitch (pYIN), energy, 13 MFCC means, "
    "spectral centroid/rolloff/bandwidth.",
    check_specs=[
        AssetCheckSpec(
            "feature_shapes",
            asset=table_key(AUDIO_FEATURES.path),
            description="13 MFCC and 6 spectral values on every row.",
        )
    ],
)
def audio_features(context: AssetExecutionContext, lakehouse: Lakehouse) -> MaterializeResult:
    dates = _dates(context)
    feedback = partition_feedback(lakehouse, dates)
    words = {
        fid: row.get("word_count")
        for fid, row in existing_rows(lakehouse, TRANSCRIPTIONS, dates).items()
    }
    now = dt.datetime.now(dt.UTC)
    rows, skipped, started = [], {}, time.perf_counter()
    audio_seconds = 0.0
    for item in feedback:
        processed = load_processed(processed_path(lakehouse, item))
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
        r["voice_feedback_id"]
        for r in rows
        if len(r["mfcc_features"]) != 13 or len(r["spectral_features"]) != 6
    ]
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "skipped_unusable": MetadataValue.json(skipped),
            "seconds": round(seconds, 3),
            "audio_seconds": round(audio_seconds, 3),
            "seconds_per_audio_minute": round(seconds / (audio_seconds / 60), 3)
            if audio_seconds
            else 0.0,
        },
        check_results=[
            AssetCheckResult(
                check_name="feature_shapes",
                passed=not bad_shapes,
                metadata={"bad_rows": MetadataValue.json(bad_shapes)},
            )
        ],
    )


processed_data_specs = [
    table_spec(
        "processed_data/enhanced_transcriptions",
        deps=["raw_data/transcriptions", "raw_data/sentiment_analysis", "raw_data/voice_feedback"],
        pending_issue="text intelligence",
    ),
    table_spec(
        "processed_data/training_dataset",
        deps=["processed_data/enhanced_transcriptions", "processed_data/audio_features"],
        pending_issue="ML training",
    ),
]
voice_assets_processed = [processed_audio, audio_features]
