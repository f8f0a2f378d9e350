"""The text stage's tables, lineage-only until the stage lands."""

from voyce_assets.tables import table_spec

text_specs = [
    table_spec("raw_data/sentiment_analysis", deps=["raw_data/transcriptions"]),
    table_spec(
        "processed_data/enhanced_transcriptions",
        deps=["raw_data/transcriptions", "raw_data/sentiment_analysis", "raw_data/voice_feedback"],
    ),
]
