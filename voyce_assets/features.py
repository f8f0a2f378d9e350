"""The model features of a feedback: the notebook's 36 values and the 384-d text embedding.

Shared by the training stage (which labels them) and the inference stage (which scores
them), so both build the same vector, in ``FEATURE_NAMES`` order, from the same two tables:
``processed_data.enhanced_transcriptions`` (text statistics, topics, key phrases, embedding)
and ``processed_data.audio_features``; and the split a feedback's id puts it in, which
inference uses to judge a model only on feedback it did not learn from.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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


def in_test_split(feedback_ids: list[str]) -> np.ndarray:
    """``split_of(id) == "test"`` for many ids at once (the same hash, columnar)."""
    sha256 = hashlib.sha256
    digests = b"".join([sha256(f.encode()).digest()[:8] for f in feedback_ids])
    buckets = np.frombuffer(digests, ">u8") % 100
    return buckets >= 100 - SPLITS[-1][1]


def analysed(sentiment: pa.Table) -> pa.Table:
    """The sentiment analyses that succeeded: no error, a label (the training label)."""
    return sentiment.filter(
        pc.and_(
            pc.is_null(sentiment.column("error_message")),
            pc.is_valid(sentiment.column("sentiment_label")),
        )
    )


def ids_of(table: pa.Table) -> set[str]:
    return set(table.column("voice_feedback_id").to_pylist())


def with_text(enhanced: pa.Table) -> pa.Table:
    """The enhanced transcriptions that have an embedding, narrowed to what the vector uses."""
    return enhanced.filter(pc.is_valid(enhanced.column("text_embedding"))).select(
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


def with_audio(audio: pa.Table) -> pa.Table:
    """The audio features rows whose MFCC and spectral vectors were measured."""
    return audio.filter(
        pc.and_(
            pc.is_valid(audio.column("mfcc_features")),
            pc.is_valid(audio.column("spectral_features")),
        )
    ).select(["voice_feedback_id", *AUDIO_FEATURES, "mfcc_features", "spectral_features"])


def align(ids: list[str], *sides: pa.Table) -> pa.Table:
    """The columns of ``sides`` for ``ids``, in that order (every id is on every side).

    Arrow's join takes no list columns, so each side is aligned on the ids instead.
    """
    wanted = pa.array(ids, pa.string())
    columns: dict[str, pa.ChunkedArray] = {}
    for side in sides:
        aligned = side.take(pc.index_in(wanted, side.column("voice_feedback_id")))
        columns.update({name: aligned.column(name) for name in aligned.column_names})
    return pa.table(columns) if columns else pa.table({"voice_feedback_id": wanted})


def matrix(joined: pa.Table) -> np.ndarray:
    """The feature vectors of rows holding both sides' columns, in FEATURE_NAMES order."""
    n = joined.num_rows
    if n == 0:
        return np.zeros((0, len(FEATURE_NAMES)))

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
    # themselves are checked for non-finite values by the dataset's check.
    head = np.nan_to_num(np.hstack(parts).astype(np.float64), nan=0.0)
    return np.hstack([head, stacked("text_embedding", EMBEDDING_DIM)])


def scorable(enhanced: pa.Table, audio: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """Feedback with both a text embedding and audio features: their ids, organization and
    day (sorted by id), and their feature matrix."""
    text, sound = with_text(enhanced), with_audio(audio)
    ids = sorted(ids_of(text) & ids_of(sound))
    joined = align(ids, text, sound)
    return joined.select(["voice_feedback_id", "organization_id", "event_date"]), matrix(joined)
