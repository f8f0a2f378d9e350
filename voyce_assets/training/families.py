"""The four model families as full scikit-learn pipelines, their default parameters and the
space the AutoML search draws from.

Preprocessing is inside each pipeline (a median imputer, and scaling for the linear model),
so a model loaded from the registry scores raw feature vectors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from voyce_assets.models import FAMILIES

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

DEFAULTS: dict[str, dict[str, Any]] = {
    "lr": {"C": 1.0, "max_iter": 2000},
    "rf": {"n_estimators": 200, "max_depth": 16, "min_samples_leaf": 1, "max_features": "sqrt"},
    "xgb": {"n_estimators": 200, "max_depth": 6, "learning_rate": 0.1, "subsample": 1.0},
    "lgbm": {"n_estimators": 200, "num_leaves": 31, "learning_rate": 0.1, "min_child_samples": 5},
}


def classifier(family: str, params: dict[str, Any], seed: int, device: str = "cpu"):
    """The family's bare estimator with ``params`` (threads: every core) on ``device``
    (``training/device.py``: XGBoost's ``cuda``, LightGBM's ``gpu``; the others: ``cpu``)."""
    if family == "lr":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(**params, random_state=seed)
    if family == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(**params, n_jobs=-1, random_state=seed)
    if family == "xgb":
        from xgboost import XGBClassifier

        from voyce_assets.models import LabelEncoded

        return LabelEncoded(
            XGBClassifier(**params, tree_method="hist", device=device, n_jobs=-1, random_state=seed)
        )
    if family == "lgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(
            **params, device_type=device, n_jobs=-1, random_state=seed, verbosity=-1
        )
    raise ValueError(f"unknown model family {family!r}; families: {', '.join(FAMILIES)}")


def pipeline(family: str, params: dict[str, Any], seed: int, device: str = "cpu") -> Pipeline:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if family == "lr":
        steps.append(("scale", StandardScaler()))
    steps.append(("model", classifier(family, params, seed, device)))
    return Pipeline(steps)


def fit(model: Pipeline, X: np.ndarray, y: np.ndarray) -> Pipeline:
    """Fit with balanced class weights (the labels are skewed; macro-F1 picks the champion)."""
    from sklearn.utils.class_weight import compute_sample_weight

    return model.fit(X, y, model__sample_weight=compute_sample_weight("balanced", y))


def suggest(family: str, trial) -> dict[str, Any]:
    """One AutoML trial's parameters (an Optuna trial), near the defaults' scale."""
    if family == "lr":
        return {"C": trial.suggest_float("C", 1e-3, 1e2, log=True), "max_iter": 2000}
    if family == "rf":
        return {
            "n_estimators": trial.suggest_int("n_estimators", 50, 400, log=True),
            "max_depth": trial.suggest_int("max_depth", 4, 32, log=True),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 10),
            "max_features": trial.suggest_categorical("max_features", ["sqrt", "log2"]),
        }
    if family == "xgb":
        return {
            "n_estimators": trial.suggest_int("n_estimators", 50, 400, log=True),
            "max_depth": trial.suggest_int("max_depth", 2, 10),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        }
    if family == "lgbm":
        return {
            "n_estimators": trial.suggest_int("n_estimators", 50, 400, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 7, 127, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 2, 50, log=True),
        }
    raise ValueError(f"unknown model family {family!r}")


def importances(model: Pipeline, names: tuple[str, ...]) -> dict[str, float]:
    """Each feature's importance: the trees' own, or the mean |coefficient| of the scaled
    linear model; normalised to sum to 1."""
    last = model.named_steps["model"]
    if hasattr(last, "coef_"):
        raw = np.abs(np.asarray(last.coef_)).mean(axis=0)
    else:
        raw = np.asarray(last.feature_importances_, np.float64)
    total = float(raw.sum()) or 1.0
    return {name: float(v) / total for name, v in zip(names, raw, strict=True)}


def _version(module: str) -> str:
    # The module's own version: xgboost installs as xgboost or xgboost-cpu, one import name.
    import importlib

    return importlib.import_module(module).__version__


_LIBRARY = {"lr": "sklearn", "rf": "sklearn", "xgb": "xgboost", "lgbm": "lightgbm"}
_PACKAGE = {"sklearn": "scikit-learn", "xgboost": "xgboost", "lightgbm": "lightgbm"}


def framework(family: str) -> str:
    """The library and version that trained the family, e.g. ``xgboost 3.2.0``."""
    module = _LIBRARY[family]
    return f"{_PACKAGE[module]} {_version(module)}"


def requirements(family: str) -> list[str]:
    """pip requirements logged with the model (inferring them loads the model in a
    subprocess, seconds per model). XGBoost's pipeline holds LabelEncoded, from this package."""
    modules = ["sklearn", "numpy", "scipy"]
    if _LIBRARY[family] != "sklearn":
        modules.append(_LIBRARY[family])
    pins = [f"{_PACKAGE.get(m, m)}=={_version(m)}" for m in modules]
    return pins + (["voyce-assets"] if family == "xgb" else [])
