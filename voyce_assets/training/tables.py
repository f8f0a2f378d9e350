"""The training stage's tables not built yet: lineage-only specs."""

from voyce_assets.tables import table_spec

training_specs = [
    table_spec("ml_models/model_registry", deps=["processed_data/training_dataset"]),
]
