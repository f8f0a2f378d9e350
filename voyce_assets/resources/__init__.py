"""Shared resources by deployment: ``local`` (default, offline) and ``prod`` (Databricks).

Assets depend on the resource *keys* below and on base classes (``AppDatabase``,
``UnityCatalog``); which implementation they get is decided here, by ``VOYCE_ENV``, and
never by an ``if`` inside an asset. A resource only one stage uses (the Transcriber, the
ingestion settings) is bound by that stage's ``resources(env)``; ``voyce_assets.definitions``
merges both.
"""

from __future__ import annotations

import os
from typing import Any

from dagster import EnvVar, ResourceDefinition

from voyce_assets.resources.app_db import AppDatabase, EmbeddedAppDatabase, PostgresAppDatabase
from voyce_assets.resources.gpu_launcher import gpu_step_launcher
from voyce_assets.resources.lakehouse import Lakehouse, cloud_storage
from voyce_assets.resources.mlflow import ModelRegistry
from voyce_assets.resources.pricing import Pricing
from voyce_assets.resources.sql_engine import DatabricksSqlEngine, DuckDBEngine, SqlEngine
from voyce_assets.resources.unity_catalog import (
    DatabricksUnityCatalog,
    LocalUnityCatalog,
    UnityCatalog,
)
from voyce_assets.settings import catalog_name, from_env, secret, secret_env, voyce_env, voyce_home

__all__ = [
    "AppDatabase",
    "Lakehouse",
    "ModelRegistry",
    "Pricing",
    "SqlEngine",
    "UnityCatalog",
    "local_resources",
    "prod_resources",
    "resources_for",
]


def local_resources() -> dict[str, Any]:
    home = voyce_home()
    lakehouse = Lakehouse(
        catalog=catalog_name("local"),
        root_uri=str(home / "lakehouse"),
        volumes_root=str(home / "volumes"),
    )
    return {
        "app_db": EmbeddedAppDatabase(
            data_dir=str(home / "pg"),
            # An EnvVar: the URL may hold a password, which the UI must never show.
            **from_env(source_url="VOYCE_SOURCE_URL"),
        ),
        "lakehouse": lakehouse,
        "unity_catalog": LocalUnityCatalog(lakehouse=lakehouse),
        "pricing": Pricing(),
        # Analytics SQL (Spark SQL files) on DuckDB over Arrow, transpiled by sqlglot.
        "sql_engine": DuckDBEngine(),
        # MLflow: a sqlite store and artifacts under $VOYCE_HOME/mlflow (`mlflow ui` opens it).
        "mlflow": ModelRegistry(
            tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
            registry_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
            artifact_root=str(home / "mlflow" / "artifacts"),
        ),
        # GPU steps (Whisper, training) run in process locally.
        "gpu_step_launcher": ResourceDefinition.none_resource(),
    }


def prod_resources() -> dict[str, Any]:
    catalog = catalog_name("prod")
    return {
        # The notebooks' secret scope voice-feedback, key postgres-host -> POSTGRES_HOST ...
        "app_db": PostgresAppDatabase(
            host=secret("postgres-host"),
            port=EnvVar.int(secret_env("postgres-port")),
            database=secret("postgres-database"),
            user=secret("postgres-user"),
            password=secret("postgres-password"),
        ),
        # Delta tables on the cloud storage behind the Unity Catalog external location, with
        # typed credentials for its scheme (s3://, abfss://, gs://).
        "lakehouse": Lakehouse(
            catalog=catalog,
            root_uri=EnvVar("VOYCE_LAKEHOUSE_ROOT"),
            storage=cloud_storage(os.environ.get("VOYCE_LAKEHOUSE_ROOT", "")),
            # /Volumes on a cluster; settable for running prod code elsewhere (the tests).
            volumes_root=os.environ.get("VOYCE_VOLUMES_ROOT", "/Volumes"),
        ),
        "unity_catalog": DatabricksUnityCatalog(
            host=EnvVar("DATABRICKS_HOST"),
            token=EnvVar("DATABRICKS_TOKEN"),
            warehouse_id=EnvVar("DATABRICKS_WAREHOUSE_ID"),
            catalog=catalog,
            location_root=EnvVar("VOYCE_LAKEHOUSE_ROOT"),
            **from_env(pii_readers_group="VOYCE_PII_READERS_GROUP"),
        ),
        "pricing": Pricing(),
        # The same SQL on a Databricks SQL warehouse, over the Unity Catalog tables.
        "sql_engine": DatabricksSqlEngine(
            host=EnvVar("DATABRICKS_HOST"),
            token=EnvVar("DATABRICKS_TOKEN"),
            warehouse_id=EnvVar("DATABRICKS_WAREHOUSE_ID"),
            catalog=catalog,
        ),
        # Databricks MLflow, models registered in Unity Catalog under <catalog>.ml_models.
        "mlflow": ModelRegistry(
            tracking_uri="databricks",
            registry_uri="databricks-uc",
            experiment="/Shared/voice_feedback_sentiment",
            model_prefix=f"{catalog}.ml_models.",
        ),
        # Whisper and training on a new GPU job cluster: the step launcher (DBFS), or Pipes
        # over Unity Catalog Volumes where the workspace has no DBFS root.
        "gpu_step_launcher": gpu_step_launcher(os.environ.get("VOYCE_GPU_LAUNCH")),
    }


RESOURCES_BY_ENV = {"local": local_resources, "prod": prod_resources}


def resources_for(env: str | None = None) -> dict[str, Any]:
    """The shared resources of ``env`` (default: ``VOYCE_ENV``)."""
    return RESOURCES_BY_ENV[env or voyce_env()]()
