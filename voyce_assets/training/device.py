"""Which device each family trains on: the GPU when there is one, else the CPU.

``TrainingConfig.device``: ``auto`` (the default) trains XGBoost with ``device="cuda"`` when
its build has CUDA and a CUDA device answers a one-round probe fit, and LightGBM with
``device_type="gpu"`` when a one-round probe fit on it succeeds (its build and an OpenCL
device), each else on the CPU; ``cpu`` never asks; ``cuda`` fails the step before anything
trains when XGBoost cannot reach a GPU. Logistic regression and the forest are
scikit-learn's: the CPU. The probes run once per process (a few milliseconds without a GPU).

What was chosen, and why, is recorded for every model (MLflow params, the registry row and
the partition's metadata). A model trained on the GPU is set back to the CPU before it is
logged, so any inference host loads and scores it.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from dataclasses import dataclass

import numpy as np
from dagster import Failure

DEVICES = ("auto", "cpu", "cuda")
# CUDA_VISIBLE_DEVICES values that leave no device visible.
_HIDDEN = {"", "-1", "none", "NoDevFiles"}


@dataclass(frozen=True)
class Placement:
    """The run's devices: XGBoost's (``cuda``/``cpu``), LightGBM's (``gpu``/``cpu``), why."""

    requested: str
    xgb: str
    lgbm: str
    reason: str

    def device(self, family: str) -> str:
        return {"xgb": self.xgb, "lgbm": self.lgbm}.get(family, "cpu")

    def record(self, family: str) -> dict[str, str]:
        """What is recorded with the family's model."""
        return {
            "device": self.device(family),
            "device_requested": self.requested,
            "device_reason": self.reason,
        }


def _tiny() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 4)), np.arange(32) % 2


def cuda_hidden() -> str | None:
    """Why no CUDA device can be visible to this process, or None."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in _HIDDEN:
        return f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU"
    return None


def probe_xgboost() -> tuple[bool, str]:
    """One round on ``device="cuda"``: the booster says which device it really used (a build
    or a host without a usable GPU falls back to the CPU with a warning, or raises)."""
    import xgboost

    X, y = _tiny()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            booster = (
                xgboost.XGBClassifier(n_estimators=1, max_depth=1, device="cuda", n_jobs=1)
                .fit(X, y)
                .get_booster()
            )
    except xgboost.core.XGBoostError as exc:
        return False, f"xgboost cuda probe failed: {str(exc).strip().splitlines()[0][:200]}"
    used = json.loads(booster.save_config())["learner"]["generic_param"].get("device", "cpu")
    if used.startswith("cuda"):
        return True, f"xgboost cuda probe trained on {used}"
    return False, f"xgboost cuda probe fell back to {used} (no usable CUDA device)"


@functools.cache
def xgboost_cuda() -> tuple[bool, str]:
    """Whether XGBoost can train on a CUDA device here, and why (once per process)."""
    import xgboost

    if not xgboost.build_info().get("USE_CUDA"):
        return False, f"xgboost {xgboost.__version__} is built without CUDA"
    hidden = cuda_hidden()
    if hidden:
        return False, hidden
    return probe_xgboost()


def probe_lightgbm() -> tuple[bool, str]:
    """One round with ``device_type="gpu"``: LightGBM raises when its build has no GPU
    learner or no OpenCL device answers."""
    import lightgbm

    X, y = _tiny()
    try:
        lightgbm.LGBMClassifier(
            n_estimators=1, device_type="gpu", verbosity=-1, min_child_samples=1, n_jobs=1
        ).fit(X, y)
    except lightgbm.basic.LightGBMError as exc:
        return False, f"lightgbm gpu probe failed: {str(exc).strip()[:200]}"
    return True, "lightgbm gpu probe trained"


@functools.cache
def lightgbm_gpu() -> tuple[bool, str]:
    """Whether LightGBM can train on the GPU here, and why (once per process)."""
    hidden = cuda_hidden()
    if hidden:
        return False, hidden
    return probe_lightgbm()


def place(requested: str, families: list[str]) -> Placement:
    """The devices of a run that trains ``families``; ``cuda`` without a GPU fails at once."""
    if requested not in DEVICES:
        raise ValueError(f"device {requested!r} is not one of {', '.join(DEVICES)}")
    if requested == "cpu":
        return Placement("cpu", "cpu", "cpu", "device cpu requested")
    wants = {"xgb", "cuda"} & {*families, requested}
    xgb_ok, xgb_why = xgboost_cuda() if wants else (False, "xgboost not trained")
    if requested == "cuda" and not xgb_ok:
        raise Failure(
            description=f"device cuda requested, but no GPU is usable for training here: "
            f"{xgb_why}; nothing was trained or registered (device auto trains on the CPU)",
            allow_retries=False,
        )
    lgbm_ok, lgbm_why = lightgbm_gpu() if "lgbm" in families else (False, "lightgbm not trained")
    return Placement(
        requested,
        "cuda" if xgb_ok else "cpu",
        "gpu" if lgbm_ok else "cpu",
        f"{requested}: {xgb_why}; {lgbm_why}",
    )


def for_cpu_inference(model):
    """The fitted pipeline with its booster set back to the CPU (a no-op for a CPU model):
    an inference host without a GPU loads and scores it."""
    last = model.named_steps["model"]
    inner = getattr(last, "estimator_", last)
    params = inner.get_params()
    if params.get("device") not in (None, "cpu"):
        inner.set_params(device="cpu")  # XGBoost also sets the booster's own parameter
    if params.get("device_type") not in (None, "cpu"):
        inner.set_params(device_type="cpu")  # LightGBM predicts on the CPU whatever trained it
    return model
