"""Which device each family trains on (training/device.py): the CPU here (an xgboost-cpu
build, no GPU), chosen at run time and recorded; device cuda without a GPU fails before
anything is registered."""

import json

import numpy as np
import pytest
import xgboost

from voyce_assets.models import CHAMPION
from voyce_assets.training import families as fam
from voyce_assets.training.device import (
    cuda_hidden,
    for_cpu_inference,
    place,
    probe_lightgbm,
    probe_xgboost,
)
from voyce_assets.training.model_registry import REGISTRY
from voyce_assets_tests.analytics.harness import write_tables
from voyce_assets_tests.training.synthetic import arrays, dataset_rows
from voyce_assets_tests.training.test_model_registry import D1, _failure, train

CPU_BUILD = not xgboost.build_info().get("USE_CUDA")
pytestmark = pytest.mark.skipif(not CPU_BUILD, reason="a CUDA build of xgboost: the GPU host's")


def test_auto_trains_on_the_cpu_here_and_records_why(ml_stores):
    lakehouse, registry = ml_stores
    write_tables(lakehouse, {"processed_data/training_dataset": dataset_rows([D1], 150)})
    result = train(lakehouse, registry, D1, families=["xgb", "lgbm"])
    assert result.success, _failure(result)
    rows = {r["model_type"]: r for r in lakehouse.read(REGISTRY).to_pylist()}
    for model_type in ("xgboost", "lightgbm"):
        parameters = json.loads(rows[model_type]["parameters"])
        tags = json.loads(rows[model_type]["tags"])
        assert parameters["device"] == "cpu" and parameters["training_path"] == "single-process"
        assert tags["device_requested"] == "auto"
        # Why: this xgboost build has no CUDA, and LightGBM's own GPU probe fit failed.
        assert f"xgboost {xgboost.__version__} is built without CUDA" in tags["device_reason"]
        assert "lightgbm gpu probe failed" in tags["device_reason"]
        run = registry.client().get_run(rows[model_type]["mlflow_run_id"])
        assert run.data.params["device"] == "cpu"
        assert run.data.params["device_reason"] == tags["device_reason"]
    (event,) = result.get_asset_materialization_events()
    recorded = event.materialization.metadata["training"].value
    assert {f: recorded[f]["device"] for f in ("xgb", "lgbm")} == {"xgb": "cpu", "lgbm": "cpu"}


def test_device_cuda_without_a_gpu_fails_before_anything_is_registered(ml_stores):
    lakehouse, registry = ml_stores
    write_tables(lakehouse, {"processed_data/training_dataset": dataset_rows([D1], 150)})
    result = train(lakehouse, registry, D1, families=["lr", "xgb"], device="cuda")
    assert not result.success
    message = _failure(result)
    assert "device cuda requested, but no GPU is usable for training here" in message
    assert "built without CUDA" in message
    assert not lakehouse.exists(REGISTRY)
    assert registry.by_alias(CHAMPION) is None
    assert registry.client().search_registered_models() == []
    # Not retried: another attempt would find no GPU either.
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retries == []


def test_the_probes_fall_back_to_the_cpu_without_a_gpu():
    # XGBoost asked for CUDA on a host without one trains on the CPU (with a warning): the
    # probe reads the device the booster really used.
    usable, why = probe_xgboost()
    assert not usable and "fell back to cpu" in why
    # LightGBM raises (no GPU learner, or no OpenCL device): the probe says why.
    usable, why = probe_lightgbm()
    assert not usable and why.startswith("lightgbm gpu probe failed: ")
    assert place("cpu", ["xgb", "lgbm"]).reason == "device cpu requested"


def test_cuda_visible_devices_can_hide_every_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert cuda_hidden() == "CUDA_VISIBLE_DEVICES='-1' hides every GPU"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert cuda_hidden() is None


def test_a_model_trained_for_the_gpu_is_logged_for_cpu_inference():
    X, y = arrays(120)
    model = fam.fit(fam.pipeline("xgb", fam.DEFAULTS["xgb"] | {"n_estimators": 5}, 0, "cuda"), X, y)
    model = for_cpu_inference(model)
    booster = model.named_steps["model"].estimator_
    assert booster.get_params()["device"] == "cpu"
    config = json.loads(booster.get_booster().save_config())
    assert config["learner"]["generic_param"]["device"] == "cpu"
    np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1.0, rtol=1e-5)
