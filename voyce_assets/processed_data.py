"""processed_data: audio features, enriched transcripts and the training dataset."""

from voyce_assets.tables import table_spec

processed_data_specs = [
    table_spec(
        "processed_data/audio_features",
        deps=["raw_data/voice_feedback"],
        pending_issue="voice processing",
    ),
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
