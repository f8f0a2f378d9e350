"""Shared fixtures: one real embedded PostgreSQL per test session, a database per test.

The server's data (and unix socket) live in a short directory under /tmp: socket paths are
limited to 107 bytes, which deep pytest tmp dirs exceed.
"""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

from voyce_assets.resources.app_db import libpq_url, temporary_embedded_server


@pytest.fixture(scope="session")
def pg_server():
    """(data_dir, SQLAlchemy URL of the server's postgres database)."""
    with temporary_embedded_server("vt") as server:
        yield server


@pytest.fixture
def pg_database(pg_server):
    """A fresh, empty database on the session server; returns its libpq URL."""
    _, server_url = pg_server
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield libpq_url(server_url.set(database=name), show_password=True)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def voyce_home(monkeypatch, tmp_path):
    """An isolated VOYCE_HOME (and DAGSTER_HOME below it) for one test."""
    home = tmp_path / "voyce"
    home.mkdir()
    monkeypatch.setenv("VOYCE_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    for name in list(os.environ):
        if name in TUNABLES or name == "VOYCE_ENV":
            monkeypatch.delenv(name, raising=False)
    return home


# Settings a developer's shell may have set; tests start without them.
TUNABLES = (
    "VOYCE_SOURCE_URL",
    "VOYCE_FULL_SYNC_DAYS",
    "VOYCE_CDC_LAG_SECONDS",
    "VOYCE_CDC_MAX_RUNS",
    "VOYCE_CHECKSUM_EVERY_DAYS",
    "WHISPER_ENGINE",
    "WHISPER_MODEL_SIZE",
    "WHISPER_DEVICE",
    "WHISPER_LANGUAGE",
    "BATCH_SIZE",
    "VOYCE_REDACT_PII",
    "VOYCE_SPARK_MASTER",
    "VOYCE_SPARK_TASKS",
    "VOYCE_TRAINING_WORKERS",
    "VOYCE_SPARK_SYNC_MIN_ROWS",
    "VOYCE_SPARK_SYNC_PARTITIONS",
    "VOYCE_SPARK_SYNC_MASTER",
    "INFERENCE_THRESHOLD_HOURS",
    "VOYCE_INFERENCE_BATCH_SIZE",
    "VOYCE_CHALLENGER_PERCENT",
)


@pytest.fixture
def ml_stores(tmp_path):
    """A Lakehouse and an MLflow sqlite store (tracking + registry) in the test's folder."""
    from voyce_assets.resources import Lakehouse, ModelRegistry

    lakehouse = Lakehouse(catalog="c", root_uri=str(tmp_path / "lake"), volumes_root=str(tmp_path))
    db = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    registry = ModelRegistry(
        tracking_uri=db, registry_uri=db, artifact_root=str(tmp_path / "mlflow" / "artifacts")
    )
    return lakehouse, registry


PROD_ENV = {
    "VOYCE_ENV": "prod",
    "POSTGRES_HOST": "db.internal.example",
    "POSTGRES_PORT": "5432",
    "POSTGRES_DATABASE": "voyce",
    "POSTGRES_USER": "pipeline",
    "POSTGRES_PASSWORD": "prod-secret-never-logged",
    "VOYCE_LAKEHOUSE_ROOT": "s3://voyce-lakehouse/uc",
    "DATABRICKS_HOST": "https://dbc-1234.cloud.databricks.com",
    "DATABRICKS_TOKEN": "dapi-secret-never-logged",
    "DATABRICKS_WAREHOUSE_ID": "abc123",
    "WHISPER_MODEL_SIZE": "small",
}


@pytest.fixture
def prod_env(monkeypatch):
    for key, value in PROD_ENV.items():
        monkeypatch.setenv(key, value)
    return dict(PROD_ENV)


def subprocess_env(**overrides: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VOYCE_", "DATABRICKS_", "POSTGRES_")) and k not in TUNABLES
    }
    env.update(overrides)
    return env
