"""Dagster instance configs: the local dagster.yaml and the prod one on real PostgreSQL."""

import shutil
from pathlib import Path

from dagster import DagsterInstance, materialize

from voyce_assets.operations.catalog_setup import catalog_setup
from voyce_assets.resources import local_resources
from voyce_assets.settings import ensure_dagster_home

REPO = Path(__file__).resolve().parent.parent


def test_local_instance_settings(voyce_home):
    home = ensure_dagster_home()
    assert home == voyce_home / "dagster"
    assert (home / "dagster.yaml").read_text() == (REPO / "dagster.yaml").read_text()
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_settings("concurrency")["pools"]["default_limit"] == 1
        assert instance.get_settings("telemetry")["enabled"] is False


def test_prod_instance_stores_runs_in_postgresql(pg_database, tmp_path, monkeypatch, voyce_home):
    # dagster-postgres speaks psycopg2; with SQLAlchemy 2.1 the URL must name that driver.
    monkeypatch.setenv(
        "DAGSTER_PG_URL", pg_database.replace("postgresql://", "postgresql+psycopg2://")
    )
    shutil.copy(REPO / "deploy" / "dagster-prod.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = materialize([catalog_setup], instance=instance, resources=local_resources())
        assert result.success
        runs = instance.get_runs()
        assert [r.run_id for r in runs] == [result.run_id]
