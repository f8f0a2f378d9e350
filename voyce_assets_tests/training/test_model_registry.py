"""ml_models.model_registry: four families trained on the dataset, tracked and registered
in a real MLflow store, champion and challenger by alias, one table row per version."""

import datetime as dt
import json

import numpy as np
import pytest
from dagster import (
    AssetCheckSeverity,
    AssetMaterialization,
    DagsterInstance,
    ResourceDefinition,
    RunConfig,
    materialize,
)

from voyce_assets.models import CHALLENGER, CHAMPION
from voyce_assets.tables import table_key
from voyce_assets.training.compute import TrainingCompute
from voyce_assets.training.evaluation import choose, metrics
from voyce_assets.training.model_registry import REGISTRY, TrainingConfig, model_registry
from voyce_assets_tests.analytics.harness import write_tables
from voyce_assets_tests.training.synthetic import arrays, dataset_rows

D1, D2 = dt.date(2026, 11, 20), dt.date(2026, 11, 21)


def built(days, path="processed_data/training_dataset") -> DagsterInstance:
    """An instance where ``path`` was materialized for ``days`` (what training waits for)."""
    instance = DagsterInstance.ephemeral()
    for day in days:
        instance.report_runless_asset_event(
            AssetMaterialization(asset_key=table_key(path), partition=day.isoformat())
        )
    return instance


def train(lakehouse, registry, day, last=None, instance=None, compute=None, tags=None, **config):
    """Materialize the registry for ``day`` (or the range ``day``..``last``), fitting with
    ``compute`` (default: in this process)."""
    last = last or day
    days = [day + dt.timedelta(days=n) for n in range((last - day).days + 1)]
    return materialize(
        [model_registry],
        resources={
            "lakehouse": lakehouse,
            "mlflow": registry,
            "gpu_step_launcher": ResourceDefinition.none_resource(),
            "training_compute": compute or TrainingCompute(),
        },
        instance=instance or built(days),
        tags={
            "dagster/asset_partition_range_start": day.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
            **(tags or {}),
        },
        run_config=RunConfig({REGISTRY.path.replace("/", "__"): TrainingConfig(**config)}),
        raise_on_error=False,
    )


def _failure(result) -> str:
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    data = failure.step_failure_data
    return str(data.user_failure_data and data.user_failure_data.description) + str(
        data.error and data.error.message
    )


def test_four_families_registered_champion_loads_by_alias_and_scores_raw_features(ml_stores):
    lakehouse, registry = ml_stores
    write_tables(lakehouse, {"processed_data/training_dataset": dataset_rows([D1], 300)})
    result = train(lakehouse, registry, D1)
    assert result.success
    rows = lakehouse.read(REGISTRY).to_pylist()
    assert sorted(r["model_type"] for r in rows) == [
        "lightgbm",
        "logistic_regression",
        "random_forest",
        "xgboost",
    ]
    assert sorted(r["stage"] for r in rows) == ["None", "None", "Production", "Staging"]
    champion_row = next(r for r in rows if r["stage"] == "Production")
    # The champion by alias is the table's Production row, and a loaded model scores raw
    # vectors in sentiment labels, well above chance on held-out data.
    version = registry.by_alias(CHAMPION)
    assert (version.name, str(version.version)) == (
        champion_row["model_name"],
        champion_row["model_version"],
    )
    model = registry.load(version)
    X, y = arrays(300, seed=7)
    assert set(model.predict(X)) <= {"positive", "neutral", "negative"}
    assert (model.predict(X) == y).mean() > 0.6
    np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1.0)
    assert registry.by_alias(CHALLENGER).name != version.name
    # What MLflow tracked for the champion's run.
    client = registry.client()
    run = client.get_run(champion_row["mlflow_run_id"])
    for key in ("validation_macro_f1", "test_weighted_precision", "test_negative_recall"):
        assert key in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {
        "confusion_matrix_validation.png",
        "confusion_matrix_test.png",
        "feature_importance.json",
        "feature_importance.png",
    } <= artifacts
    import mlflow.models

    with registry.session(experiment=False):
        info = mlflow.models.get_model_info(f"models:/{version.name}/{version.version}")
    assert info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 420)
    assert info.signature.outputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 3)
    assert info.saved_input_example_info is not None
    assert client.get_model_version(version.name, version.version).tags["voyce.trained_on"] == (
        D1.isoformat()
    )
    scores = json.loads(champion_row["metrics"])
    assert scores["validation_macro_f1"] == pytest.approx(run.data.metrics["validation_macro_f1"])
    assert champion_row["training_seconds"] > 0
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "champion_beats_chance" and check.passed
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["dagster/partition_row_count"].value == 4


def test_a_later_training_moves_the_aliases_and_archives_the_older_rows(ml_stores):
    lakehouse, registry = ml_stores
    write_tables(lakehouse, {"processed_data/training_dataset": dataset_rows([D1, D2], 150)})
    assert train(lakehouse, registry, D1, families=["lr", "lgbm"]).success
    assert train(lakehouse, registry, D2, families=["lr", "lgbm"]).success
    rows = lakehouse.read(REGISTRY).to_pylist()
    stages = {(r["event_date"], r["stage"]) for r in rows}
    assert {s for d, s in stages if d == D1} == {"Archived"}
    assert sorted(s for d, s in stages if d == D2) == ["Production", "Staging"]
    assert str(registry.by_alias(CHAMPION).version) == "2"
    # Re-training D1 (a backfill of the past) replaces D1's rows, never takes the aliases.
    assert train(lakehouse, registry, D1, families=["lr", "lgbm"]).success
    rows = lakehouse.read(REGISTRY).to_pylist()
    assert len(rows) == 4
    assert sorted(r["stage"] for r in rows if r["event_date"] == D1) == ["None", "None"]
    assert str(registry.by_alias(CHAMPION).version) == "2"


@pytest.mark.parametrize(
    ("labels", "per_day", "needle"),
    [
        (("positive",), 100, "1 class(es) in train ['positive']"),
        (("positive", "negative"), 12, "needs at least 20 train rows"),
    ],
)
def test_too_little_data_or_one_class_fails_with_the_counts(ml_stores, labels, per_day, needle):
    lakehouse, registry = ml_stores
    write_tables(
        lakehouse, {"processed_data/training_dataset": dataset_rows([D1], per_day, labels=labels)}
    )
    result = train(lakehouse, registry, D1)
    assert not result.success
    message = _failure(result)
    assert needle in message and f"found {per_day} rows" in message
    assert not lakehouse.exists(REGISTRY) or lakehouse.read(REGISTRY).num_rows == 0
    assert registry.by_alias(CHAMPION) is None


def test_a_day_whose_dataset_was_never_built_fails_before_training(ml_stores):
    lakehouse, registry = ml_stores
    write_tables(lakehouse, {"processed_data/training_dataset": dataset_rows([D1], 100)})
    result = train(lakehouse, registry, D2, instance=built([D1]))
    assert not result.success
    assert "processed_data/training_dataset: 2026-11-21" in _failure(result)
    assert registry.by_alias(CHAMPION) is None


def test_a_champion_no_better_than_chance_fails_its_check(ml_stores):
    lakehouse, registry = ml_stores
    # Labels independent of the features: every family scores about 1/3 macro-F1.
    rows = dataset_rows([D1], 600, signal=0.0)
    write_tables(lakehouse, {"processed_data/training_dataset": rows})
    result = train(lakehouse, registry, D1, families=["lr", "lgbm"])
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == AssetCheckSeverity.ERROR
    assert check.metadata["failing_partitions"].value == [D1.isoformat()]
    # The description says why, in numbers (the demo's summary prints it).
    assert check.description.startswith(f"{D1.isoformat()}: champion ")
    assert " test rows, under chance 0.333 + 0.05" in check.description


def test_a_range_trains_each_day_on_its_own_data_and_only_the_last_takes_the_aliases(ml_stores):
    lakehouse, registry = ml_stores
    write_tables(lakehouse, {"processed_data/training_dataset": dataset_rows([D1, D2], 150)})
    # Every day of the range a training day ([]), not only the cadence's Saturdays.
    result = train(lakehouse, registry, D1, last=D2, families=["lr", "lgbm"], train_on_weekdays=[])
    assert result.success
    rows = lakehouse.read(REGISTRY).to_pylist()
    assert sorted(r["stage"] for r in rows if r["event_date"] == D1) == ["None", "None"]
    assert sorted(r["stage"] for r in rows if r["event_date"] == D2) == ["Production", "Staging"]
    meta = {
        e.materialization.partition: e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    # D1 trained on its 150 rows, D2 on both days' 300.
    assert meta["2026-11-20"]["dataset_rows"].value == 150
    assert meta["2026-11-21"]["dataset_rows"].value == 300
    assert meta["2026-11-20"]["dagster/partition_row_count"].value == 2
    assert meta["2026-11-20"]["aliases_moved"].value is False
    champion = registry.by_alias(CHAMPION)
    d2 = {(r["model_name"], r["model_version"]) for r in rows if r["event_date"] == D2}
    assert (champion.name, str(champion.version)) in d2


def test_a_session_leaves_mlflow_and_the_environment_as_it_found_them(ml_stores, monkeypatch):
    import os

    import mlflow

    _, registry = ml_stores
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    before = (dict(os.environ), mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    with registry.session() as experiment_id:
        assert mlflow.get_tracking_uri() == registry.tracking_uri and experiment_id
    assert (dict(os.environ), mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == before


def test_automl_trials_are_child_runs_and_start_from_the_defaults(ml_stores):
    lakehouse, registry = ml_stores
    write_tables(lakehouse, {"processed_data/training_dataset": dataset_rows([D1], 150)})
    assert train(lakehouse, registry, D1, families=["lr"], automl_trials=3).success
    client = registry.client()
    experiment = client.get_experiment_by_name(registry.experiment)
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "voyce.automl_trial" not in r.data.tags)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 3
    assert {r.data.params["C"] for r in children} >= {"1.0"}  # trial 0: the defaults
    best = max(r.data.metrics["validation_macro_f1"] for r in children)
    assert parent.data.metrics["automl_best_validation_macro_f1"] == pytest.approx(best)


def test_metrics_keep_a_label_never_predicted_in_the_macro_average():
    y_true = np.array(["positive", "negative", "neutral", "neutral"])
    y_pred = np.array(["positive", "negative", "positive", "positive"])
    scores = metrics(y_true, y_pred, ["negative", "neutral", "positive"])
    assert scores["neutral_recall"] == 0 and scores["neutral_support"] == 2
    # precision: negative 1, neutral 0, positive 1/3; macro = (1 + 0 + 1/3) / 3
    assert scores["macro_precision"] == pytest.approx(4 / 9, abs=1e-6)
    assert scores["accuracy"] == 0.5


def test_the_champion_must_be_confirmed_on_test():
    scores = {
        "lr": {"validation_macro_f1": 0.90, "test_macro_f1": 0.60},
        "rf": {"validation_macro_f1": 0.85, "test_macro_f1": 0.80},
        "xgb": {"validation_macro_f1": 0.80, "test_macro_f1": 0.82},
    }
    choice = choose(scores, tolerance=0.05)
    # lr wins validation but is 0.22 below the best test score: rf is the confirmed best,
    # and the challenger is the next confirmed one (xgb), not lr.
    assert (choice.champion, choice.challenger) == ("rf", "xgb")
    assert "lr" in choice.reason
    assert (choose(scores, tolerance=0.3).champion, choose(scores, 0.3).challenger) == ("lr", "rf")
    # Only one confirmed: the challenger is the next by validation.
    assert choose({k: scores[k] for k in ("lr", "xgb")}, tolerance=0.05).challenger == "lr"
    with pytest.raises(ValueError, match="at least 0"):
        choose(scores, tolerance=-0.1)


FRI, SAT, SUN, MON = (dt.date(2026, 11, 20) + dt.timedelta(days=n) for n in range(4))


def _by_day(lakehouse) -> dict:
    out: dict = {}
    for r in lakehouse.read(REGISTRY).to_pylist():
        out.setdefault(r["event_date"], []).append(r)
    return out


def test_a_range_trains_only_its_cadence_days_and_the_others_keep_their_rows(ml_stores):
    from voyce_assets_tests.training.synthetic import dataset_table, write_dataset

    lakehouse, registry = ml_stores
    write_dataset(lakehouse, dataset_table([FRI, SAT, SUN], 100))
    # One day asked alone always trains, cadence or not: Friday holds the champion.
    assert train(lakehouse, registry, FRI, families=["lr"]).success
    (friday,) = _by_day(lakehouse)[FRI]
    assert friday["stage"] == "Production"
    result = train(lakehouse, registry, FRI, last=SUN, families=["lr"])
    assert result.success
    days = _by_day(lakehouse)
    # Only Saturday (the schedule's day) trained: Friday kept its row, Sunday has none.
    assert set(days) == {FRI, SAT}
    (kept,) = days[FRI]
    for column in ("model_id", "mlflow_run_id", "metrics", "tags", "created_at"):
        assert kept[column] == friday[column]
    # The aliases moved to Saturday's version, so Friday's row is Archived.
    (saturday,) = days[SAT]
    assert (kept["stage"], saturday["stage"]) == ("Archived", "Production")
    champion = registry.by_alias(CHAMPION)
    assert (champion.name, str(champion.version)) == (
        saturday["model_name"],
        saturday["model_version"],
    )
    meta = {
        e.materialization.partition: e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    for day, rows in ((FRI, 1), (SUN, 0)):
        assert meta[day.isoformat()]["skipped"].value.startswith("not a training day")
        assert meta[day.isoformat()]["dagster/partition_row_count"].value == rows
        assert "dataset_rows" not in meta[day.isoformat()]
    assert meta[SAT.isoformat()]["dataset_rows"].value == 200
    assert "skipped" not in meta[SAT.isoformat()]
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and list(check.metadata["per_partition"].value) == [SAT.isoformat()]


def test_a_range_without_a_training_day_trains_nothing_writes_nothing_and_says_so(ml_stores):
    from voyce_assets_tests.training.synthetic import dataset_table, write_dataset

    lakehouse, registry = ml_stores
    write_dataset(lakehouse, dataset_table([SUN, MON], 100))
    assert train(lakehouse, registry, SUN, families=["lr"]).success
    before = lakehouse.read(REGISTRY).to_pylist()
    champion = registry.by_alias(CHAMPION)
    result = train(lakehouse, registry, SUN, last=MON, families=["lr"])
    assert result.success
    assert lakehouse.read(REGISTRY).to_pylist() == before
    after = registry.by_alias(CHAMPION)
    assert (after.name, after.version) == (champion.name, champion.version)
    assert len(registry.client().search_model_versions(f"name='{champion.name}'")) == 1
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and check.description.startswith("nothing to check: no day of")
    meta = {
        e.materialization.partition: e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert meta[SUN.isoformat()]["dagster/partition_row_count"].value == 1
    assert meta[MON.isoformat()]["skipped"].value.startswith("not a training day")


def test_an_unknown_weekday_fails_before_training(ml_stores):
    lakehouse, registry = ml_stores
    write_tables(lakehouse, {"processed_data/training_dataset": dataset_rows([D1], 50)})
    result = train(lakehouse, registry, D1, families=["lr"], train_on_weekdays=["Caturday"])
    assert not result.success and "train_on_weekdays ['Caturday'] not known" in _failure(result)


def test_a_backfill_run_of_one_day_follows_the_cadence(ml_stores):
    # A backfill's runs hold up to 31 days: its last may hold one, a Friday here.
    lakehouse, registry = ml_stores
    assert D1.strftime("%A") == "Friday"
    write_tables(lakehouse, {"processed_data/training_dataset": dataset_rows([D1], 120)})
    result = train(lakehouse, registry, D1, families=["lr"], tags={"dagster/backfill": "b1"})
    assert result.success, _failure(result)
    assert registry.client().search_registered_models() == []
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and check.description.startswith("nothing to check: no day of")
    # The same day asked for by itself trains.
    again = train(lakehouse, registry, D1, families=["lr"])
    assert again.success, _failure(again)
    assert len(registry.client().search_registered_models()) == 1
