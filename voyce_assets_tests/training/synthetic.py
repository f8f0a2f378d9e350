"""Labelled feature vectors of the real width with a learnable signal, for the training and
inference tests and the benchmark: each label shifts a few features' means."""

from __future__ import annotations

import datetime as dt

import numpy as np

from voyce_assets.features import FEATURE_NAMES
from voyce_assets.training.training_dataset import split_of
from voyce_assets_tests.analytics.harness import A, uid

LABELS = ("positive", "neutral", "negative")


def arrays(n: int, seed: int = 0, labels=LABELS, signal: float = 1.5):
    """``n`` vectors and their labels: label k adds ``signal`` to features 5k..5k+4 and to
    embedding k, so every family can learn it, and none perfectly."""
    rng = np.random.default_rng(seed)
    y = rng.choice(np.asarray(labels, dtype=object), size=n)
    X = rng.normal(size=(n, len(FEATURE_NAMES)))
    for k, label in enumerate(labels):
        rows = y == label
        X[np.ix_(rows, range(5 * k, 5 * k + 5))] += signal
        X[rows, 36 + k] += signal
    return X, y


def dataset_rows(
    days: list[dt.date], per_day: int, seed: int = 0, labels=LABELS, tag="t", signal=1.5
):
    """``processed_data/training_dataset`` rows (harness form, with ``day``)."""
    out = []
    X, y = arrays(per_day * len(days), seed, labels, signal)
    for i in range(len(y)):
        fid = uid(f"{tag}{i}")
        out.append(
            {
                "voice_feedback_id": fid,
                "organization_id": A,
                "features": [float(v) for v in X[i]],
                "label": str(y[i]),
                "label_confidence": 0.9,
                "label_source": "local/local-lr",
                "split": split_of(fid),
                "day": days[i // per_day],
            }
        )
    return out
