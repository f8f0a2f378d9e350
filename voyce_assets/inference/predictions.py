"""``ml_models/predictions``: the champion's (and challenger's) prediction per feedback.

Every feedback of the partition with a text embedding and audio features is scored by the
model its id's hash assigns it to (A: ``champion``, B: ``challenger``), both loaded from the
registry by alias, in ``batch_size`` chunks. A prediction younger than
``threshold_hours`` is kept as it is; older ones are made again (a new champion takes over
within that interval). Each partition records its A/B report and drift figures; the asset's
checks judge the predictions themselves and the drift against the reference window.

Scoring works on columns (the probability matrix, Arrow arrays), never a Python object per
row; a model version is loaded once per process (``ModelRegistry.load``) while the aliases
are resolved on every run.
"""

import datetime as dt
import hashlib
import io
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
from voyce_assets.checks import failing_partitions, named
from voyce_assets.features import (
    BASE_FEATURES,
    EMBEDDING_DIM,
    FEATURE_NAMES,
    analysed,
    scorable,
)
from voyce_assets.inference import drift
from voyce_assets.inference.ab_test import EPOCH, day_numbers, on_challenger, report
from voyce_assets.inference.resources import InferenceSettings
from voyce_assets.lake import writable
from voyce_assets.models import CHALLENGER, CHAMPION, LABELS, model_id
from voyce_assets.partitions import partition_dates, record_partitions
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


# Two hex digits per byte, and where a UUID's 32 digits go among its 36 characters.
_HEX = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), np.uint8).reshape(256, 2)
_DIGITS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])


# Ids per chunk of the ``string`` column: its int32 offsets reach 36 * rows.
IDS_PER_CHUNK = (2**31 - 1) // 36


def prediction_ids(
    feedback_ids: list[str], model: str, per_chunk: int = IDS_PER_CHUNK
) -> pa.ChunkedArray:
    """``str(uuid5(NAMESPACE_URL, f"voyce-prediction:{id}:{model}"))`` of each id, made as
    buffers (the SHA-1 per id, then the version and variant bits and the hex in numpy), in
    chunks of ``per_chunk`` ids at most (the offsets of a ``string`` array are int32)."""
    chunks = [
        _prediction_ids(feedback_ids[start : start + per_chunk], model)
        for start in range(0, len(feedback_ids), per_chunk)
    ]
    return pa.chunked_array(chunks, pa.string())


def _prediction_ids(feedback_ids: list[str], model: str) -> pa.Array:
    n = len(feedback_ids)
    assert 36 * n < 2**31, "int32 offsets"
    prefix, suffix = uuid.NAMESPACE_URL.bytes + b"voyce-prediction:", f":{model}".encode()
    sha1 = hashlib.sha1
    digests = b"".join([sha1(prefix + f.encode() + suffix).digest()[:16] for f in feedback_ids])
    raw = np.frombuffer(digests, np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x50  # version 5
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # the RFC 4122 variant
    text = np.full((n, 36), ord("-"), np.uint8)
    text[:, _DIGITS] = _HEX[raw].reshape(n, 32)
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text.tobytes())]
    )


JSON_ROWS_PER_CHUNK = 1_000_000  # a string array's offsets are int32: rows of ~70 bytes


def probabilities_json(
    classes: list[str], proba: np.ndarray, per_chunk: int = JSON_ROWS_PER_CHUNK
) -> pa.ChunkedArray:
    """``_probabilities_json`` in chunks of ``per_chunk`` rows at most (a backfill scores
    tens of millions of rows in one run)."""
    proba = np.asarray(proba, dtype=float)
    chunks = [
        _probabilities_json(classes, proba[start : start + per_chunk])
        for start in range(0, len(proba), per_chunk)
    ]
    return pa.chunked_array(chunks, pa.string())


def _probabilities_json(classes: list[str], proba: np.ndarray) -> pa.Array:
    """Each row's ``{label: p}`` (rounded to 6 decimals) as the JSON text ``json.dumps`` gives,
    byte for byte: ``json.dumps({c: round(float(p), 6) ...})``.

    ``np.round`` (``rint(p * 1e6) / 1e6``) is Python's correctly rounded ``round`` wherever
    ``p * 1e6`` is clearly off a tie (its error is under an ulp of ``p * 1e6``); rows with a
    value near a tie, outside [0, 1] or not finite (``NaN``, ``Infinity`` in JSON) are written
    by ``json.dumps`` itself. The others are written in numpy from ``k = rint(p * 1e6)``
    (``_six_decimals``): a Python string per value cost about a second per 200,000 rows."""
    proba = np.asarray(proba, dtype=float)
    n = len(proba)
    if not classes or not n:
        return pa.array([json.dumps({})] * n if not classes else [], pa.string())
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = proba * 1e6
        off_tie = np.abs(np.abs(scaled - np.floor(scaled)) - 0.5)
        fast = (proba >= 0) & (proba <= 1) & ~np.signbit(proba) & (off_tie > 1e-9 + scaled * 1e-15)
    pieces: list[Any] = []
    for j, c in enumerate(classes):
        pieces.append(("{" if j == 0 else ", ") + f"{json.dumps(c)}: ")
        k = np.rint(np.where(fast[:, j], scaled[:, j], 0.0)).astype(np.int64)
        pieces.append(_six_decimals(k))
    pieces.append("}")
    text = pc.binary_join_element_wise(
        *[pa.scalar(x) if isinstance(x, str) else x for x in pieces], ""
    )
    slow = np.flatnonzero(~fast.all(axis=1))
    if len(slow):
        mask = np.zeros(n, bool)
        mask[slow] = True
        exact = [
            json.dumps({c: round(float(v), 6) for c, v in zip(classes, proba[i], strict=True)})
            for i in slow.tolist()
        ]
        text = pc.replace_with_mask(text, pa.array(mask), pa.array(exact, pa.string()))
    return text


_POW10 = 10 ** np.arange(5, -1, -1, dtype=np.int64)  # the six decimals' place values


def _six_decimals(k: np.ndarray) -> pa.Array:
    """``repr(k / 1e6)`` of each integer ``0 <= k <= 1e6``, as Python writes it: "0.0", "1.0",
    "0.000123" (trailing zeros dropped) from 1e-4 up, "5e-06" / "1.2e-05" below (repr's
    exponent form under 1e-4). ``k / 1e6`` is the double nearest the decimal, and its
    shortest round-trip text is that decimal: no other decimal of so few digits maps to it."""
    n = len(k)
    chars = np.zeros((n, 8), np.uint8)
    width = np.zeros(n, np.int32)
    zero = ord("0")
    # From 1e-4 up: "0." and six digits, less the trailing zeros.
    digits = (k[:, None] // _POW10) % 10
    fixed = (k >= 100) & (k < 1_000_000)
    chars[fixed, 0], chars[fixed, 1] = zero, ord(".")
    chars[fixed, 2:] = zero + digits[fixed]
    nonzero = digits[fixed] != 0
    last = 5 - np.argmax(nonzero[:, ::-1], axis=1)  # the last digit that is not 0
    width[fixed] = 3 + last
    # The ends: "0.0" and "1.0".
    for value, text in ((0, b"0.0"), (1_000_000, b"1.0")):
        rows = k == value
        chars[rows, :3] = np.frombuffer(text, np.uint8)
        width[rows] = 3
    # Under 1e-4: d e-06 (k < 10); d e-05 or d.d e-05 (10 <= k < 100).
    micro = (k >= 1) & (k < 10)
    chars[micro, 0] = zero + k[micro]
    chars[micro, 1:5] = np.frombuffer(b"e-06", np.uint8)
    width[micro] = 5
    tens = (k >= 10) & (k < 100)
    whole = tens & (k % 10 == 0)
    chars[whole, 0] = zero + k[whole] // 10
    chars[whole, 1:5] = np.frombuffer(b"e-05", np.uint8)
    width[whole] = 5
    split = tens & (k % 10 != 0)
    chars[split, 0] = zero + k[split] // 10
    chars[split, 1] = ord(".")
    chars[split, 2] = zero + k[split] % 10
    chars[split, 3:7] = np.frombuffer(b"e-05", np.uint8)
    width[split] = 7
    data = chars[np.arange(8) < width[:, None]]
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(width, out=offsets[1:])
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data.tobytes())]
    )


def score(
    arm: Arm,
    ab_arm: str,
    info: pa.Table,
    X: np.ndarray,
    rows: np.ndarray,
    batch_size: int,
    now: dt.datetime,
) -> pa.Table:
    """The predictions of ``rows`` (indices into ``info`` and ``X``) by ``arm``, as columns:
    label, confidence, probabilities and per-row latency (the batch's time shared out)."""
    n = len(rows)
    classes = [str(c) for c in arm.model.classes_]
    proba = np.empty((n, len(classes)))
    per_row_ms = np.empty(n)
    for start in range(0, n, batch_size):
        chunk = slice(start, start + batch_size)
        began = time.perf_counter()
        proba[chunk] = arm.model.predict_proba(X[rows[chunk]])
        per_row_ms[chunk] = (time.perf_counter() - began) * 1000 / len(rows[chunk])
    best = np.argmax(proba, axis=1) if n else np.zeros(0, np.int64)
    mine = info.take(pa.array(rows, pa.int64()))
    ids = mine.column("voice_feedback_id")
    schema = PREDICTIONS.arrow_schema()

    def same(value: Any, name: str) -> pa.Array:
        return pa.repeat(pa.scalar(value, schema.field(name).type), n)

    columns = {
        "prediction_id": prediction_ids(ids.to_pylist(), arm.model_id),
        "voice_feedback_id": ids,
        "model_id": same(arm.model_id, "model_id"),
        "model_name": same(arm.name, "model_name"),
        "model_version": same(arm.version, "model_version"),
        "ab_arm": same(ab_arm, "ab_arm"),
        "predicted_label": pa.array(classes, pa.string()).take(pa.array(best)),
        "prediction_confidence": pa.array(proba[np.arange(n), best]),
        "prediction_probabilities": probabilities_json(classes, proba),
        "features_used": same(FEATURES_USED, "features_used"),
        "prediction_timestamp": same(now, "prediction_timestamp"),
        "inference_time_ms": pa.array(per_row_ms),
        "event_date": mine.column("event_date"),
    }
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def _problem(r: dict) -> str | None:
    """What is wrong with one prediction row, or None."""
    missing = [c.name for c in PREDICTIONS.columns if c.name != "event_date" and r[c.name] is None]
    if missing:
        return f"null {', '.join(missing)}"
    try:
        proba = json.loads(r["prediction_probabilities"])
    except ValueError:
        return "probabilities are not JSON"
    if not isinstance(proba, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in proba.values()
    ):
        return "probabilities are not an object of numbers"
    if set(proba) - set(LABELS) or r["predicted_label"] not in LABELS:
        return f"labels outside {LABELS}: {sorted(proba)}"
    if abs(sum(proba.values()) - 1) > 1e-4:
        return f"probabilities sum to {sum(proba.values()):.6f}"
    if abs(proba.get(r["predicted_label"], -1) - r["prediction_confidence"]) > 1e-6:
        return "confidence is not the predicted label's probability"
    return None


def _suspects(stored: pa.Table) -> np.ndarray:
    """Rows that may be invalid, found on columns (the probabilities parsed by Arrow's JSON
    reader): every invalid row is among them. All rows where Arrow cannot parse them."""
    import pyarrow.json as pj

    n = stored.num_rows
    suspect = np.zeros(n, bool)
    for c in PREDICTIONS.columns:
        if c.name != "event_date":
            suspect |= pc.is_null(stored.column(c.name)).to_numpy(zero_copy_only=False)
    column = pc.fill_null(stored.column("prediction_probabilities"), "{}")
    # A null value is no number (``_problem``), but Arrow reads it as a missing one.
    suspect |= pc.match_substring(column, "null").to_numpy(zero_copy_only=False)
    text = column.to_pylist()
    try:
        parsed = pj.read_json(
            io.BytesIO("\n".join(text).encode()),
            parse_options=pj.ParseOptions(
                explicit_schema=pa.schema([(label, pa.float64()) for label in LABELS]),
                unexpected_field_behavior="infer",
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return np.ones(n, bool)
    if parsed.num_rows != n:
        return np.ones(n, bool)
    for name in set(parsed.column_names) - set(LABELS):  # a label outside the set
        suspect |= pc.is_valid(parsed.column(name)).to_numpy(zero_copy_only=False)
    label = stored.column("predicted_label")
    suspect |= ~pc.fill_null(pc.is_in(label, pa.array(LABELS)), False).to_numpy(
        zero_copy_only=False
    )
    values = np.column_stack(
        [pc.fill_null(parsed.column(k), np.nan).to_numpy(zero_copy_only=False) for k in LABELS]
    )
    suspect |= np.abs(np.nansum(values, axis=1) - 1) > 1e-4
    codes = pc.fill_null(pc.index_in(label, pa.array(LABELS)), 0).to_numpy(zero_copy_only=False)
    # A label absent from the object has probability -1 (as in ``_problem``).
    chosen = np.nan_to_num(values[np.arange(n), codes], nan=-1.0)
    confidence = pc.fill_null(stored.column("prediction_confidence"), -1.0)
    suspect |= np.abs(chosen - confidence.to_numpy(zero_copy_only=False)) > 1e-6
    return suspect


def predictions_check(stored: pa.Table) -> AssetCheckResult:
    """Probabilities sum to 1 over known labels, the label is the likeliest, nothing null."""
    problems: dict[str, str] = {}
    days: dict[str, dt.date | None] = {}
    suspects = np.flatnonzero(_suspects(stored)) if stored.num_rows else []
    for r in stored.take(pa.array(suspects, pa.int64())).to_pylist():
        found = _problem(r)
        if found is not None:
            fid = str(r["voice_feedback_id"])
            problems[fid], days[fid] = found, r.get("event_date")
    failing = failing_partitions(days[fid] for fid in problems)
    return AssetCheckResult(
        check_name="predictions_valid",
        passed=not problems,
        description=named(failing),
        metadata={
            "rows": stored.num_rows,
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
    # Days as integers and labels as numpy: each partition's rows are found by comparison.
    feature_days = day_numbers(info.column("event_date"))
    label_days = day_numbers(history.column("event_date"))
    labels = history.column("predicted_label").to_numpy(zero_copy_only=False)
    stored_days = day_numbers(stored.column("event_date"))
    stored_confidence = stored.column("prediction_confidence").to_numpy(zero_copy_only=False)
    levels: dict[str, dict[str, str | None]] = {"feature": {}, "prediction": {}, "low": {}}
    detail: dict[str, dict[str, Any]] = {"feature": {}, "prediction": {}, "low": {}}
    per_partition: dict[str, dict] = {}
    for day in dates:
        key = day.isoformat()
        window = [(day - EPOCH).days - n for n in range(1, settings.reference_days + 1)]
        day_number = (day - EPOCH).days
        ref_rows = np.isin(feature_days, window)
        cur_rows = feature_days == day_number
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
        cur_labels = labels[label_days == day_number]
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
        confidence = stored_confidence[stored_days == day_number].astype(float)
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


def _labels(lakehouse: Lakehouse, dates: list[dt.date]) -> pa.Table:
    """The text stage's label of each successfully analysed feedback (id, label)."""
    done = lakehouse.read(
        SENTIMENT, dates, ["voice_feedback_id", "sentiment_label", "error_message"]
    )
    return analysed(done).select(["voice_feedback_id", "sentiment_label"])


def labels_markdown(counts: dict[str, int]) -> MetadataValue:
    """The predicted labels of a partition as a small markdown table with text bars (no
    image to render on every partition; the counts are in the metadata too)."""
    total = sum(counts.values())
    lines = ["| label | predictions | share | |", "|---|---:|---:|---|"]
    for label, count in counts.items():
        share = count / total if total else 0.0
        lines.append(f"| {label} | {count:,} | {share:.1%} | {'█' * round(share * 20)} |")
    return MetadataValue.md("\n".join(lines))


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
    ids = info.column("voice_feedback_id")
    # A prediction of a scorable feedback younger than the threshold is kept as it is.
    previous = lakehouse.read(PREDICTIONS, dates)
    at = pc.fill_null(pc.index_in(ids, previous.column("voice_feedback_id")), -1)
    at = at.to_numpy(zero_copy_only=False)
    fresh = pc.greater_equal(
        previous.column("prediction_timestamp"), pa.scalar(fresh_after, pa.timestamp("us", "UTC"))
    ).to_numpy(zero_copy_only=False)
    keep = (at >= 0) & (fresh[np.maximum(at, 0)] if len(fresh) else False)
    schema = PREDICTIONS.arrow_schema()
    kept = previous.take(pa.array(at[keep], pa.int64()))
    parts = [pa.Table.from_arrays([kept.column(f.name) for f in schema], schema=schema)]
    todo = np.flatnonzero(~keep)
    on_b = (
        on_challenger(
            ids.take(pa.array(todo, pa.int64())).to_pylist(), inference.challenger_percent
        )
        if "B" in arms
        else np.zeros(len(todo), bool)
    )
    for arm, rows_of_arm in (("A", todo[~on_b]), ("B", todo[on_b])):
        if len(rows_of_arm):
            parts.append(score(arms[arm], arm, info, X, rows_of_arm, inference.batch_size, now))
    stored = pa.concat_tables(parts)
    is_new = np.arange(stored.num_rows) >= kept.num_rows
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
    # The run's own days are what was just written: taken from memory, not read back (less
    # the rows the write held back).
    label_columns = ["event_date", "predicted_label"]
    history = pa.concat_tables(
        [
            lakehouse.read(PREDICTIONS, reference, label_columns),
            writable(PREDICTIONS, stored).select(label_columns),
        ],
        promote_options="permissive",  # the same types; only the NOT NULL flags differ
    )
    checks, drift_figures = drift_checks(dates, stored, features, history, inference)
    labels = _labels(lakehouse, dates)
    models = {k: (a.model_id, a.trained_on) for k, a in arms.items()}
    stored_days = day_numbers(stored.column("event_date"))
    predicted = stored.column("predicted_label").to_numpy(zero_copy_only=False)
    latency = stored.column("inference_time_ms").to_numpy(zero_copy_only=False)
    per_partition = {}
    for key in context.partition_keys:
        day = (dt.date.fromisoformat(key) - EPOCH).days
        mask = stored_days == day
        ab = report(stored.filter(pa.array(mask)), labels, models)
        counts = {label: int(np.count_nonzero(predicted[mask] == label)) for label in LABELS}
        per_partition[key] = {
            "dagster/partition_row_count": written.rows_per_partition.get(key, 0),
            "kept": int(np.count_nonzero(mask & ~is_new)),
            "rows_scored": int(np.count_nonzero(mask & is_new)),
            "inference_seconds": round(float(latency[mask & is_new].sum()) / 1000, 6),
            "arm_a": ab["arms"]["A"]["predictions"],
            "arm_b": ab["arms"]["B"]["predictions"],
            "ab_p_value": ab["p_value"] if ab["p_value"] is not None else "not tested",
            "ab_report": MetadataValue.json(ab),
            **drift_figures[key],
            "predicted_labels": labels_markdown(counts),
        }
    record_partitions(context, per_partition)
    return MaterializeResult(
        metadata={
            "champion": f"{arms['A'].name} v{arms['A'].version}",
            "challenger": f"{arms['B'].name} v{arms['B'].version}" if "B" in arms else "none",
            "challenger_share": f"{inference.challenger_percent}%",
        },
        check_results=[predictions_check(stored), *checks],
    )
