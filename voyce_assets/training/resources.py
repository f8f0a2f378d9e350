"""The training stage's own resource: ``training_compute``, where a family's model is fitted.
Prod: the GPU job cluster's own Spark session, so XGBoost above
``TrainingConfig.distributed_min_rows`` trains with ``xgboost.spark`` across its workers
(``VOYCE_TRAINING_WORKERS`` of them when set); a laptop: the step's own process, unless
``VOYCE_SPARK_MASTER`` names a Spark master (``local[2]``)."""

from __future__ import annotations

from typing import Any

from voyce_assets.settings import from_env
from voyce_assets.training.compute import SparkTraining, TrainingCompute


def training_compute(env: str) -> TrainingCompute:
    spark = from_env(master="VOYCE_SPARK_MASTER", workers=("VOYCE_TRAINING_WORKERS", int))
    if env == "prod" or "master" in spark:
        return SparkTraining(**spark)
    return TrainingCompute()


def resources(env: str) -> dict[str, Any]:
    return {"training_compute": training_compute(env)}
