"""Schema ``ml_models``: the model registry, the predictions, and the ``artifacts`` volume."""

from __future__ import annotations

from voyce_assets.catalog.specs import (
    _FEEDBACK_EVENT,
    DOUBLE,
    JSON,
    SENTIMENT_LABELS,
    TIMESTAMP,
    UUID,
    Column,
    Owner,
    Table,
    Volume,
    _created_at,
    _feedback_ref,
    _table,
    _updated_at,
)

SCHEMA = "ml_models"
DESCRIPTION = "Model registry and predictions of the sentiment classifiers."

TABLES: tuple[Table, ...] = (
    _table(
        "ml_models",
        "model_registry",
        Owner.PIPELINE,
        "training",
        "Trained models, their MLflow runs and stage.",
        [
            Column("model_id", UUID, nullable=False),
            Column("model_name", nullable=False),
            Column("model_version", nullable=False),
            Column(
                "model_type",
                allowed=("logistic_regression", "random_forest", "xgboost", "lightgbm"),
            ),
            Column("framework"),
            Column("mlflow_run_id"),
            Column("mlflow_model_uri"),
            Column("metrics", JSON),
            Column("parameters", JSON),
            Column("tags", JSON),
            Column(
                "stage",
                allowed=("None", "Staging", "Production", "Archived"),
                description="Production: the champion alias; Staging: the challenger; Archived: "
                "held one before a later training took it.",
            ),
            Column(
                "training_seconds",
                DOUBLE,
                description="Compute seconds spent fitting the version (its AutoML trials "
                "included); what cost_tracking prices.",
            ),
            _created_at(),
            _updated_at(),
        ],
        primary_key=("model_id",),
    ),
    _table(
        "ml_models",
        "predictions",
        Owner.PIPELINE,
        "inference",
        "Batch predictions of the champion (and challenger) models.",
        [
            Column("prediction_id", UUID, nullable=False),
            _feedback_ref(),
            Column("model_id", UUID, nullable=False),
            Column("model_name", nullable=False, description="Registered model name."),
            Column("model_version", nullable=False),
            Column(
                "ab_arm",
                nullable=False,
                allowed=("A", "B"),
                description="A: the champion; B: the challenger (a fixed share, by id hash).",
            ),
            Column("predicted_label", nullable=False, allowed=SENTIMENT_LABELS),
            Column("prediction_confidence", DOUBLE),
            Column("prediction_probabilities", JSON, description="JSON object label -> p."),
            Column("features_used", JSON, description="JSON list of feature names."),
            Column("prediction_timestamp", TIMESTAMP, nullable=False),
            Column(
                "inference_time_ms",
                DOUBLE,
                description="The row's share of its batch's predict time; what cost_tracking "
                "prices.",
            ),
        ],
        primary_key=("prediction_id",),
        partition_source=_FEEDBACK_EVENT,
    ),
)

VOLUMES: tuple[Volume, ...] = (
    Volume("ml_models", "artifacts", "Model artifacts, plots and reports.", stage="training"),
)
