"""Drift of a partition against its reference window: PSI per key feature and for the
predicted-label distribution, and the share of low-confidence predictions.

PSI bands (the usual ones): under 0.1 stable, 0.1-0.25 a moderate shift (WARN), 0.25 and
over a major one (ERROR). PSI on a few hundred rows moves by chance alone, so a band only
counts when the shift is also significant: the KS test's p-value for a feature, a
chi-square test's for the labels, below ``SIGNIFICANCE``. Low confidence: more than 20% of the partition alerts (WARN, as the seed's
alert says), more than twice that is an ERROR.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from voyce_assets.features import FEATURE_NAMES

KEY_FEATURES = (
    "word_count",
    "avg_word_length",
    "topic_count",
    "duration_seconds",
    "avg_volume",
    "silence_ratio",
    "speech_rate",
    "pitch_mean",
    "energy_mean",
    "spectral_centroid_mean",
)
WARN_PSI, ERROR_PSI = 0.1, 0.25
LOW_CONFIDENCE_SHARE = 0.20
SIGNIFICANCE = 0.01
EPSILON = 1e-4  # an empty bin's share, so the log stays finite


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(expected / max(expected.sum(), 1), EPSILON)
    a = np.maximum(actual / max(actual.sum(), 1), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference`` over the reference's
    deciles (ties merged, so a feature with few values gets fewer bins)."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    expected = np.bincount(
        np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1
    )
    actual = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    return _psi(expected.astype(float), actual.astype(float))


def label_psi(reference: Sequence[str], current: Sequence[str], labels: Sequence[str]) -> float:
    count = lambda values: np.array([sum(v == k for v in values) for k in labels], float)  # noqa: E731
    return _psi(count(reference), count(current))


def severity(value: float, p_value: float) -> str | None:
    if p_value >= SIGNIFICANCE:
        return None
    return "ERROR" if value >= ERROR_PSI else "WARN" if value >= WARN_PSI else None


def label_p_value(reference: Sequence[str], current: Sequence[str], labels: Sequence[str]) -> float:
    """Chi-square test of the two label distributions (labels neither side has dropped)."""
    from scipy.stats import chi2_contingency

    counts = np.array(
        [[sum(v == k for v in side) for k in labels] for side in (reference, current)]
    )
    counts = counts[:, counts.sum(axis=0) > 0]
    if counts.shape[1] < 2:
        return 1.0
    return float(chi2_contingency(counts).pvalue)


def feature_drift(reference: np.ndarray, current: np.ndarray) -> dict[str, dict[str, float]]:
    """PSI, KS statistic and KS p-value of each key feature (columns in FEATURE_NAMES order)."""
    from scipy.stats import ks_2samp

    out = {}
    for name in KEY_FEATURES:
        i = FEATURE_NAMES.index(name)
        ks = ks_2samp(reference[:, i], current[:, i], method="asymp")
        out[name] = {
            "psi": round(psi(reference[:, i], current[:, i]), 4),
            "ks": round(float(ks.statistic), 4),
            "ks_p_value": float(f"{ks.pvalue:.4g}"),
        }
    return out


def low_confidence_severity(share: float) -> str | None:
    if share > 2 * LOW_CONFIDENCE_SHARE:
        return "ERROR"
    return "WARN" if share > LOW_CONFIDENCE_SHARE else None


def worst(levels: Mapping[str, str | None]) -> str | None:
    found = set(levels.values())
    return "ERROR" if "ERROR" in found else "WARN" if "WARN" in found else None
