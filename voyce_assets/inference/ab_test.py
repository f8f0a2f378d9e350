"""The A/B split and its report: which arm scores a feedback, and how the arms compare.

The arm follows a hash of the feedback id, never row order, so a feedback stays in its arm
across runs. Accuracy is measured against the text stage's label, on feedback the model did
not train on; the difference between the arms is tested with Fisher's exact test (exact at
any sample size).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence

from voyce_assets.features import split_of


def arm_of(feedback_id: str, challenger_percent: int) -> str:
    """``B`` (the challenger) for ``challenger_percent`` % of ids, ``A`` for the rest."""
    digest = hashlib.sha256(f"voyce-ab:{feedback_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 10_000
    return "B" if bucket < challenger_percent * 100 else "A"


def held_out(feedback_id: str, day: dt.date, trained_on: dt.date | None) -> bool:
    """Whether a model trained on the data up to ``trained_on`` never learned this feedback:
    it came later, or it is in the test split (never fitted, never used to choose)."""
    return split_of(feedback_id) == "test" or (trained_on is not None and day > trained_on)


def report(rows: Sequence[Mapping], labels: Mapping[str, str], models: Mapping[str, tuple]) -> dict:
    """Per arm, over the predictions of the arm's current model (``models``: arm ->
    (model_id, trained_on)): predictions, mean confidence and latency, the held-out ones with
    a text-stage label and the accuracy on them; the p-value of the accuracy difference.
    Predictions still kept from an earlier model are counted apart, never mixed in."""
    from scipy.stats import fisher_exact

    arms: dict[str, dict] = {}
    table = []
    for arm in ("A", "B"):
        model, trained_on = models.get(arm, (None, None))
        in_arm = [r for r in rows if r["ab_arm"] == arm]
        mine = [r for r in in_arm if r["model_id"] == model]
        judged = [
            r
            for r in mine
            if r["voice_feedback_id"] in labels
            and held_out(r["voice_feedback_id"], r["event_date"], trained_on)
        ]
        right = sum(r["predicted_label"] == labels[r["voice_feedback_id"]] for r in judged)
        arms[arm] = {
            "model": f"{mine[0]['model_name']} v{mine[0]['model_version']}" if mine else None,
            "predictions": len(mine),
            "by_earlier_models": len(in_arm) - len(mine),
            "judged": len(judged),
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
        else "not tested: an arm has no held-out labelled prediction",
        "judged_on": "feedback with a text-stage label that the arm's model never trained on "
        "(the test split, or after its training day)",
    }
