"""XGBoost above ``distributed_min_rows`` trains with ``xgboost.spark`` (training/compute.py)
at ``local[2]``: registered as the same scikit-learn pipeline, loaded by alias, scoring like
the single-process model; below the threshold it stays in the step's process."""

import json

import numpy as np
from sklearn.metrics import f1_score

from voyce_assets.models import CHAMPION, LabelEncoded
from voyce_assets.training.compute import SparkTraining
from voyce_assets.training.model_registry import REGISTRY
from voyce_assets_tests.analytics.harness import write_tables
from voyce_assets_tests.training.synthetic import arrays, dataset_rows
from voyce_assets_tests.training.test_model_registry import D1, D2, _failure, built, train


def _jobs() -> int:
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    return len(session.sparkContext.statusTracker().getJobIdsForGroup()) if session else 0


def test_above_the_threshold_xgboost_trains_on_spark_workers_as_the_same_model(ml_stores):
    lakehouse, registry = ml_stores
    write_tables(lakehouse, {"processed_data/training_dataset": dataset_rows([D1], 400)})
    compute = SparkTraining(master="local[2]")
    X, y = arrays(400, seed=7)
    models, versions = {}, {}
    for day, threshold in ((D1, 10**9), (D2, 1)):
        jobs = _jobs()
        result = train(
            lakehouse,
            registry,
            day,
            instance=built([day]),
            compute=compute,
            families=["xgb"],
            distributed_min_rows=threshold,
        )
        assert result.success, _failure(result)
        ran = _jobs() - jobs
        # Below the threshold no Spark job runs; above it the training is Spark's.
        assert (ran > 0) == (threshold == 1), ran
        version = registry.by_alias(CHAMPION)
        versions[day] = str(version.version)
        models[day] = registry.load(version)
    rows = {r["event_date"]: r for r in lakehouse.read(REGISTRY).to_pylist()}
    single, spread = (json.loads(rows[d]["parameters"]) for d in (D1, D2))
    assert (single["training_path"], single["num_workers"]) == ("single-process", 1)
    assert (spread["training_path"], spread["num_workers"]) == ("xgboost.spark", 2)
    run = registry.client().get_run(rows[D2]["mlflow_run_id"])
    assert run.data.params["training_path"] == "xgboost.spark"
    assert run.data.params["num_workers"] == "2"
    assert run.data.params["spark_master"].startswith("local[2")
    assert versions == {D1: "1", D2: "2"}
    # The same flavour and shape: a median imputer, then XGBoost behind the label encoder.
    for model in models.values():
        assert [name for name, _ in model.steps] == ["impute", "model"]
        assert isinstance(model.named_steps["model"], LabelEncoded)
        assert type(model.named_steps["model"].estimator_).__name__ == "XGBClassifier"
        np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1.0, rtol=1e-5)
    scores = {day: f1_score(y, model.predict(X), average="macro") for day, model in models.items()}
    assert scores[D2] > 0.8 and abs(scores[D1] - scores[D2]) < 0.03, scores
