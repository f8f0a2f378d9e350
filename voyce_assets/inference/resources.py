"""The inference stage's own resource: the notebook's ``BATCH_SIZE`` (here
``VOYCE_INFERENCE_BATCH_SIZE``) and ``INFERENCE_THRESHOLD_HOURS``, the A/B share and the
drift and confidence thresholds."""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from voyce_assets.settings import from_env


class InferenceSettings(ConfigurableResource):
    """How predictions are made and judged (the UI shows each value and where it comes from)."""

    batch_size: int = Field(
        default=8192,
        ge=1,
        description="Rows per predict_proba call (each call costs a fixed start-up: a forest "
        "spends ~1 s more per 20,000 rows in batches of 1,024 than in one call).",
    )
    threshold_hours: int = Field(
        default=24,
        ge=0,
        description="A feedback predicted less than this many hours ago keeps its prediction.",
    )
    challenger_percent: int = Field(
        default=10,
        ge=0,
        le=100,
        description="Share of feedback (by a hash of its id) scored by the challenger (arm B).",
    )
    low_confidence: float = Field(
        default=0.6,
        gt=0,
        le=1,
        description="A prediction below this confidence counts as low-confidence.",
    )
    reference_days: int = Field(
        default=7, ge=1, description="Days before the partition that drift is measured against."
    )
    min_drift_rows: int = Field(
        default=30, ge=1, description="Fewer rows on either side: drift is not judged."
    )


def resources(env: str) -> dict[str, Any]:
    return {
        "inference": InferenceSettings(
            **from_env(
                # Not BATCH_SIZE: in one deployment that is Whisper's (8 recordings).
                batch_size=("VOYCE_INFERENCE_BATCH_SIZE", int),
                threshold_hours=("INFERENCE_THRESHOLD_HOURS", int),
                challenger_percent=("VOYCE_CHALLENGER_PERCENT", int),
            )
        )
    }
