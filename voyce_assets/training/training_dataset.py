"""``processed_data/training_dataset``: one labelled feature vector per analysed feedback.

The notebook's 36 features (text statistics, topic and key-phrase counts, audio features,
13 MFCC means, 6 spectral values) followed by the 384-d text embedding, the text stage's
label with its confidence and source, and a split fixed by the feedback's id (a hash, not
row order: a feedback stays in its split across re-runs and backfills). Feedback whose
transcript, audio features or analysis is missing or failed is left out and counted.
"""

import datetime as dt
import hashlib
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetCheckResult, AssetExecutionContext, MaterializeResult

from voyce_assets.catalog import table
from voyce_assets.lake import replace_partitions
from voyce_assets.partitions import by_partition, partition_dates, record_partitions
from voyce_assets.resources import Lakehouse
from voyce_assets.tables import table_asset

DATASET = table("processed_data/training_dataset")
ENHANCED = table("processed_data/enhanced_transcriptions")
AUDIO = table("processed_data/audio_features")
SENTIMENT = table("raw_data/sentiment_analysis")

TEXT_FEATURES = ("word_count", "sentence_count", "avg_word_length", "unique_word_count")
COUNT_FEATURES = ("topic_count", "key_phrase_count")
AUDIO_FEATURES = (
    "duration_seconds",
    "sample_rate",
    "channels",
    "avg_volume",
    "max_volume",
    "silence_ratio",
    "speech_rate",
    "pitch_mean",
    "pitch_std",
    "energy_mean",
    "energy_std",
)
MFCC = tuple(f"mfcc_{i}" for i in range(13))
SPECTRAL = tuple(
    f"spectral_{name}_{stat}"
    for name in ("centroid", "rolloff", "bandwidth")
    for stat in ("mean", "std")
)
BASE_FEATURES = TEXT_FEATURES + COUNT_FEATURES + AUDIO_FEATURES + MFCC + SPECTRAL
EMBEDDING_DIM = 384
FEATURE_NAMES = BASE_FEATURES + tuple(f"embedding_{i}" for i in range(EMBEDDING_DIM))
# Share of feedback per split, by hash bucket out of 100.
SPLITS = (("train", 70), ("validation", 15), ("test", 15))


def split_of(feedback_id: str) -> str:
    """The feedback's split: a hash of its id, so the same feedback is always in the same one."""
    bucket = int.from_bytes(hashlib.sha256(feedback_id.encode()).digest()[:8], "big") % 100
    for name, share in SPLITS:
        if bucket < share:
            return name
        bucket -= share
    raise AssertionError("the split shares add up to 100")


def _matrix(joined: pa.Table) -> np.ndarray:
    """The feature vectors of the joined rows, in FEATURE_NAMES order."""
    n = joined.num_rows

    def scalar(name: str) -> np.ndarray:
        return pc.cast(joined.column(name), pa.float64()).to_numpy(zero_copy_only=False)

    def count(name: str) -> np.ndarray:
        return pc.fill_null(pc.list_value_length(joined.column(name)), 0).to_numpy(
            zero_copy_only=False
        )

    def stacked(name: str, width: int) -> np.ndarray:
        flat = joined.column(name).combine_chunks().flatten()
        return np.asarray(flat.to_numpy(zero_copy_only=False), np.float64).reshape(n, width)

    parts = [scalar(c).reshape(n, 1) for c in TEXT_FEATURES]
    parts += [count("topics").reshape(n, 1), count("key_phrases").reshape(n, 1)]
    parts += [scalar(c).reshape(n, 1) for c in AUDIO_FEATURES]
    parts += [stacked("mfcc_features", 13), stacked("spectral_features", 6)]
    # A scalar nobody could measure (no pitch in a whisper) is 0 for the models; the vectors
    # themselves are checked for non-finite values by the asset's check.
    head = np.nan_to_num(np.hstack(parts).astype(np.float64), nan=0.0)
    return np.hstack([head, stacked("text_embedding", EMBEDDING_DIM)])


def build(enhanced: pa.Table, audio: pa.Table, sentiment: pa.Table) -> tuple[pa.Table, dict]:
    """The dataset rows of these inputs, and how many feedback were left out and why."""
    analysed = sentiment.filter(
        pc.and_(
            pc.is_null(sentiment.column("error_message")),
            pc.is_valid(sentiment.column("sentiment_label")),
        )
    ).select(
        ["voice_feedback_id", "sentiment_label", "sentiment_confidence", "provider", "model_used"]
    )
    text = enhanced.filter(pc.is_valid(enhanced.column("text_embedding"))).select(
        [
            "voice_feedback_id",
            "organization_id",
            "event_date",
            "topics",
            "key_phrases",
            "text_embedding",
            *TEXT_FEATURES,
        ]
    )
    sound = audio.filter(
        pc.and_(
            pc.is_valid(audio.column("mfcc_features")),
            pc.is_valid(audio.column("spectral_features")),
        )
    ).select(["voice_feedback_id", *AUDIO_FEATURES, "mfcc_features", "spectral_features"])
    ids_of = lambda t: set(t.column("voice_feedback_id").to_pylist())  # noqa: E731
    # Arrow's join takes no list columns: each side is aligned on the common ids instead.
    common = pa.array(sorted(ids_of(text) & ids_of(sound) & ids_of(analysed)), pa.string())
    columns = {}
    for side in (text, sound, analysed):
        aligned = side.take(pc.index_in(common, side.column("voice_feedback_id")))
        columns.update({name: aligned.column(name) for name in aligned.column_names})
    joined = pa.table(columns)
    every = ids_of(enhanced) | ids_of(sentiment) | ids_of(audio)
    with_text, with_audio, with_label = ids_of(text), ids_of(sound), ids_of(analysed)
    left_out = {
        "no_text": len(every - with_text),
        "no_audio": len((every & with_text) - with_audio),
        "no_label": len((every & with_text & with_audio) - with_label),
    }
    ids = joined.column("voice_feedback_id").to_pylist()
    matrix = _matrix(joined) if ids else np.zeros((0, len(FEATURE_NAMES)))
    schema = pa.schema([f.with_nullable(True) for f in DATASET.arrow_schema()])
    rows = pa.table(
        {
            "id": [str(uuid.uuid5(uuid.NAMESPACE_URL, f"voyce-train:{i}")) for i in ids],
            "voice_feedback_id": ids,
            "organization_id": joined.column("organization_id"),
            "features": pa.array(list(matrix), pa.list_(pa.float64())),
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
        r["voice_feedback_id"]
        for r in rows
        if len(r["features"]) != len(FEATURE_NAMES)
        or not np.isfinite(np.asarray(r["features"], np.float64)).all()
    ]
    return AssetCheckResult(
        check_name="features_valid",
        passed=not bad,
        metadata={"rows": len(rows), "width": len(FEATURE_NAMES), "invalid": bad[:20]},
    )


@table_asset(
    DATASET.path,
    deps=[ENHANCED.path, AUDIO.path, SENTIMENT.path],
    kinds={"numpy"},
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
    uri = lakehouse.ensure_table(DATASET)
    replace_partitions(
        uri, DATASET, pa.concat_tables(parts).to_batches(), dates, lakehouse.storage_options
    )
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
        metadata={"feature_names": list(BASE_FEATURES), "width": len(FEATURE_NAMES)},
        check_results=[features_check(stored)],
    )
