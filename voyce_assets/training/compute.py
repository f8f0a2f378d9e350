"""``training_compute``: where a family's model is fitted, as a resource per environment.

- ``TrainingCompute`` (the laptop default): every family in the step's own process, on the
  run's device (``training/device.py``: the GPU when there is one).
- ``SparkTraining`` (prod; locally with ``VOYCE_SPARK_MASTER``): the same, except XGBoost on
  at least ``TrainingConfig.distributed_min_rows`` train rows, which trains with
  ``xgboost.spark`` across the session's workers: on Databricks the cluster's own session
  (the step runs on the GPU job cluster's driver), with ``master`` (``local[2]``) a local
  one. The train rows go to Spark as Arrow; the Spark session is only started when a
  family crosses the threshold.

Either path registers the same model: the scikit-learn pipeline of ``families.pipeline``
(median imputer + ``LabelEncoded(XGBClassifier)``). The distributed path fits the imputer on
the driver on the same rows, trains on the imputed rows with the same balanced sample
weights (a weight column), and loads the trained booster into the pipeline's classifier.
What ran is recorded with every model: ``training_path`` (``single-process`` or
``xgboost.spark``), ``num_workers`` and the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from voyce_assets.spark import is_live, local_builder
from voyce_assets.training import families as fam
from voyce_assets.training.device import Placement, for_cpu_inference

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

SINGLE, XGBOOST_SPARK = "single-process", "xgboost.spark"
# Rows per Arrow record batch handed to Spark (list offsets stay 32-bit).
BATCH_ROWS = 65536


@dataclass
class Fitted:
    """A fitted pipeline and how it was trained (recorded with the model)."""

    model: Pipeline
    how: dict[str, Any]


class TrainingCompute(ConfigurableResource):
    """Fits every family in this process (no Spark)."""

    def fit(
        self,
        family: str,
        params: dict[str, Any],
        seed: int,
        X: np.ndarray,
        y: np.ndarray,
        placement: Placement,
        distributed_min_rows: int,
    ) -> Fitted:
        """The family's pipeline fitted on (X, y) with balanced sample weights."""
        return self.single(family, params, seed, X, y, placement, self.why_single(family))

    def why_single(self, family: str) -> str:
        return "training_compute runs in the step's process (no Spark session configured)"

    def single(self, family, params, seed, X, y, placement: Placement, why: str) -> Fitted:
        model = fam.fit(fam.pipeline(family, params, seed, placement.device(family)), X, y)
        how = {
            "training_path": SINGLE,
            "training_path_reason": why,
            "num_workers": 1,
            **placement.record(family),
        }
        return Fitted(for_cpu_inference(model), how)


class SparkTraining(TrainingCompute):
    """Fits XGBoost with ``xgboost.spark`` at or above the run's row threshold; the rest,
    and XGBoost below it, in this process."""

    master: str | None = Field(
        default=None,
        description="VOYCE_SPARK_MASTER: a master to start a session with (local[2]); unset: "
        "the session that exists (the cluster's, on Databricks).",
    )
    workers: int = Field(
        default=0,
        ge=0,
        description="VOYCE_TRAINING_WORKERS: xgboost.spark workers (one barrier task each); "
        "0: the session's default parallelism, or its GPU task slots on a GPU cluster.",
    )
    driver_memory: str = Field(default="4g", description="Local masters: the driver's heap.")

    _session: Any = PrivateAttr(default=None)

    def session(self):
        if not is_live(self._session):
            from pyspark.sql import SparkSession

            if self.master:
                builder = local_builder("voyce-training", self.master, self.driver_memory)
            else:
                builder = SparkSession.builder.appName("voyce-training")
            self._session = builder.getOrCreate()
        return self._session

    def fit(self, family, params, seed, X, y, placement, distributed_min_rows) -> Fitted:
        if family != "xgb":
            why = "only the XGBoost family trains distributed"
        elif len(y) < distributed_min_rows:
            why = f"{len(y)} train rows < distributed_min_rows {distributed_min_rows}"
        else:
            return self.xgboost_spark(params, seed, X, y, placement, distributed_min_rows)
        return self.single(family, params, seed, X, y, placement, why)

    def placed(self, spark, placement: Placement) -> tuple[str, int]:
        """The distributed device and worker count: CUDA where the driver found a GPU and
        the executors have GPUs; one worker per GPU task slot on a GPU cluster (a barrier
        stage needs every worker at once), else per core."""
        conf = spark.sparkContext.getConf()
        executor_gpus = float(conf.get("spark.executor.resource.gpu.amount", "0") or 0)
        task_gpus = float(conf.get("spark.task.resource.gpu.amount", "0") or 0)
        device = "cuda" if placement.xgb == "cuda" and executor_gpus > 0 else "cpu"
        if self.workers:
            return device, self.workers
        if task_gpus > 0 and executor_gpus > 0:
            status = spark.sparkContext._jsc.sc().getExecutorMemoryStatus()
            executors = max(1, status.size() - 1)  # the driver is listed too
            return device, max(1, int(executors * executor_gpus / task_gpus))
        return device, max(1, spark.sparkContext.defaultParallelism)

    def xgboost_spark(self, params, seed, X, y, placement, distributed_min_rows) -> Fitted:
        from sklearn.impute import SimpleImputer
        from sklearn.utils.class_weight import compute_sample_weight
        from xgboost.spark import SparkXGBClassifier

        spark = self.session()
        device, workers = self.placed(spark, placement)
        model = fam.pipeline("xgb", params, seed)
        imputer = SimpleImputer(strategy="median").fit(X)
        classes, codes = np.unique(np.asarray(y), return_inverse=True)
        frame = to_spark(spark, imputer.transform(X), codes, compute_sample_weight("balanced", y))
        estimator = SparkXGBClassifier(
            features_col="features",
            label_col="label",
            weight_col="weight",
            num_workers=workers,
            device=device,
            tree_method="hist",
            random_state=seed,
            verbose=False,
            **params,
        )
        booster = estimator.fit(frame).get_booster()
        wrapper = model.named_steps["model"]
        classifier = wrapper.estimator  # the pipeline's own XGBClassifier, unfitted
        classifier.load_model(bytearray(booster.save_raw("ubj")))
        model.set_params(impute=imputer, model=wrapper.with_fitted(classifier, classes))
        how = {
            "training_path": XGBOOST_SPARK,
            "training_path_reason": f"{len(y)} train rows >= distributed_min_rows "
            f"{distributed_min_rows}",
            "num_workers": workers,
            "spark_master": spark.sparkContext.master,
            **placement.record("xgb"),
            "device": device,
            # The driver's probe found a GPU, but the executors train: say which they used.
            **(
                {
                    "device_reason": f"{placement.record('xgb').get('device_reason', '')}; "
                    "the executors have no GPU (spark.executor.resource.gpu.amount 0): cpu"
                }
                if device != placement.xgb
                else {}
            ),
        }
        return Fitted(for_cpu_inference(model), how)


def to_spark(spark, X: np.ndarray, codes: np.ndarray, weights: np.ndarray):
    """The train rows as a Spark DataFrame (``features`` array<float>, ``label``,
    ``weight``), handed over as Arrow record batches."""
    import pyarrow as pa

    X = np.asarray(X, np.float32)
    width = X.shape[1]
    batches = []
    for start in range(0, max(len(X), 1), BATCH_ROWS):
        part = X[start : start + BATCH_ROWS]
        offsets = pa.array(np.arange(0, (len(part) + 1) * width, width, dtype=np.int32))
        batches.append(
            pa.record_batch(
                {
                    "features": pa.ListArray.from_arrays(offsets, pa.array(part.ravel())),
                    "label": pa.array(codes[start : start + BATCH_ROWS].astype(np.int32)),
                    "weight": pa.array(weights[start : start + BATCH_ROWS].astype(np.float64)),
                }
            )
        )
    table = pa.Table.from_batches(batches)
    if int(spark.version.split(".")[0]) >= 4:
        return spark.createDataFrame(table)  # Spark 4 takes Arrow as it is
    # Spark 3.5 (Databricks runtimes 14-15) takes pandas, converted through Arrow.
    spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
    return spark.createDataFrame(table.to_pandas())
