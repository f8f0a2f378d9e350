"""The GPU launchers against Databricks failing the way it does: a run that queues and
terminates slowly, 429/500/503 answers while it is followed, a cluster that fails, a skipped
run, a wheel that cannot be installed, and a relaunch while an earlier run of the same step
and partition is still live (two clusters must never write the same partition). Each with
both launchers, against the local workspace (voyce_assets_tests/fakes/databricks_workspace.py).
"""

import time

import pytest
from dagster import DagsterEventType
from dagster._core.test_utils import instance_for_test
from databricks.sdk import WorkspaceClient
from databricks.sdk.service import jobs as sdk_jobs

from voyce_assets.resources.databricks_runs import TRANSIENT_READS
from voyce_assets_tests.launcher import jobs
from voyce_assets_tests.launcher.test_step_launcher import (
    FAST,
    PIPES_FAST,
    _dataset,
    _step_error,
    _train,
    launcher_config,
    workspace,  # noqa: F401  (the fixture)
)

LAUNCHERS = {
    "step_launcher": (jobs.gpu_training, FAST),
    "pipes": (jobs.gpu_training_pipes, PIPES_FAST),
}
STEP = "voyce ml_models__model_registry [2026-05-01]"


@pytest.fixture(params=sorted(LAUNCHERS))
def launch(request):
    return request.param


def _with(launch: str, **fields) -> dict:
    """The launcher's fast test config, with ``fields`` too."""
    fast = LAUNCHERS[launch][1]["resources"]["gpu_step_launcher"]["config"]
    return launcher_config(**{**fast, **fields})


def _run(workspace, tmp_path, launch, config=None, per_day=90):  # noqa: F811
    job, fast = LAUNCHERS[launch]
    with instance_for_test() as instance:
        instance.report_runless_asset_event(_dataset(tmp_path, per_day=per_day))
        return _train(instance, config or fast, job)


def test_a_run_that_queues_is_throttled_and_terminates_slowly_still_succeeds(
    workspace,  # noqa: F811
    tmp_path,
    launch,
):
    workspace.queued_seconds = 1.0
    # Longer than a poll: the launchers see TERMINATING (no result state yet) several times.
    workspace.terminating_seconds = 1.5
    workspace.fail_requests("/jobs/runs/get", 429, retry_after=1)
    workspace.fail_requests("/jobs/runs/get", 503, retry_after=1)
    workspace.fail_requests("/jobs/runs/get", 500, times=2)
    result = _run(workspace, tmp_path, launch)
    assert result.success, _step_error(result)
    (run,) = workspace.runs.values()
    assert run.history == ["QUEUED", "PENDING", "RUNNING", "TERMINATING", "TERMINATED"]
    assert run.result_state == "SUCCESS"
    assert workspace.faults == []  # every failure was met
    assert run.spec["run_name"] == STEP


@pytest.mark.parametrize(
    "end, expected",
    [
        (
            (
                "INTERNAL_ERROR",
                "FAILED",
                "Cluster 0501-abc terminated. Reason: Cloud provider launch failure "
                "(CLOUD_PROVIDER_LAUNCH_FAILURE): InsufficientInstanceCapacity for g5.xlarge",
            ),
            "ended INTERNAL_ERROR (FAILED): Cluster 0501-abc terminated. Reason: Cloud provider",
        ),
        (
            (
                "SKIPPED",
                None,
                "Skipping this run because the limit of 1 maximum concurrent runs was reached.",
            ),
            "Databricks skipped run",
        ),
    ],
    ids=["internal_error", "skipped"],
)
def test_a_run_that_ends_before_the_step_ran_fails_the_step_with_databricks_message(
    workspace,  # noqa: F811
    tmp_path,
    launch,
    end,
    expected,
):
    workspace.end_next_run = end
    started = time.monotonic()
    result = _run(workspace, tmp_path, launch)
    assert time.monotonic() - started < 60  # never waits for events that cannot come
    assert not result.success
    error = _step_error(result)
    assert expected in error and end[2] in error
    (run,) = workspace.runs.values()
    assert run.process is None


def test_a_wheel_that_cannot_be_installed_fails_the_run_and_the_step(
    workspace,  # noqa: F811
    tmp_path,
    launch,
    monkeypatch,
):
    missing = "/Volumes/voice_feedback_prod/ml_models/artifacts/wheels/voyce_assets-9.9.9.whl"
    monkeypatch.setenv("VOYCE_WHEEL", missing)
    result = _run(workspace, tmp_path, launch, _with(launch, wheel={"env": "VOYCE_WHEEL"}))
    assert not result.success
    error = _step_error(result)
    assert "Library installation failed for library due to user error" in error
    assert missing in error and "ERROR_NO_SUCH_FILE_OR_DIRECTORY" in error
    (run,) = workspace.runs.values()
    assert (run.life_cycle_state, run.process) == ("INTERNAL_ERROR", None)


def _stale_run(workspace, name: str) -> int:  # noqa: F811
    """A run another attempt left live: it writes until it is killed."""
    script = workspace.dbfs("/stale/main.py")
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text("import time\ntime.sleep(300)\n")
    client = WorkspaceClient(host=workspace.host, token=workspace.token)
    task = {
        "task_key": "voyce-gpu-step",
        "new_cluster": {"spark_version": "15.4.x-gpu-ml-scala2.12", "num_workers": 1},
        "spark_python_task": {"python_file": "dbfs:/stale/main.py"},
    }
    run_id = client.jobs.submit(run_name=name, tasks=[sdk_jobs.SubmitTask.from_dict(task)]).bind()[
        "run_id"
    ]
    deadline = time.monotonic() + 30
    while workspace.runs[run_id].life_cycle_state != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return run_id


def test_a_relaunch_ends_the_live_run_of_the_same_step_and_partition_before_submitting(
    workspace,  # noqa: F811
    tmp_path,
    launch,
):
    workspace.cancel_seconds = 1.5  # a cancel takes a while to end a run, as on Databricks
    stale = _stale_run(workspace, STEP)
    other_day = _stale_run(workspace, STEP.replace("2026-05-01", "2026-05-02"))
    result = _run(workspace, tmp_path, launch)
    assert result.success, _step_error(result)
    new = max(workspace.runs.values(), key=lambda r: r.run_id)
    old = workspace.runs[stale]
    # The old run had ended before the new one was submitted: never two at once.
    assert old.ended_at is not None and old.ended_at <= new.submitted_at
    assert (old.life_cycle_state, old.result_state) == ("TERMINATED", "CANCELED")
    assert old.process.returncode < 0
    assert new.spec["run_name"] == STEP and new.result_state == "SUCCESS"
    # Another partition's run is no relaunch of this step: left alone.
    assert workspace.runs[other_day].life_cycle_state == "RUNNING"
    workspace.cancel(other_day)


def test_a_relaunch_refuses_to_start_beside_a_run_that_does_not_end(
    workspace,  # noqa: F811
    tmp_path,
    launch,
):
    workspace.cancel_seconds = 60  # the cancel hangs
    stale = _stale_run(workspace, STEP)
    result = _run(workspace, tmp_path, launch, _with(launch, cancel_wait_seconds=2))
    assert not result.success
    assert f"Databricks run {stale} ({STEP}) had not ended 2s after it was cancelled" in (
        _step_error(result)
    )
    assert list(workspace.runs) == [stale]  # nothing submitted beside it
    assert ("POST", "/api/2.2/jobs/runs/cancel") in workspace.calls


def test_a_step_that_gives_up_on_its_run_waits_until_the_run_has_ended(
    workspace,  # noqa: F811
    tmp_path,
    launch,
):
    workspace.cancel_seconds = 1.5
    # One more failed read than the launchers accept in a row (the step launcher reads the
    # run once before polling, for its URL).
    workspace.fail_requests("/jobs/runs/get", 500, times=TRANSIENT_READS + 1)
    job, fast = LAUNCHERS[launch]
    with instance_for_test() as instance:
        instance.report_runless_asset_event(_dataset(tmp_path, per_day=90))
        result = _train(instance, fast, job)
        (failure,) = instance.all_logs(result.run_id, of_type=DagsterEventType.STEP_FAILURE)
    assert not result.success
    assert "Internal error while processing the request" in _step_error(result)
    (run,) = workspace.runs.values()
    # Cancelled, and over before the step failed: a relaunch cannot overlap it.
    assert run.ended_at is not None and run.ended_at <= failure.timestamp
    assert (run.life_cycle_state, run.result_state) == ("TERMINATED", "CANCELED")
