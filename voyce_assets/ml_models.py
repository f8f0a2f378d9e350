"""ml_models: the model registry (MLflow) and batch predictions."""

from voyce_assets.tables import table_spec

ml_models_specs = [
    table_spec(
        "ml_models/model_registry",
        deps=["processed_data/training_dataset"],
        pending_issue="ML training",
    ),
    table_spec(
        "ml_models/predictions",
        deps=[
            "ml_models/model_registry",
            "processed_data/enhanced_transcriptions",
            "processed_data/audio_features",
        ],
        pending_issue="ML inference",
    ),
]
