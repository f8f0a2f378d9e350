"""``ml_models/predictions``: the champion's (and challenger's) prediction per feedback.

Every feedback of the partition with a text embedding and audio features is scored by the
model its id's hash assigns it to (A: ``champion``, B: ``challenger``), both loaded from the
registry by alias, in ``batch_size`` chunks. A prediction younger than
``threshold_hours`` is kept as it is; older ones are made again (a new champion takes over
within that interval). Each partition records its A/B report and drift figures; the asset's
checks judge the predictions themselves and the drift against the reference window.
"""

import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
)

from voyce_assets.automation import hourly_after_upstream
from voyce_assets.catalog import table
from voyce_assets.charts import bar_chart_png, png_markdown
from voyce_assets.checks import failing_partitions, named
from voyce_assets.features import (
    BASE_FEATURES,
    EMBEDDING_DIM,
    FEATURE_NAMES,
    analysed,
    scorable,
)
from voyce_assets.inference import drift
from voyce_assets.inference.ab_test import arm_of, report
from voyce_assets.inference.resources import InferenceSettings
from voyce_assets.models import CHALLENGER, CHAMPION, LABELS, model_id
from voyce_assets.partitions import by_partition, partition_dates, record_partitions
from voyce_assets.resources import Lakehouse, ModelRegistry
from voyce_assets.tables import table_asset

PREDICTIONS = table("ml_models/predictions")
ENHANCED = table("processed_data/enhanced_transcriptions")
AUDIO = table("processed_data/audio_features")
SENTIMENT = table("raw_data/sentiment_analysis")
# The features a prediction used, as stored per row: the 36 names and the embedding's width.
FEATURES_USED = json.dumps([*BASE_FEATURES, f"text_embedding[{EMBEDDING_DIM}]"])


@dataclass
class Arm:
    name: str
    version: str
    model: Any
    trained_on: dt.date | None

    @property
    def model_id(self) -> str:
        return model_id(self.name, self.version)


def load_arms(registry: ModelRegistry) -> dict[str, Arm]:
    """A: the champion (required), B: the challenger (if one is registered)."""
    arms = {}
    for arm, alias in (("A", CHAMPION), ("B", CHALLENGER)):
        version = registry.by_alias(alias)
        if version is None:
            continue
        model = registry.load(version)
        width = getattr(model, "n_features_in_", len(FEATURE_NAMES))
        if width != len(FEATURE_NAMES):
            raise Failure(
                description=f"{version.name} v{version.version} ({alias}) takes {width} "
                f"features; the pipeline builds {len(FEATURE_NAMES)}: retrain the models",
                allow_retries=False,
            )
        trained_on = (version.tags or {}).get("voyce.trained_on")
        arms[arm] = Arm(
            version.name,
            str(version.version),
            model,
            dt.date.fromisoformat(trained_on) if trained_on else None,
        )
    if "A" not in arms:
        names = ", ".join(registry.names().values())
        raise Failure(
            description=f"no model holds the alias {CHAMPION!r} ({names}): materialize "
            "ml_models/model_registry first",
            allow_retries=False,
        )
    return arms


def score(
    arm: Arm, ids: list[str], X: np.ndarray, days: list, batch_size: int, now: dt.datetime
) -> list[dict]:
    """One row per id: the arm's label, confidence, probabilities and per-row latency."""
    rows = []
    classes = [str(c) for c in arm.model.classes_]
    for start in range(0, len(ids), batch_size):
        chunk = slice(start, start + batch_size)
        began = time.perf_counter()
        proba = arm.model.predict_proba(X[chunk])
        per_row_ms = (time.perf_counter() - began) * 1000 / len(proba)
        best = np.argmax(proba, axis=1)
        for fid, day, p, k in zip(ids[chunk], days[chunk], proba, best, strict=True):
            rows.append(
                {
                    "prediction_id": str(
                        uuid.uuid5(uuid.NAMESPACE_URL, f"voyce-prediction:{fid}:{arm.model_id}")
                    ),
                    "voice_feedback_id": fid,
                    "model_id": arm.model_id,
                    "model_name": arm.name,
                    "model_version": arm.version,
                    "predicted_label": classes[k],
                    "prediction_confidence": float(p[k]),
                    "prediction_probabilities": json.dumps(
                        {c: round(float(v), 6) for c, v in zip(classes, p, strict=True)}
                    ),
                    "features_used": FEATURES_USED,
                    "prediction_timestamp": now,
                    "inference_time_ms": per_row_ms,
                    "event_date": day,
                }
            )
    return rows


def predictions_check(rows: list[dict]) -> AssetCheckResult:
    """Probabilities sum to 1 over known labels, the label is the likeliest, nothing null."""
    problems: dict[str, str] = {}
    days: dict[str, dt.date | None] = {}
    required = [c.name for c in PREDICTIONS.columns if c.name != "event_date"]
    for r in rows:
        fid = r["voice_feedback_id"]
        days[str(fid)] = r.get("event_date")
        missing = [c for c in required if r.get(c) is None]
        if missing:
            problems[str(fid)] = f"null {', '.join(missing)}"
            continue
        proba = json.loads(r["prediction_probabilities"])
        if set(proba) - set(LABELS) or r["predicted_label"] not in LABELS:
            problems[fid] = f"labels outside {LABELS}: {sorted(proba)}"
        elif abs(sum(proba.values()) - 1) > 1e-4:
            problems[fid] = f"probabilities sum to {sum(proba.values()):.6f}"
        elif abs(proba.get(r["predicted_label"], -1) - r["prediction_confidence"]) > 1e-6:
            problems[fid] = "confidence is not the predicted label's probability"
    failing = failing_partitions(days[str(fid)] for fid in problems)
    return AssetCheckResult(
        check_name="predictions_valid",
        passed=not problems,
        description=named(failing),
        metadata={
            "rows": len(rows),
            "invalid": len(problems),
            "examples": dict(list(problems.items())[:20]),
            "failing_partitions": failing,
        },
    )


def _result(name: str, levels: dict[str, str | None], detail: dict) -> AssetCheckResult:
    """Each partition judged on its own (never the run's range as one), the failing named."""
    level = drift.worst(levels)
    failing = sorted(k for k, v in levels.items() if v)
    judged = sum(1 for v in detail.values() if isinstance(v, dict))
    return AssetCheckResult(
        check_name=name,
        passed=level is None,
        severity=AssetCheckSeverity.ERROR if level == "ERROR" else AssetCheckSeverity.WARN,
        description=f"failing: {', '.join(f'{k} ({levels[k]})' for k in failing)}"
        if failing
        else f"{judged} of {len(levels)} partition(s) judged, none failing",
        metadata={
            "failing_partitions": failing,
            "per_partition": MetadataValue.json(detail),
        },
    )


def drift_checks(
    dates: list[dt.date],
    stored: pa.Table,
    features: tuple[pa.Table, np.ndarray],
    history: pa.Table,
    settings: InferenceSettings,
) -> tuple[list[AssetCheckResult], dict[str, dict]]:
    """Feature drift, prediction drift and low confidence, each partition against the
    ``reference_days`` before it; the checks and each partition's figures."""
    info, days = features
    feature_days = np.asarray(info.column("event_date").to_pylist(), dtype=object)
    label_days = np.asarray(history.column("event_date").to_pylist(), dtype=object)
    labels = np.asarray(history.column("predicted_label").to_pylist(), dtype=object)
    levels: dict[str, dict[str, str | None]] = {"feature": {}, "prediction": {}, "low": {}}
    detail: dict[str, dict[str, Any]] = {"feature": {}, "prediction": {}, "low": {}}
    per_partition: dict[str, dict] = {}
    for day in dates:
        key = day.isoformat()
        window = [day - dt.timedelta(days=n) for n in range(1, settings.reference_days + 1)]
        ref_rows = np.isin(feature_days, window)
        cur_rows = feature_days == day
        enough = min(ref_rows.sum(), cur_rows.sum()) >= settings.min_drift_rows
        if enough:
            figures = drift.feature_drift(days[ref_rows], days[cur_rows])
            levels["feature"][key] = drift.worst(
                {n: drift.severity(f["psi"], f["ks_p_value"]) for n, f in figures.items()}
            )
            detail["feature"][key] = figures
        else:
            levels["feature"][key] = None
            detail["feature"][key] = (
                f"not judged: {int(cur_rows.sum())} rows against {int(ref_rows.sum())} in the "
                f"reference window, fewer than {settings.min_drift_rows}"
            )
        ref_labels = labels[np.isin(label_days, window)]
        cur_labels = labels[label_days == day]
        if min(len(ref_labels), len(cur_labels)) >= settings.min_drift_rows:
            value = round(drift.label_psi(ref_labels, cur_labels, LABELS), 4)
            p_value = drift.label_p_value(ref_labels, cur_labels, LABELS)
            levels["prediction"][key] = drift.severity(value, p_value)
            detail["prediction"][key] = {"psi": value, "chi2_p_value": float(f"{p_value:.4g}")}
        else:
            levels["prediction"][key] = None
            detail["prediction"][key] = (
                f"not judged: {len(cur_labels)} predictions against {len(ref_labels)}"
            )
        mine = stored.filter(pc.equal(stored.column("event_date"), pa.scalar(day, pa.date32())))
        confidence = np.asarray(mine.column("prediction_confidence").to_pylist(), float)
        share = float((confidence < settings.low_confidence).mean()) if len(confidence) else 0.0
        if len(confidence) >= settings.min_drift_rows:
            levels["low"][key] = drift.low_confidence_severity(share)
            detail["low"][key] = {"share": round(share, 4), "predictions": len(confidence)}
        else:
            # Today's partition early in the day: two rows are no share to alert on.
            levels["low"][key] = None
            detail["low"][key] = (
                f"not judged: {len(confidence)} predictions, fewer than {settings.min_drift_rows}"
            )
        per_partition[key] = {
            "low_confidence_share": round(share, 4),
            "prediction_psi": detail["prediction"][key].get("psi")
            if isinstance(detail["prediction"][key], dict)
            else None,
            "max_feature_psi": max(
                (f["psi"] for f in detail["feature"][key].values()), default=None
            )
            if isinstance(detail["feature"][key], dict)
            else None,
        }
    checks = [
        _result("feature_drift", levels["feature"], detail["feature"]),
        _result("prediction_drift", levels["prediction"], detail["prediction"]),
        _result("low_confidence", levels["low"], detail["low"]),
    ]
    return checks, per_partition


def _read_features(lakehouse: Lakehouse, dates: list[dt.date]) -> tuple[pa.Table, np.ndarray]:
    return scorable(lakehouse.read(ENHANCED, dates), lakehouse.read(AUDIO, dates))


def _labels(lakehouse: Lakehouse, dates: list[dt.date]) -> dict[str, str]:
    """The text stage's label of each successfully analysed feedback."""
    done = lakehouse.read(
        SENTIMENT, dates, ["voice_feedback_id", "sentiment_label", "error_message"]
    )
    done = analysed(done)
    return dict(
        zip(
            done.column("voice_feedback_id").to_pylist(),
            done.column("sentiment_label").to_pylist(),
            strict=True,
        )
    )


@table_asset(
    PREDICTIONS.path,
    deps=["ml_models/model_registry", ENHANCED.path, AUDIO.path, SENTIMENT.path],
    kinds={"mlflow", "scikit-learn"},
    retry_policy=RetryPolicy(max_retries=2, delay=30),
    tags={"voyce/cadence": "hourly"},
    # Predictions load the champion by alias: the registry's own day need not exist.
    automation_condition=hourly_after_upstream(may_be_missing=["ml_models/model_registry"]),
    checks={
        "predictions_valid": "Probabilities sum to 1 over the label set, the label is the "
        "likeliest, no required value is null.",
        "feature_drift": "PSI of each key feature against the reference window: WARN from "
        f"{drift.WARN_PSI}, ERROR from {drift.ERROR_PSI}.",
        "prediction_drift": "PSI of the predicted-label distribution against the reference "
        "window, same bands.",
        "low_confidence": f"More than {drift.LOW_CONFIDENCE_SHARE:.0%} of predictions below "
        "the confidence threshold: WARN (twice that: ERROR).",
    },
    blocking_checks=["predictions_valid"],
    description="Champion (A) and challenger (B) predictions by a hash of the feedback id, "
    "with the A/B report and drift against the days before.",
)
def predictions(
    context: AssetExecutionContext,
    lakehouse: Lakehouse,
    mlflow: ModelRegistry,
    inference: InferenceSettings,
) -> MaterializeResult:
    dates = partition_dates(context)
    arms = load_arms(mlflow)
    now = dt.datetime.now(dt.UTC)
    fresh_after = now - dt.timedelta(hours=inference.threshold_hours)
    info, X = _read_features(lakehouse, dates)
    ids = info.column("voice_feedback_id").to_pylist()
    days = info.column("event_date").to_pylist()
    previous = {r["voice_feedback_id"]: r for r in lakehouse.read(PREDICTIONS, dates).to_pylist()}
    kept, todo = [], {"A": [], "B": []}
    for i, fid in enumerate(ids):
        old = previous.get(fid)
        if old is not None and old["prediction_timestamp"] >= fresh_after:
            kept.append(old)
        else:
            todo[arm_of(fid, inference.challenger_percent) if "B" in arms else "A"].append(i)
    rows = list(kept)
    for arm, rows_of_arm in todo.items():
        if rows_of_arm:
            rows += [
                {**r, "ab_arm": arm}
                for r in score(
                    arms[arm],
                    [ids[i] for i in rows_of_arm],
                    X[rows_of_arm],
                    [days[i] for i in rows_of_arm],
                    inference.batch_size,
                    now,
                )
            ]
    stored = pa.Table.from_pylist(rows, schema=PREDICTIONS.arrow_schema())
    written = lakehouse.write_partitions(PREDICTIONS, stored, dates)
    # Drift: the run's days against the days before each, features and predictions alike.
    reference = sorted(
        {d - dt.timedelta(days=n) for d in dates for n in range(1, inference.reference_days + 1)}
        - set(dates)
    )
    ref_info, ref_X = _read_features(lakehouse, reference)
    features = (
        pa.concat_tables([ref_info, info]),
        np.vstack([ref_X, X]) if len(ref_X) else X,
    )
    history = lakehouse.read(PREDICTIONS, reference + dates, ["event_date", "predicted_label"])
    checks, drift_figures = drift_checks(dates, stored, features, history, inference)
    labels = _labels(lakehouse, dates)
    new_ids = {ids[i] for group in todo.values() for i in group}
    per_partition = {}
    for key, day_rows in by_partition(context, rows, lambda r: r["event_date"]).items():
        ab = report(day_rows, labels, {k: (a.model_id, a.trained_on) for k, a in arms.items()})
        counts = {label: sum(r["predicted_label"] == label for r in day_rows) for label in LABELS}
        per_partition[key] = {
            "dagster/partition_row_count": written.rows_per_partition.get(key, 0),
            "kept": sum(r["voice_feedback_id"] not in new_ids for r in day_rows),
            "rows_scored": sum(r["voice_feedback_id"] in new_ids for r in day_rows),
            "inference_seconds": round(
                sum(r["inference_time_ms"] for r in day_rows if r["voice_feedback_id"] in new_ids)
                / 1000,
                6,
            ),
            "arm_a": ab["arms"]["A"]["predictions"],
            "arm_b": ab["arms"]["B"]["predictions"],
            "ab_p_value": ab["p_value"] if ab["p_value"] is not None else "not tested",
            "ab_report": MetadataValue.json(ab),
            **drift_figures[key],
            "predicted_labels": png_markdown(
                bar_chart_png(counts, f"predicted labels, {key}", "predictions"), "labels"
            ),
        }
    record_partitions(context, per_partition)
    return MaterializeResult(
        metadata={
            "champion": f"{arms['A'].name} v{arms['A'].version}",
            "challenger": f"{arms['B'].name} v{arms['B'].version}" if "B" in arms else "none",
            "challenger_share": f"{inference.challenger_percent}%",
        },
        check_results=[predictions_check(rows), *checks],
    )
