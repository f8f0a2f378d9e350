"""Jobs the launcher tests run through the real Databricks step launcher.

Module-level and rebuilt from the environment on both sides: the host loads them for
``execute_job(reconstructable(...))`` and the "cluster" process loads them again from the
step's code pointer. Resources are prod's own bindings (``VOYCE_ENV=prod`` with local paths
in the environment), except MLflow, which prod points at Databricks: here a sqlite store
named by ``VOYCE_TEST_MLFLOW``.
"""

import os

from dagster import AssetSelection, Definitions, define_asset_job

from voyce_assets.environments import resources_for
from voyce_assets.ingestion.mirrors import raw_mirrors
from voyce_assets.partitions import daily_partitions
from voyce_assets.resources import ModelRegistry
from voyce_assets.resources.gpu_launcher import gpu_step_launcher
from voyce_assets.training.model_registry import model_registry
from voyce_assets.training.training_dataset import training_dataset
from voyce_assets.voice.processed_audio import processed_audio
from voyce_assets.voice.transcriptions import transcriptions


def _defs(launch: str | None = None) -> Definitions:
    resources = resources_for("prod")
    if launch:  # explicit: a job definition is cached per process, whatever the environment
        resources["gpu_step_launcher"] = gpu_step_launcher(launch)
    store = os.environ["VOYCE_TEST_MLFLOW"]
    resources["mlflow"] = ModelRegistry(
        tracking_uri=f"sqlite:///{store}/mlflow.db",
        registry_uri=f"sqlite:///{store}/mlflow.db",
        artifact_root=f"{store}/artifacts",
    )
    return Definitions(
        # Upstream assets too: the launcher checks their days on the host before launching.
        assets=[*raw_mirrors, processed_audio, transcriptions, training_dataset, model_registry],
        jobs=[
            define_asset_job(
                "gpu_transcriptions",
                AssetSelection.assets(transcriptions),
                partitions_def=daily_partitions,
            ),
            define_asset_job(
                "gpu_training",
                AssetSelection.assets(model_registry),
                partitions_def=daily_partitions,
            ),
        ],
        resources=resources,
    )


def gpu_transcriptions():
    return _defs("step_launcher").resolve_job_def("gpu_transcriptions")


def gpu_transcriptions_pipes():
    return _defs("pipes").resolve_job_def("gpu_transcriptions")


def gpu_training():
    return _defs("step_launcher").resolve_job_def("gpu_training")


def gpu_training_pipes():
    return _defs("pipes").resolve_job_def("gpu_training")
