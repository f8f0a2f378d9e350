"""The inference stage's tables, lineage-only until the stage lands."""

from voyce_assets.tables import table_spec

inference_specs = [
    table_spec(
        "ml_models/predictions",
        deps=[
            "ml_models/model_registry",
            "processed_data/enhanced_transcriptions",
            "processed_data/audio_features",
        ],
    ),
]
