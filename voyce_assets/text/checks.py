"""The text stage's data-quality checks, computed on the rows as stored (read back from Delta
after the commit), so what they certify is the table, not the writer's intentions."""

from __future__ import annotations

import math
from collections.abc import Sequence

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue

from voyce_assets.catalog import SENTIMENT_LABELS
from voyce_assets.checks import MAX_FAILURE_RATE, rate_check

EXAMPLES = 10


def _result(name: str, bad: list[str], checked: int, what: str, **meta) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=name,
        passed=not bad,
        severity=AssetCheckSeverity.ERROR,
        description=f"{len(bad)} of {checked} rows {what}" if bad else None,
        metadata={
            "rows_checked": checked,
            "violations": len(bad),
            "examples": MetadataValue.json(bad[:EXAMPLES]),
            **meta,
        },
    )


def _in(value, low: float, high: float) -> bool:
    return value is not None and math.isfinite(value) and low <= value <= high


def label_check(rows: list[dict], allow_unlabelled: bool = False) -> AssetCheckResult:
    """Labels come from the label set. In sentiment_analysis a row has a label exactly when it
    has no error; ``allow_unlabelled``: a row may carry none (its analysis failed upstream)."""
    bad = []
    for r in rows:
        label = r["sentiment_label"]
        if label is not None and label not in SENTIMENT_LABELS:
            bad.append(f"{r['id']}: {label!r}")
        elif not allow_unlabelled and (r.get("error_message") is None) != (label is not None):
            bad.append(f"{r['id']}: label {label!r} with error {r.get('error_message')!r}")
    return _result(
        "labels_in_label_set",
        bad,
        len(rows),
        f"have a label outside {', '.join(SENTIMENT_LABELS)} (or a label on a failed row)",
    )


def score_check(rows: list[dict], allow_unlabelled: bool = False) -> AssetCheckResult:
    """Scores in -1..1, confidences in 0..1, urgency 1..5 on every analysed row;
    ``allow_unlabelled``: a row without a label (its analysis failed upstream) has none."""
    bad = []
    for r in rows:
        if r.get("error_message") is not None:
            continue
        if allow_unlabelled and r["sentiment_label"] is None and r["sentiment_score"] is None:
            continue
        problems = []
        if not _in(r["sentiment_score"], -1.0, 1.0):
            problems.append(f"score {r['sentiment_score']}")
        if "sentiment_confidence" in r and not _in(r["sentiment_confidence"], 0.0, 1.0):
            problems.append(f"confidence {r['sentiment_confidence']}")
        if "urgency" in r and not _in(r["urgency"], 1, 5):
            problems.append(f"urgency {r['urgency']}")
        if problems:
            bad.append(f"{r['id']}: {', '.join(problems)}")
    return _result("scores_in_range", bad, len(rows), "have a value out of range")


def failure_rate_check(rows: list[dict], partitions: Sequence[str] = ()) -> AssetCheckResult:
    """Failed rows per partition (``partitions``: every day of the run, empty ones too): a
    run over many days fails if any one day is over the alert, so a backfill cannot hide a
    bad day among good ones, and the failing days are named (``failing_partitions``)."""
    return rate_check(
        "failure_rate",
        rows,
        partitions,
        day=lambda r: r["event_date"],
        counts=lambda r: bool(r.get("error_message")),
        max_rate=MAX_FAILURE_RATE,
        severity=AssetCheckSeverity.WARN,
        example=lambda r: f"{r['voice_feedback_id']}: {r['error_message']}",
    )


def embedding_check(rows: list[dict], dimensions: int) -> AssetCheckResult:
    """Every embedding has ``dimensions`` finite values and unit length."""
    bad = []
    for r in rows:
        vector = r["text_embedding"]
        if vector is None or len(vector) != dimensions:
            bad.append(f"{r['id']}: length {None if vector is None else len(vector)}")
        elif not all(v is not None and math.isfinite(v) for v in vector):
            bad.append(f"{r['id']}: not finite")
        elif abs(math.fsum(v * v for v in vector) - 1.0) > 1e-3:
            bad.append(f"{r['id']}: norm {math.sqrt(math.fsum(v * v for v in vector)):.4f}")
    return _result(
        "embedding_valid", bad, len(rows), f"lack a finite unit {dimensions}-d embedding"
    )


SENTIMENT_CHECKS = {
    "labels_in_label_set": "Analysed rows have a label of the label set; failed rows none.",
    "scores_in_range": "sentiment_score in -1..1, confidence in 0..1, urgency in 1..5.",
    "failure_rate": f"At most {MAX_FAILURE_RATE:.0%} of the partition failed (WARN).",
}
ENHANCED_CHECKS = {
    "labels_in_label_set": SENTIMENT_CHECKS["labels_in_label_set"],
    "scores_in_range": "sentiment_score in -1..1 where present.",
    "embedding_valid": "text_embedding has 384 finite values and unit length.",
}
