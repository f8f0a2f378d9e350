"""Dagster instance configs: the local dagster.yaml and the prod one on real PostgreSQL."""

import shutil
from pathlib import Path

from dagster import DagsterInstance, materialize

from voyce_assets.operations.catalog_setup import catalog_setup
from voyce_assets.resources import local_resources
from voyce_assets.settings import ensure_dagster_home

REPO = Path(__file__).resolve().parent.parent


def _assert_dead_runs_let_go(instance):
    """The daemon monitors runs, frees a dead run's pool slots within minutes, and ends runs
    stuck starting or cancelling (test_run_monitoring.py kills the workers)."""
    assert instance.run_monitoring_enabled
    assert "MONITORING" in instance.get_required_daemon_types()
    assert 0 < instance.run_monitoring_settings["free_slots_after_run_end_seconds"] <= 600
    assert 0 < instance.run_monitoring_poll_interval_seconds <= 120
    assert instance.run_monitoring_start_timeout_seconds > 0
    assert instance.run_monitoring_cancel_timeout_seconds > 0
    # The DefaultRunLauncher cannot resume a run on a new worker; it is failed instead.
    assert not instance.run_launcher.supports_resume_run
    assert instance.run_monitoring_max_resume_run_attempts == 0


def test_local_instance_settings(voyce_home):
    home = ensure_dagster_home()
    assert home == voyce_home / "dagster"
    assert (home / "dagster.yaml").read_text() == (REPO / "dagster.yaml").read_text()
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_settings("concurrency")["pools"]["default_limit"] == 1
        assert instance.get_settings("telemetry")["enabled"] is False
        _assert_dead_runs_let_go(instance)


def test_prod_instance_stores_runs_in_postgresql(pg_database, tmp_path, monkeypatch, voyce_home):
    # dagster-postgres speaks psycopg2; with SQLAlchemy 2.1 the URL must name that driver.
    monkeypatch.setenv(
        "DAGSTER_PG_URL", pg_database.replace("postgresql://", "postgresql+psycopg2://")
    )
    shutil.copy(REPO / "deploy" / "dagster-prod.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        _assert_dead_runs_let_go(instance)
        result = materialize([catalog_setup], instance=instance, resources=local_resources())
        assert result.success
        runs = instance.get_runs()
        assert [r.run_id for r in runs] == [result.run_id]
