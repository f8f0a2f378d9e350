"""What a trained sentiment classifier is, for the stage that trains it and the one that
scores with it: the model families, their registered names, the aliases, the ids the
tables give a model version, and the label-encoding wrapper a loaded model needs."""

from __future__ import annotations

import uuid

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

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


class LabelEncoded(ClassifierMixin, BaseEstimator):
    """A classifier that only takes integer classes (XGBoost), taking and returning labels.

    It is pickled inside the logged pipeline, so a model loaded from the registry scores raw
    features and answers in sentiment labels like the other families.
    """

    def __init__(self, estimator=None):
        self.estimator = estimator

    def fit(self, X, y, sample_weight=None):
        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        self.estimator_ = clone(self.estimator).fit(X, codes, sample_weight=sample_weight)
        self.n_features_in_ = getattr(self.estimator_, "n_features_in_", np.shape(X)[1])
        return self

    def with_fitted(self, estimator, classes) -> LabelEncoded:
        """This wrapper around ``estimator`` fitted elsewhere on the codes of ``classes``
        (XGBoost's distributed booster loaded into an XGBClassifier)."""
        self.classes_ = np.asarray(classes)
        self.estimator_ = estimator
        self.n_features_in_ = estimator.n_features_in_
        return self

    def predict_proba(self, X):
        return self.estimator_.predict_proba(X)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    @property
    def feature_importances_(self):
        return self.estimator_.feature_importances_
