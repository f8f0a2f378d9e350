"""The training stage's tables, lineage-only until the stage lands."""

from voyce_assets.tables import table_spec

training_specs = [
    table_spec(
        "processed_data/training_dataset",
        deps=["processed_data/enhanced_transcriptions", "processed_data/audio_features"],
    ),
    table_spec("ml_models/model_registry", deps=["processed_data/training_dataset"]),
]
