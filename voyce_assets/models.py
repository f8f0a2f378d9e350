"""What a trained sentiment classifier is, for the stage that trains it and the one that
scores with it: the model families, their registered names, the aliases, the ids the
tables give a model version, and the label-encoding wrapper a loaded model needs.

Every stage imports this module, the scoring one to name models: it stays light.
``LabelEncoded`` subclasses scikit-learn's estimator, so it lives in ``label_encoded.py``
and is resolved here on first use (``voyce_assets.models.LabelEncoded``, the name pickled
inside the registered XGBoost pipelines)."""

from __future__ import annotations

import uuid

from voyce_assets.catalog import SENTIMENT_LABELS

# Short name -> model_type in ml_models.model_registry.
FAMILIES = {
    "lr": "logistic_regression",
    "rf": "random_forest",
    "xgb": "xgboost",
    "lgbm": "lightgbm",
}
CHAMPION, CHALLENGER = "champion", "challenger"
# The registry's aliases shown in the table's ``stage`` column (the classic stage names).
STAGE_OF_ALIAS = {CHAMPION: "Production", CHALLENGER: "Staging"}
LABELS = SENTIMENT_LABELS


def registered_name(prefix: str, family: str) -> str:
    """``sentiment_classifier_lr`` locally, ``<catalog>.ml_models.sentiment_classifier_lr``
    in Unity Catalog."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; families: {', '.join(FAMILIES)}")
    return f"{prefix}sentiment_classifier_{family}"


def model_id(name: str, version: str | int) -> str:
    """The id of a registered model version in ml_models tables: stable, so a prediction's
    model_id joins the registry row of the version that made it."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"voyce-model:{name}/{version}"))


def __getattr__(name: str):
    # Only on first use, scikit-learn with it (unpickling a registered XGBoost pipeline).
    if name == "LabelEncoded":
        from voyce_assets.label_encoded import LabelEncoded

        return LabelEncoded
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
