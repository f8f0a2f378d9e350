"""How the training stage's store forgets an erased subject (``privacy.erasure``): an MLflow
input example that is one of the subject's feature vectors (their text's embedding among
them) is overwritten with zeros of the same shape, so every model still loads and validates.

Models trained since this change log the training split's mean as their example, never one
person's row; this finds the examples logged before. It reads the artifact store where it is
a local folder (``ModelRegistry.artifact_root``); a remote store (Databricks) is reported as
not checked (``mlflow_examples_unchecked``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from voyce_assets.catalog import table
from voyce_assets.privacy.erasure import Plan, StoreEraser

DATASET = table("processed_data/training_dataset")
EXAMPLES = ("input_example.json", "serving_input_example.json")


def _vectors(value) -> list[np.ndarray]:
    """Every innermost list of numbers in an input example's JSON."""
    if isinstance(value, dict):
        return [v for item in value.values() for v in _vectors(item)]
    if isinstance(value, list):
        if value and all(isinstance(x, int | float) for x in value):
            return [np.asarray(value, np.float64)]
        return [v for item in value for v in _vectors(item)]
    return []


def _zeroed(value):
    if isinstance(value, dict):
        return {k: _zeroed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_zeroed(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return 0.0
    return value


def subject_vectors(lakehouse, plan: Plan) -> list[np.ndarray]:
    ids = plan.feedback_ids
    if not ids or not lakehouse.exists(DATASET):
        return []
    rows = lakehouse.read(DATASET, plan.feedback_days, ["voice_feedback_id", "features"])
    return [
        np.asarray(r["features"], np.float64)
        for r in rows.to_pylist()
        if r["voice_feedback_id"] in ids
    ]


def forget(plan: Plan, resources) -> dict[str, int]:
    registry = resources.mlflow
    root = registry.artifact_root
    if not root or "://" in root:
        return {"mlflow_examples_unchecked": 1}
    vectors = subject_vectors(resources.lakehouse, plan)
    rewritten = 0
    for name in EXAMPLES:
        for path in sorted(Path(root).rglob(name)) if vectors else []:
            try:
                example = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            held = _vectors(example)
            if any(
                v.shape == s.shape and np.allclose(v, s, rtol=1e-6, atol=1e-9)
                for v in held
                for s in vectors
            ):
                path.write_text(json.dumps(_zeroed(example)))
                rewritten += 1
    return {"mlflow_input_examples": rewritten}


ERASER = StoreEraser("training", forget, frozenset({"lakehouse", "mlflow"}))
