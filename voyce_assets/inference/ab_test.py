"""The A/B split and its report: which arm scores a feedback, and how the arms compare.

The arm follows a hash of the feedback id, never row order, so a feedback stays in its arm
across runs. Accuracy is measured against the text stage's label where one exists; the
difference between the arms is tested with Fisher's exact test (exact at any sample size).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence


def arm_of(feedback_id: str, challenger_percent: int) -> str:
    """``B`` (the challenger) for ``challenger_percent`` % of ids, ``A`` for the rest."""
    digest = hashlib.sha256(f"voyce-ab:{feedback_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 10_000
    return "B" if bucket < challenger_percent * 100 else "A"


def report(rows: Sequence[Mapping], labels: Mapping[str, str]) -> dict:
    """Per arm: predictions, those with a text-stage label, accuracy on them, mean
    confidence and latency; and the p-value of the accuracy difference."""
    from scipy.stats import fisher_exact

    arms: dict[str, dict] = {}
    table = []
    for arm in ("A", "B"):
        mine = [r for r in rows if r["ab_arm"] == arm]
        judged = [r for r in mine if r["voice_feedback_id"] in labels]
        right = sum(r["predicted_label"] == labels[r["voice_feedback_id"]] for r in judged)
        arms[arm] = {
            "model": f"{mine[0]['model_name']} v{mine[0]['model_version']}" if mine else None,
            "predictions": len(mine),
            "labelled": len(judged),
            "accuracy": round(right / len(judged), 4) if judged else None,
            "mean_confidence": (
                round(sum(r["prediction_confidence"] for r in mine) / len(mine), 4)
                if mine
                else None
            ),
            "mean_latency_ms": (
                round(sum(r["inference_time_ms"] for r in mine) / len(mine), 4) if mine else None
            ),
        }
        table.append([right, len(judged) - right])
    testable = all(sum(row) > 0 for row in table)
    p_value = float(fisher_exact(table).pvalue) if testable else None
    return {
        "arms": arms,
        "accuracy_difference": (
            round(arms["B"]["accuracy"] - arms["A"]["accuracy"], 4) if testable else None
        ),
        "p_value": round(p_value, 6) if p_value is not None else None,
        "test": "Fisher's exact test on correct / wrong per arm"
        if testable
        else "not tested: an arm has no labelled prediction",
    }
