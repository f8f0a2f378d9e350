"""The GPU steps through Dagster Pipes over Unity Catalog Volumes (``VOYCE_GPU_LAUNCH=pipes``,
for workspaces without DBFS), against the local Databricks workspace: nothing touches DBFS,
the step's events come back as Pipes messages into the host's instance."""

import pytest
from dagster import DagsterEventType
from dagster._core.test_utils import instance_for_test
from deltalake import DeltaTable

from voyce_assets.catalog import table
from voyce_assets_tests.launcher import jobs
from voyce_assets_tests.launcher.test_step_launcher import (
    PIPES_FAST,
    _dataset,
    _events,
    _lakehouse,
    _step_error,
    _train,
    launcher_config,
    workspace,  # noqa: F401  (the fixture)
)


@pytest.fixture
def pipes(workspace):  # noqa: F811
    return workspace


def test_training_runs_through_pipes_on_volumes_without_dbfs(pipes, tmp_path):
    with instance_for_test() as instance:
        instance.report_runless_asset_event(_dataset(tmp_path, per_day=90))
        result = _train(instance, PIPES_FAST, jobs.gpu_training_pipes)
        assert result.success, _step_error(result)
        stored = instance.get_latest_materialization_event(
            _events(result, DagsterEventType.ASSET_MATERIALIZATION)[0].asset_key
        )
    assert not any(path.startswith("/api/2.0/dbfs") for _, path in pipes.calls)
    # The code, the step and the runner went up to the volume (Files API PUTs).
    staged = {
        p.rsplit("/", 1)[1] for m, p in pipes.calls if m == "PUT" and "/dagster_staging/" in p
    }
    assert staged == {"code.zip", "step_run_ref.pkl", "pipes_step_main.py"}
    (run,) = pipes.runs.values()
    assert run.result_state == "SUCCESS"
    env = run.spec["tasks"][0]["new_cluster"]["spark_env_vars"]
    assert {"DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES", "VOYCE_REMOTE_STEP"} <= set(env)
    # The step's own events, replayed on the host: its materialization, with its metadata.
    (materialization,) = _events(result, DagsterEventType.ASSET_MATERIALIZATION)
    assert materialization.asset_key.path == ["ml_models", "model_registry"]
    # One registry row per family trained on the day, as the step launcher's twin counts.
    assert materialization.materialization.metadata["dagster/partition_row_count"].value == 4
    assert stored is not None and stored.run_id == result.run_id
    rows = DeltaTable(_lakehouse(tmp_path).table_uri(table("ml_models/model_registry")))
    assert rows.to_pyarrow_table().num_rows == 4


def test_a_failing_step_through_pipes_brings_its_error_back(pipes, tmp_path):
    with instance_for_test() as instance:
        instance.report_runless_asset_event(_dataset(tmp_path, per_day=5))
        result = _train(instance, PIPES_FAST, jobs.gpu_training_pipes)
    assert not result.success
    assert "needs at least 20 train rows" in _step_error(result)


def test_a_crashed_run_through_pipes_fails_the_step_with_the_databricks_message(pipes, tmp_path):
    pipes.cluster_env["PYTHONHOME"] = "/nonexistent"  # the cluster's Python cannot start
    with instance_for_test() as instance:
        instance.report_runless_asset_event(_dataset(tmp_path, per_day=90))
        result = _train(instance, PIPES_FAST, jobs.gpu_training_pipes)
    assert not result.success
    (run,) = pipes.runs.values()
    assert run.result_state == "FAILED"
    assert "Task voyce-gpu-step failed with message" in _step_error(result)


def test_a_pipes_run_that_never_starts_is_cancelled_after_max_wait(pipes, tmp_path):
    import time

    pipes.start_runs = False
    config = launcher_config(
        volume={"env": "VOYCE_PIPES_VOLUME"}, poll_interval_seconds=0.5, max_wait_seconds=3
    )
    with instance_for_test() as instance:
        instance.report_runless_asset_event(_dataset(tmp_path, per_day=90))
        started = time.monotonic()
        result = _train(instance, config, jobs.gpu_training_pipes)
    assert not result.success and time.monotonic() - started < 90
    assert "took more than 3s: cancelled" in _step_error(result)
    (run,) = pipes.runs.values()
    assert (run.life_cycle_state, run.result_state) == ("TERMINATED", "CANCELED")


def test_the_launch_mode_is_a_setting_checked_when_the_code_location_loads(monkeypatch):
    from voyce_assets.resources import prod_resources
    from voyce_assets.resources.gpu_launcher import DatabricksGpuStepLauncher
    from voyce_assets.resources.pipes_launcher import DatabricksPipesStepLauncher
    from voyce_assets.settings import ConfigError

    monkeypatch.delenv("VOYCE_GPU_LAUNCH", raising=False)
    assert isinstance(prod_resources()["gpu_step_launcher"], DatabricksGpuStepLauncher)
    monkeypatch.setenv("VOYCE_GPU_LAUNCH", "pipes")
    assert isinstance(prod_resources()["gpu_step_launcher"], DatabricksPipesStepLauncher)
    monkeypatch.setenv("VOYCE_GPU_LAUNCH", "ssh")
    with pytest.raises(ConfigError, match="VOYCE_GPU_LAUNCH: must be one of step_launcher, pipes"):
        prod_resources()


def test_a_cluster_whose_bounds_are_crossed_is_refused():
    from voyce_assets.resources.gpu_launcher import DatabricksGpuStepLauncher

    launcher = DatabricksGpuStepLauncher(host="https://h", token="t", min_workers=5, max_workers=4)
    with pytest.raises(ValueError, match=r"min_workers \(5\) is above max_workers \(4\)"):
        launcher.cluster()
    azure = DatabricksGpuStepLauncher(host="https://h", token="t", cloud="azure").new_cluster()
    assert azure["azure_attributes"]["availability"] == "SPOT_WITH_FALLBACK_AZURE"
    assert "aws_attributes" not in azure
