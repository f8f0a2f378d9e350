"""Schema ``processed_data``: what is derived from raw_data per feedback (audio features,
enhanced transcriptions, the training dataset) and the ``processed_audio`` volume.
"""

from __future__ import annotations

from voyce_assets.catalog.specs import (
    _FEEDBACK_EVENT,
    ARRAY_DOUBLE,
    ARRAY_STRING,
    BIGINT,
    BOOLEAN,
    DOUBLE,
    INT,
    SENTIMENT_LABELS,
    TIMESTAMP,
    Column,
    Owner,
    Table,
    Volume,
    _created_at,
    _feedback_ref,
    _id,
    _org_ref,
    _table,
)

SCHEMA = "processed_data"
DESCRIPTION = "Features and enriched text derived from raw_data."

TABLES: tuple[Table, ...] = (
    _table(
        "processed_data",
        "audio_features",
        Owner.PIPELINE,
        "voice",
        "Acoustic features of each recording.",
        [
            _id(),
            _feedback_ref(),
            _org_ref(references=None),
            Column("duration_seconds", DOUBLE),
            Column("sample_rate", INT),
            Column("bit_rate", BIGINT, description="Bits per second of the stored file."),
            Column("channels", INT),
            Column("avg_volume", DOUBLE, description="Mean RMS level, dBFS."),
            Column("max_volume", DOUBLE, description="Peak level, dBFS."),
            Column("silence_ratio", DOUBLE, description="Share of frames below the threshold."),
            Column("speech_rate", DOUBLE, description="Words per minute of voiced audio."),
            Column("pitch_mean", DOUBLE, description="Hz."),
            Column("pitch_std", DOUBLE, description="Hz."),
            Column("energy_mean", DOUBLE),
            Column("energy_std", DOUBLE),
            Column("mfcc_features", ARRAY_DOUBLE, description="13 MFCC means.", length=13),
            Column(
                "spectral_features",
                ARRAY_DOUBLE,
                description="Centroid, rolloff, bandwidth: mean and std each.",
                length=6,
            ),
            _created_at(),
        ],
        partition_source=_FEEDBACK_EVENT,
    ),
    _table(
        "processed_data",
        "enhanced_transcriptions",
        Owner.PIPELINE,
        "text",
        "Cleaned transcripts with text statistics, sentiment, entities and embeddings.",
        [
            _id(),
            _feedback_ref(),
            _org_ref(references=None),
            Column(
                "transcription_text",
                free_text=True,
                description="The transcript as redacted (raw_data.transcriptions.redacted_text).",
            ),
            Column("cleaned_text", free_text=True, description="The redacted transcript cleaned."),
            Column("language"),
            Column("word_count", INT),
            Column("sentence_count", INT),
            Column("avg_word_length", DOUBLE),
            Column("unique_word_count", INT),
            Column("sentiment_label", allowed=SENTIMENT_LABELS),
            Column("sentiment_score", DOUBLE),
            Column("key_phrases", ARRAY_STRING, free_text=True),
            Column("topics", ARRAY_STRING, free_text=True),
            Column("named_entities", ARRAY_STRING, free_text=True),
            Column(
                "text_embedding", ARRAY_DOUBLE, description="all-MiniLM-L6-v2 vector.", length=384
            ),
            Column("embedding_model", description="Model that made text_embedding."),
            Column(
                "embedding_cached",
                BOOLEAN,
                description="text_embedding came from the content-hash cache (not computed).",
            ),
            Column("processing_timestamp", TIMESTAMP),
            _created_at(),
        ],
        partition_source=_FEEDBACK_EVENT,
    ),
    _table(
        "processed_data",
        "training_dataset",
        Owner.PIPELINE,
        "training",
        "Labelled feature vectors for the sentiment classifiers.",
        [
            _id(),
            _feedback_ref(),
            _org_ref(references=None),
            Column("features", ARRAY_DOUBLE, nullable=False, description="Feature vector."),
            Column("label", nullable=False, allowed=SENTIMENT_LABELS),
            Column("label_confidence", DOUBLE),
            Column("label_source", description="provider/model of the text stage's label."),
            Column("split", nullable=False, allowed=("train", "validation", "test")),
            _created_at(),
        ],
        partition_source=_FEEDBACK_EVENT,
    ),
)

VOLUMES: tuple[Volume, ...] = (
    Volume(
        "processed_data",
        "processed_audio",
        "Normalized 16 kHz mono copies of the recordings used for transcription.",
        stage="voice",
    ),
)
