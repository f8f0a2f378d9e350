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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voyce_assets.features import in_test_split, split_of

EPOCH = dt.date(1970, 1, 1)


def arm_of(feedback_id: str, challenger_percent: int) -> str:
    """``B`` (the challenger) for ``challenger_percent`` % of ids, ``A`` for the rest."""
    digest = hashlib.sha256(f"voyce-ab:{feedback_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 10_000
    return "B" if bucket < challenger_percent * 100 else "A"


def on_challenger(feedback_ids: Sequence[str], challenger_percent: int) -> np.ndarray:
    """``arm_of`` of many ids at once: True where it is ``B`` (the same hash, columnar)."""
    sha256 = hashlib.sha256
    digests = b"".join([sha256(b"voyce-ab:" + f.encode()).digest()[:8] for f in feedback_ids])
    buckets = np.frombuffer(digests, ">u8") % 10_000
    return buckets < challenger_percent * 100


def held_out(feedback_id: str, day: dt.date, trained_on: dt.date | None) -> bool:
    """Whether a model trained on the data up to ``trained_on`` never learned this feedback:
    it came later, or it is in the test split (never fitted, never used to choose)."""
    return split_of(feedback_id) == "test" or (trained_on is not None and day > trained_on)


def day_numbers(values) -> np.ndarray:
    """Dates (an Arrow date32 column or Python dates) as days since 1970."""
    if isinstance(values, pa.ChunkedArray | pa.Array):
        return pc.cast(values, pa.int32()).to_numpy(zero_copy_only=False)
    return np.array([(d - EPOCH).days for d in values], dtype=np.int64)


def report(
    rows: Sequence[Mapping] | pa.Table,
    labels: Mapping[str, str] | pa.Table,
    models: Mapping[str, tuple],
) -> dict:
    """Per arm, over the predictions of the arm's current model (``models``: arm ->
    (model_id, trained_on)): predictions, mean confidence and latency, the held-out ones with
    a text-stage label and the accuracy on them; the p-value of the accuracy difference.
    Predictions still kept from an earlier model are counted apart, never mixed in.

    ``rows``: predictions (row mappings or a table with their columns); ``labels``: the
    text-stage label per feedback id (a mapping, or a table of ``voice_feedback_id`` and
    ``sentiment_label``). Computed on columns, never a Python object per row."""
    from scipy.stats import fisher_exact

    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(list(rows))
    if not isinstance(labels, pa.Table):
        labels = pa.table(
            {
                "voice_feedback_id": pa.array(list(labels), pa.string()),
                "sentiment_label": pa.array(list(labels.values()), pa.string()),
            }
        )
    n = table.num_rows
    column = lambda name: table.column(name) if n else pa.array([], pa.string())  # noqa: E731
    ids = column("voice_feedback_id")
    arm_of_row = column("ab_arm").to_numpy(zero_copy_only=False)
    model_of_row = column("model_id").to_numpy(zero_copy_only=False)
    predicted = column("predicted_label")
    truth = labels.column("sentiment_label").take(
        pc.index_in(ids, labels.column("voice_feedback_id"))
    )
    right_label = pc.fill_null(pc.equal(predicted, truth), False).to_numpy(zero_copy_only=False)
    labelled = pc.is_valid(truth).to_numpy(zero_copy_only=False)
    days = day_numbers(table.column("event_date")) if n else np.zeros(0, np.int64)
    confidence = column("prediction_confidence").to_numpy(zero_copy_only=False) if n else []
    latency = column("inference_time_ms").to_numpy(zero_copy_only=False) if n else []

    arms: dict[str, dict] = {}
    counts = []
    for arm in ("A", "B"):
        model, trained_on = models.get(arm, (None, None))
        in_arm = arm_of_row == arm
        mine = in_arm & (model_of_row == model)
        candidates = mine & labelled
        later = days > (trained_on - EPOCH).days if trained_on is not None else np.zeros(n, bool)
        # The split's hash only for the labelled rows not already held out by their day.
        unsure = np.flatnonzero(candidates & ~later)
        held = candidates & later
        held[unsure] = in_test_split(ids.take(pa.array(unsure)).to_pylist()) if n else []
        judged = int(held.sum())
        right = int((held & right_label).sum())
        first = int(np.argmax(mine)) if mine.any() else None
        arms[arm] = {
            "model": f"{table.column('model_name')[first].as_py()} "
            f"v{table.column('model_version')[first].as_py()}"
            if first is not None
            else None,
            "predictions": int(mine.sum()),
            "by_earlier_models": int(in_arm.sum() - mine.sum()),
            "judged": judged,
            "accuracy": round(right / judged, 4) if judged else None,
            "mean_confidence": round(float(np.sum(confidence[mine]) / mine.sum()), 4)
            if mine.any()
            else None,
            "mean_latency_ms": round(float(np.sum(latency[mine]) / mine.sum()), 4)
            if mine.any()
            else None,
        }
        counts.append([right, judged - right])
    testable = all(sum(row) > 0 for row in counts)
    p_value = float(fisher_exact(counts).pvalue) if testable else None
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
