"""How a trained model is judged: its metrics on a split, its confusion matrix as an image,
and the champion/challenger choice among the families of one training run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """Accuracy, macro and weighted precision/recall/F1, and each label's P/R/F1/support.

    Computed over ``labels`` (every label the data has), so a label the model never predicts
    scores 0 rather than vanishing from the averages.
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    labels = list(labels)
    out = {"accuracy": float(accuracy_score(y_true, y_pred)), "rows": float(len(y_true))}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        out |= {f"{average}_precision": p, f"{average}_recall": r, f"{average}_f1": f}
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    for i, label in enumerate(labels):
        out |= {
            f"{label}_precision": p[i],
            f"{label}_recall": r[i],
            f"{label}_f1": f[i],
            f"{label}_support": s[i],
        }
    return {k: round(float(v), 6) for k, v in out.items()}


def confusion_png(y_true, y_pred, labels: Sequence[str], title: str) -> bytes:
    """The confusion matrix (rows: true label, columns: predicted) as a PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from sklearn.metrics import confusion_matrix

    counts = confusion_matrix(y_true, y_pred, labels=list(labels))
    figure = Figure(figsize=(4.2, 3.8), dpi=100)
    axes = figure.add_subplot()
    axes.imshow(counts, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=30, fontsize=8)
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=9)
    for (i, j), n in np.ndenumerate(counts):
        axes.text(j, i, str(n), ha="center", va="center", fontsize=8)
    figure.subplots_adjust(left=0.25, right=0.97, top=0.9, bottom=0.22)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


@dataclass(frozen=True)
class Choice:
    champion: str
    challenger: str | None
    reason: str


def choose(scores: dict[str, dict[str, float]], tolerance: float) -> Choice:
    """Champion: the best validation macro-F1 whose test macro-F1 is within ``tolerance`` of
    the best test macro-F1 (confirmed on data no choice looked at); challenger: the next
    confirmed one by validation (an unconfirmed one only when no other is confirmed).
    ``scores``: family -> {"validation_macro_f1", "test_macro_f1"}."""
    if tolerance < 0:
        raise ValueError(f"confirm_tolerance must be at least 0, got {tolerance}")
    ranked = sorted(scores, key=lambda f: (-scores[f]["validation_macro_f1"], f))
    best_test = max(s["test_macro_f1"] for s in scores.values())
    confirmed = [f for f in ranked if scores[f]["test_macro_f1"] >= best_test - tolerance]
    family = confirmed[0]  # the best test score is always within the tolerance of itself
    skipped = ranked[: ranked.index(family)]
    reason = f"best validation macro-F1 {scores[family]['validation_macro_f1']:.4f}"
    if skipped:
        reason += (
            f", after {', '.join(skipped)} (better on validation) scored more than {tolerance}"
            f" below the best test macro-F1 {best_test:.4f}"
        )
    else:
        reason += f", confirmed on test ({scores[family]['test_macro_f1']:.4f})"
    rest = [f for f in confirmed if f != family] or [f for f in ranked if f != family]
    return Choice(family, rest[0] if rest else None, reason)


def chance_macro_f1(y_true: np.ndarray) -> float:
    """The macro-F1 a guess at the label frequencies scores on average: 1 / labels present."""
    return 1 / max(1, len(set(y_true)))
