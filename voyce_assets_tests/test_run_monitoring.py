"""A run worker killed while its step holds a pool slot (issue 20, item 2): each shipped
instance config (dagster.yaml; deploy/dagster-prod.yaml on PostgreSQL) must fail the dead run,
free its slot, and let the next run in the pool finish.

A real instance configured by a copy of the shipped file, a real gRPC code server
(run_monitoring_location.py) and the DefaultRunLauncher, driven by the daemons' own iterations:
the queued run coordinator's dequeue and the monitoring daemon's. The copy shortens only the
slot wait the shipped file sets, so a key removed from it is missing here too.
"""

import os
import signal
import time
from pathlib import Path

import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.daemon import MonitoringDaemon
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)
from dagster._grpc.types import GetCurrentRunsResult
from dagster._serdes import deserialize_value

REPO = Path(__file__).resolve().parent.parent
LOCATION = "run_monitoring"
INGESTION = {"voyce/ingestion": "app_tables"}
# Seconds the test may wait for one transition (a run worker starting, a run finishing).
WAIT = 90


def _instance_dir(tmp_path: Path, shipped: str) -> tuple[Path, int]:
    """A DAGSTER_HOME holding the shipped file with a short slot wait, and its gpu limit."""
    config = yaml.safe_load((REPO / shipped).read_text())
    monitoring = config.get("run_monitoring") or {}
    if "free_slots_after_run_end_seconds" in monitoring:
        monitoring["free_slots_after_run_end_seconds"] = 1
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home, config["concurrency"]["pools"]["default_limit"]


def _submit(context, job_name: str, tags=None, location_name: str = LOCATION) -> str:
    """Queue a run of the location's job, built as the UI's launch builds it."""
    workspace = context.create_request_context()
    location = workspace.get_code_location(location_name)
    remote_job = location.get_repository("__repository__").get_full_job(job_name)
    plan = location.get_execution_plan(remote_job, {}, None, None)
    run = context.instance.create_run(
        job_name=job_name,
        run_id=None,
        run_config={},
        resolved_op_selection=None,
        step_keys_to_execute=None,
        status=DagsterRunStatus.NOT_STARTED,
        op_selection=None,
        root_run_id=None,
        parent_run_id=None,
        tags=tags or {},
        job_snapshot=remote_job.job_snapshot,
        execution_plan_snapshot=plan.execution_plan_snapshot,
        parent_job_snapshot=remote_job.parent_job_snapshot,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
        asset_selection=None,
        asset_check_selection=None,
        asset_graph=workspace.asset_graph,
    )
    return context.instance.submit_run(run.run_id, workspace).run_id


def _wait(what: str, condition, *, tick=None):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if tick:
            tick()
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {WAIT}s waiting for {what}")


def _status(instance: DagsterInstance, run_id: str) -> DagsterRunStatus:
    return instance.get_run_by_id(run_id).status


def _gpu_holders(instance: DagsterInstance) -> set[str]:
    """Runs holding a gpu slot, or a step of which is assigned one."""
    info = instance.event_log_storage.get_concurrency_info("gpu")
    return info.active_run_ids | {s.run_id for s in info.pending_steps}


def _event_pid(instance: DagsterInstance, run_id: str, event_type) -> int | None:
    events = instance.all_logs(run_id, of_type=event_type)
    return events[0].dagster_event.pid if events else None


def _parent_pid(pid: int) -> int:
    # /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ")".
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _started(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat): with the pid, who it is."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except FileNotFoundError:
        return None


def _kill(process: tuple[int, str] | None) -> None:
    """SIGKILL a process this test started, unless it is gone (its pid may name another)."""
    if process and _started(process[0]) == process[1]:
        os.kill(process[0], signal.SIGKILL)


@pytest.fixture(params=["dagster.yaml", "deploy/dagster-prod.yaml"])
def shipped(request, monkeypatch):
    """Each shipped instance config; prod's on a real PostgreSQL, as deployed."""
    if "prod" in request.param:
        url = request.getfixturevalue("pg_database")
        # dagster-postgres speaks psycopg2; with SQLAlchemy 2.1 the URL must name that driver.
        monkeypatch.setenv("DAGSTER_PG_URL", url.replace("postgresql://", "postgresql+psycopg2://"))
    return request.param


def _let_go(context, run_ids, location_name: str = LOCATION) -> None:
    """End the runs the test left going, then wait until the code server has let go of every
    run worker: it reads the instance for each, and the instance's database goes next."""
    for run_id in run_ids:
        if not context.instance.get_run_by_id(run_id).is_finished:
            context.instance.run_launcher.terminate(run_id)
    client = context.create_request_context().get_code_location(location_name).client
    _wait(
        "the code server to let go of its runs",
        lambda: not deserialize_value(client.get_current_runs(), GetCurrentRunsResult).current_runs,
    )


def test_killed_run_workers_free_their_gpu_slots(tmp_path, shipped):
    """As many run workers as the gpu pool has slots are killed mid-step (prod: two), so the
    pool is full of dead runs; the next gpu run still finishes."""
    home, gpu_limit = _instance_dir(tmp_path, shipped)
    processes = []  # (pid, start time) of the run workers and their step children
    runs = []
    with (
        DagsterInstance.from_config(str(home)) as instance,
        WorkspaceProcessContext(
            instance,
            ModuleTarget(
                module_name="voyce_assets_tests.run_monitoring_location",
                attribute="defs",
                working_directory=str(REPO),
                location_name=LOCATION,
            ),
        ) as context,
        QueuedRunCoordinatorDaemon(interval_seconds=1) as dequeuer,
        MonitoringDaemon(interval_seconds=instance.run_monitoring_poll_interval_seconds) as monitor,
    ):
        # dagster-daemon (started by `dagster dev`) runs the monitoring daemon only when enabled.
        assert MonitoringDaemon.daemon_type() in instance.get_required_daemon_types()

        def dequeue():
            list(dequeuer.run_iteration(context))

        def monitor_once():
            list(monitor.run_iteration(context))

        def started(run_id):
            return _event_pid(instance, run_id, DagsterEventType.STEP_START)

        try:
            # The first holder is an ingestion run too.
            holders = [
                _submit(context, "hold_gpu_job", INGESTION if i == 0 else None)
                for i in range(gpu_limit)
            ]
            runs += holders
            _wait("the holders' steps to start", lambda: all(map(started, holders)), tick=dequeue)
            assert _gpu_holders(instance) == set(holders)
            workers = []
            for holder in holders:
                worker_pid = _event_pid(instance, holder, DagsterEventType.RUN_START)
                step_pid = started(holder)
                # The step runs in a child of the run worker; the worker holds the slot.
                assert _parent_pid(step_pid) == worker_pid != os.getpid()
                workers.append((worker_pid, _started(worker_pid)))
                processes += [workers[-1], (step_pid, _started(step_pid))]

            # Queued behind the holders: one by the ingestion run limit, one by the pool.
            sync = _submit(context, "sync_job", INGESTION)
            gpu = _submit(context, "use_gpu_job")
            runs += [sync, gpu]
            dequeue()
            assert _status(instance, sync) == _status(instance, gpu) == DagsterRunStatus.QUEUED

            for worker in workers:
                _kill(worker)
            # The code server that launched each run sees its worker gone and fails the run.
            _wait(
                "the dead runs to fail",
                lambda: all(instance.get_run_by_id(h).is_finished for h in holders),
            )
            assert {_status(instance, h) for h in holders} == {DagsterRunStatus.FAILURE}
            # ...but failing them frees no slot (the bug): the next gpu run stays queued.
            assert _gpu_holders(instance) == set(holders)
            dequeue()
            assert _status(instance, gpu) == DagsterRunStatus.QUEUED
            # The ingestion run limit counts runs in progress only: it freed on its own.
            assert _status(instance, sync) != DagsterRunStatus.QUEUED

            # The monitoring daemon frees the dead runs' slots once they have been over for
            # free_slots_after_run_end_seconds.
            _wait(
                "the dead runs' slots to be freed",
                lambda: not _gpu_holders(instance),
                tick=monitor_once,
            )
            _wait(
                "the next gpu run to finish",
                lambda: instance.get_run_by_id(gpu).is_finished,
                tick=dequeue,
            )
            assert _status(instance, gpu) == DagsterRunStatus.SUCCESS
            _wait("the sync run to finish", lambda: instance.get_run_by_id(sync).is_finished)
            assert _status(instance, sync) == DagsterRunStatus.SUCCESS
        finally:
            # A killed worker's step child outlives it (it would sleep on): end it, and any
            # worker the test did not get to kill.
            for process in processes:
                _kill(process)
            _let_go(context, runs)
