"""ml_models.predictions: champion and challenger loaded by alias from a real MLflow store,
arms by id hash, predictions kept within the threshold, checks that can fail, drift that
fires on a shift and stays silent on stationary data."""

import datetime as dt
import json
from collections import Counter

import numpy as np
import pytest
from dagster import AssetCheckSeverity, ResourceDefinition, RunConfig, materialize

from voyce_assets.inference import drift
from voyce_assets.inference.ab_test import arm_of, report
from voyce_assets.inference.predictions import PREDICTIONS, predictions, predictions_check
from voyce_assets.inference.resources import InferenceSettings
from voyce_assets.training.model_registry import REGISTRY, TrainingConfig, model_registry
from voyce_assets_tests.analytics.harness import uid, write_tables
from voyce_assets_tests.inference.scorable import feedback_rows
from voyce_assets_tests.training.synthetic import dataset_rows

T = dt.date(2026, 11, 10)
DAYS = [dt.date(2026, 11, 20) + dt.timedelta(days=n) for n in range(4)]


def _train(lakehouse, registry):
    write_tables(lakehouse, {"processed_data/training_dataset": dataset_rows([T], 120)})
    result = materialize(
        [model_registry],
        resources={
            "lakehouse": lakehouse,
            "mlflow": registry,
            "gpu_step_launcher": ResourceDefinition.none_resource(),
        },
        partition_key=T.isoformat(),
        run_config=RunConfig(
            {"ml_models__model_registry": TrainingConfig(families=["lr", "lgbm"])}
        ),
    )
    assert result.success
    return {r["stage"]: r for r in lakehouse.read(REGISTRY).to_pylist()}


def _predict(lakehouse, registry, days, raise_on_error=True, **settings):
    return materialize(
        [predictions],
        resources={
            "lakehouse": lakehouse,
            "mlflow": registry,
            "inference": InferenceSettings(**settings),
        },
        tags={
            "dagster/asset_partition_range_start": min(days).isoformat(),
            "dagster/asset_partition_range_end": max(days).isoformat(),
        },
        raise_on_error=raise_on_error,
    )


def _checks(result):
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_each_feedback_scored_by_its_arm_and_kept_within_the_threshold(ml_stores):
    lakehouse, registry = ml_stores
    models = _train(lakehouse, registry)
    write_tables(lakehouse, feedback_rows(DAYS[:2], 40))
    result = _predict(lakehouse, registry, DAYS[:2], challenger_percent=30)
    assert result.success
    rows = lakehouse.read(PREDICTIONS).to_pylist()
    assert len(rows) == 80 and len({r["voice_feedback_id"] for r in rows}) == 80
    for r in rows:
        arm = arm_of(r["voice_feedback_id"], 30)
        expected = models["Production" if arm == "A" else "Staging"]
        assert r["ab_arm"] == arm
        assert (r["model_name"], r["model_version"], r["model_id"]) == (
            expected["model_name"],
            expected["model_version"],
            expected["model_id"],
        )
        proba = json.loads(r["prediction_probabilities"])
        assert sum(proba.values()) == pytest.approx(1, abs=1e-5)
        assert r["prediction_confidence"] == pytest.approx(max(proba.values()), abs=1e-6)
        assert r["predicted_label"] == max(proba, key=proba.get)
        assert r["inference_time_ms"] > 0
    assert {r["ab_arm"] for r in rows} == {"A", "B"}
    assert _checks(result)["predictions_valid"].passed
    meta = {
        e.materialization.partition: e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    day = DAYS[0].isoformat()
    assert meta[day]["dagster/partition_row_count"].value == 40
    assert meta[day]["arm_a"].value + meta[day]["arm_b"].value == 40
    ab = meta[day]["ab_report"].value
    assert ab["arms"]["A"]["labelled"] == meta[day]["arm_a"].value  # every one has a label
    assert ab["p_value"] is None or 0 <= ab["p_value"] <= 1

    # Within the threshold the predictions stay; past it they are made again, same ids.
    first = {r["prediction_id"]: r["prediction_timestamp"] for r in rows}
    assert _predict(lakehouse, registry, DAYS[:2], challenger_percent=30).success
    again = {
        r["prediction_id"]: r["prediction_timestamp"]
        for r in lakehouse.read(PREDICTIONS).to_pylist()
    }
    assert again == first
    assert _predict(lakehouse, registry, DAYS[:2], challenger_percent=30, threshold_hours=0).success
    redone = {
        r["prediction_id"]: r["prediction_timestamp"]
        for r in lakehouse.read(PREDICTIONS).to_pylist()
    }
    assert set(redone) == set(first) and all(redone[k] > first[k] for k in first)


def test_without_a_champion_the_run_fails_before_writing(ml_stores):
    lakehouse, registry = ml_stores
    write_tables(lakehouse, feedback_rows(DAYS[:1], 5))
    result = _predict(lakehouse, registry, DAYS[:1], raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "no model holds the alias 'champion'" in str(
        failure.step_failure_data.user_failure_data.description
    )
    assert not lakehouse.exists(PREDICTIONS)


def test_drift_fires_on_a_shifted_day_and_is_silent_on_stationary_days(ml_stores):
    lakehouse, registry = ml_stores
    _train(lakehouse, registry)
    # Stationary: four days from one distribution; each judged against the days before.
    write_tables(lakehouse, feedback_rows(DAYS, 200, seed=1))
    result = _predict(lakehouse, registry, DAYS, reference_days=3, min_drift_rows=100)
    checks = _checks(result)
    assert checks["feature_drift"].passed, checks["feature_drift"].metadata
    assert checks["prediction_drift"].passed, checks["prediction_drift"].metadata
    per_day = checks["feature_drift"].metadata["per_partition"].value
    assert "not judged" in per_day[DAYS[0].isoformat()]  # nothing before the first day
    assert isinstance(per_day[DAYS[3].isoformat()], dict)

    # The last day shifted by two standard deviations in the key features.
    write_tables(lakehouse, feedback_rows(DAYS, 200, seed=1, shift={DAYS[3]: 2.0}))
    result = _predict(
        lakehouse, registry, DAYS, reference_days=3, min_drift_rows=100, threshold_hours=0
    )
    feature = _checks(result)["feature_drift"]
    assert not feature.passed and feature.severity == AssetCheckSeverity.ERROR
    assert feature.metadata["failing_partitions"].value == [DAYS[3].isoformat()]
    assert result.success  # drift alerts; it does not stop the run


def test_psi_bands_on_stationary_and_shifted_samples():
    rng = np.random.default_rng(3)
    reference = rng.normal(size=5000)
    assert drift.severity(drift.psi(reference, rng.normal(size=5000))) is None
    assert drift.severity(drift.psi(reference, rng.normal(0.35, 1, size=5000))) == "WARN"
    assert drift.severity(drift.psi(reference, rng.normal(1.0, 1, size=5000))) == "ERROR"
    same = ["positive"] * 50 + ["negative"] * 50
    assert drift.label_psi(same, same, ["positive", "neutral", "negative"]) == pytest.approx(0)
    flipped = ["positive"] * 85 + ["negative"] * 15
    assert (
        drift.severity(drift.label_psi(same, flipped, ["positive", "neutral", "negative"]))
        == "ERROR"
    )


@pytest.mark.parametrize(("share", "level"), [(0.2, None), (0.21, "WARN"), (0.41, "ERROR")])
def test_low_confidence_bands(share, level):
    assert drift.low_confidence_severity(share) == level


def _row(**overrides):
    row = {
        "prediction_id": uid("x"),
        "voice_feedback_id": uid("f"),
        "model_id": uid("m"),
        "model_name": "sentiment_classifier_lr",
        "model_version": "1",
        "ab_arm": "A",
        "predicted_label": "positive",
        "prediction_confidence": 0.7,
        "prediction_probabilities": json.dumps({"positive": 0.7, "negative": 0.3}),
        "features_used": "[]",
        "prediction_timestamp": dt.datetime(2026, 11, 20, tzinfo=dt.UTC),
        "inference_time_ms": 0.1,
        "event_date": DAYS[0],
    }
    return {**row, **overrides}


@pytest.mark.parametrize(
    "bad",
    [
        {"prediction_probabilities": json.dumps({"positive": 0.7, "negative": 0.2})},
        {"prediction_probabilities": json.dumps({"positive": 0.7, "angry": 0.3})},
        {"predicted_label": "angry"},
        {"model_version": None},
        {"prediction_confidence": 0.3},
    ],
)
def test_the_predictions_check_fails_on_each_kind_of_bad_row(bad):
    assert predictions_check([_row()]).passed
    result = predictions_check([_row(), _row(voice_feedback_id=uid("g"), **bad)])
    assert not result.passed and result.metadata["invalid"].value == 1


def test_arms_follow_the_id_and_the_share():
    ids = [uid(f"a{i}") for i in range(20_000)]
    arms = Counter(arm_of(i, 25) for i in ids)
    assert abs(arms["B"] / len(ids) - 0.25) < 0.01
    assert [arm_of(i, 25) for i in reversed(ids)] == [arm_of(i, 25) for i in ids][::-1]
    assert {arm_of(i, 0) for i in ids[:500]} == {"A"} and {arm_of(i, 100) for i in ids[:500]} == {
        "B"
    }


def test_the_ab_report_tests_the_accuracy_difference():
    rows = [
        {
            "voice_feedback_id": f"a{i}",
            "ab_arm": "A",
            "predicted_label": "positive",
            "prediction_confidence": 0.8,
            "inference_time_ms": 0.1,
            "model_name": "m",
            "model_version": "1",
        }
        for i in range(40)
    ] + [
        {
            "voice_feedback_id": f"b{i}",
            "ab_arm": "B",
            "predicted_label": "positive",
            "prediction_confidence": 0.6,
            "inference_time_ms": 0.2,
            "model_name": "n",
            "model_version": "1",
        }
        for i in range(40)
    ]
    # A right on 36 of 40, B on 12 of 40: a real difference, a small p-value.
    labels = {f"a{i}": "positive" if i < 36 else "negative" for i in range(40)}
    labels |= {f"b{i}": "positive" if i < 12 else "negative" for i in range(40)}
    out = report(rows, labels)
    assert out["arms"]["A"]["accuracy"] == 0.9 and out["arms"]["B"]["accuracy"] == 0.3
    assert out["accuracy_difference"] == -0.6 and out["p_value"] < 1e-6
    same = {f"b{i}": "positive" if i < 36 else "negative" for i in range(40)}
    assert report(rows, {**labels, **same})["p_value"] == pytest.approx(1.0)
