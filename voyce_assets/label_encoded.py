"""``LabelEncoded``: the label-encoding wrapper of a classifier that only takes integer
classes (XGBoost). Apart from ``models`` because it subclasses scikit-learn's estimator:
``voyce_assets.models`` resolves it on first use, so the modules naming models stay light."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone


class LabelEncoded(ClassifierMixin, BaseEstimator):
    """A classifier that only takes integer classes (XGBoost), taking and returning labels.

    It is pickled inside the logged pipeline, so a model loaded from the registry scores raw
    features and answers in sentiment labels like the other families. Pickled under its
    historic name, ``voyce_assets.models.LabelEncoded`` (models registered before and after
    it moved here load alike).
    """

    __module__ = "voyce_assets.models"

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
