"""``processed_data/training_dataset``: one labelled feature vector per analysed feedback.

The notebook's 36 features (text statistics, topic and key-phrase counts, audio features,
13 MFCC means, 6 spectral values) followed by the 384-d text embedding, the text stage's
label with its confidence and source, and a split fixed by the feedback's id (a hash, not
row order: a feedback stays in its split across re-runs and backfills). Feedback whose
transcript, audio features or analysis is missing or failed is left out and counted.
"""

import datetime as dt
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetCheckResult, AssetExecutionContext, MaterializeResult, RetryPolicy

from voyce_assets.automation import hourly_after_upstream
from voyce_assets.catalog import table
from voyce_assets.checks import failing_partitions, named
from voyce_assets.features import (
    BASE_FEATURES,
    EMBEDDING_DIM,
    FEATURE_NAMES,
    SPLITS,
    align,
    analysed,
    ids_of,
    matrix,
    split_of,
    with_audio,
    with_text,
)
from voyce_assets.partitions import by_partition, partition_dates, record_partitions
from voyce_assets.resources import Lakehouse
from voyce_assets.tables import table_asset

DATASET = table("processed_data/training_dataset")
ENHANCED = table("processed_data/enhanced_transcriptions")
AUDIO = table("processed_data/audio_features")
SENTIMENT = table("raw_data/sentiment_analysis")


def build(enhanced: pa.Table, audio: pa.Table, sentiment: pa.Table) -> tuple[pa.Table, dict]:
    """The dataset rows of these inputs, and how many feedback were left out and why."""
    labelled = analysed(sentiment).select(
        ["voice_feedback_id", "sentiment_label", "sentiment_confidence", "provider", "model_used"]
    )
    text, sound = with_text(enhanced), with_audio(audio)
    has_text, has_audio, has_label = ids_of(text), ids_of(sound), ids_of(labelled)
    ids = sorted(has_text & has_audio & has_label)
    joined = align(ids, text, sound, labelled)
    every = ids_of(enhanced) | ids_of(sentiment) | ids_of(audio)
    left_out = {
        "no_text": len(every - has_text),
        "no_audio": len((every & has_text) - has_audio),
        "no_label": len((every & has_text & has_audio) - has_label),
    }
    vectors = matrix(joined)
    schema = pa.schema([f.with_nullable(True) for f in DATASET.arrow_schema()])
    rows = pa.table(
        {
            "id": [str(uuid.uuid5(uuid.NAMESPACE_URL, f"voyce-train:{i}")) for i in ids],
            "voice_feedback_id": ids,
            "organization_id": joined.column("organization_id"),
            "features": pa.array(list(vectors), pa.list_(pa.float64())),
            "label": joined.column("sentiment_label"),
            "label_confidence": pc.cast(joined.column("sentiment_confidence"), pa.float64()),
            "label_source": pc.binary_join_element_wise(
                joined.column("provider"), joined.column("model_used"), "/"
            ),
            "split": [split_of(i) for i in ids],
            "created_at": pa.array([dt.datetime.now(dt.UTC)] * len(ids), pa.timestamp("us", "UTC")),
            "event_date": joined.column("event_date"),
        }
    )
    return rows.select(schema.names).cast(schema), left_out


def features_check(rows: list[dict]) -> AssetCheckResult:
    """Every vector has the full width and only finite values."""
    bad = [
        r
        for r in rows
        if len(r["features"]) != len(FEATURE_NAMES)
        or not np.isfinite(np.asarray(r["features"], np.float64)).all()
    ]
    failing = failing_partitions(r.get("event_date") for r in bad)
    return AssetCheckResult(
        check_name="features_valid",
        passed=not bad,
        description=named(failing),
        metadata={
            "rows": len(rows),
            "width": len(FEATURE_NAMES),
            "invalid": [r["voice_feedback_id"] for r in bad[:20]],
            "failing_partitions": failing,
        },
    )


@table_asset(
    DATASET.path,
    deps=[ENHANCED.path, AUDIO.path, SENTIMENT.path],
    kinds={"numpy"},
    automation_condition=hourly_after_upstream(),
    retry_policy=RetryPolicy(max_retries=1, delay=60),
    checks={"features_valid": f"Every vector has {len(FEATURE_NAMES)} finite values."},
    description=f"{len(BASE_FEATURES)} features + the {EMBEDDING_DIM}-d embedding; split "
    "train/validation/test 70/15/15 by a hash of the feedback id.",
)
def training_dataset(context: AssetExecutionContext, lakehouse: Lakehouse) -> MaterializeResult:
    dates = partition_dates(context)
    # Day by day: every input is partitioned by the feedback's day, so each day's rows and
    # left-out counts are its own.
    parts, left_out = [], {}
    for day in dates:
        rows, left_out[day.isoformat()] = build(
            *(lakehouse.read(spec, [day]) for spec in (ENHANCED, AUDIO, SENTIMENT))
        )
        parts.append(rows)
    lakehouse.write_partitions(DATASET, pa.concat_tables(parts), dates)
    stored = lakehouse.read(DATASET, dates).to_pylist()
    per_day = by_partition(context, stored, lambda r: r["event_date"])
    record_partitions(
        context,
        {
            key: {
                "dagster/partition_row_count": len(day),
                **{f"split_{name}": sum(r["split"] == name for r in day) for name, _ in SPLITS},
                **{f"left_out_{why}": n for why, n in left_out[key].items()},
            }
            for key, day in per_day.items()
        },
    )
    return MaterializeResult(
        metadata={"feature_names": list(BASE_FEATURES), "run_feature_width": len(FEATURE_NAMES)},
        check_results=[features_check(stored)],
    )
