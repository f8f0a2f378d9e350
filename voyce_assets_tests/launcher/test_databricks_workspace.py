"""The local Databricks workspace itself, through the official SDK: what the launchers rely
on beyond the happy path they take (DBFS verbs Pipes' DBFS variant uses, the Files API
listing, errors, run states, timeouts, path containment), and the ways the real services
fail: queued and terminating runs, asynchronous cancels, cluster and library failures,
skipped runs, 429/500/503 answers."""

import base64
import io
import time
import zipfile

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import InternalError, NotFound
from databricks.sdk.service import jobs

from voyce_assets_tests.fakes.databricks_workspace import FakeWorkspace


@pytest.fixture
def fake(tmp_path):
    with FakeWorkspace(root=tmp_path / "ws", token="t0k") as fake:
        yield fake


@pytest.fixture
def client(fake, monkeypatch):
    for name in ("DATABRICKS_CONFIG_PROFILE", "DATABRICKS_CLIENT_ID", "DATABRICKS_HOST"):
        monkeypatch.delenv(name, raising=False)
    return WorkspaceClient(host=fake.host, token=fake.token)


def test_dbfs_verbs(client, fake):
    client.dbfs.mkdirs("/tmp/pipes")
    client.dbfs.put("/tmp/pipes/context.json", contents=base64.b64encode(b'{"a": 1}').decode())
    status = client.dbfs.get_status("/tmp/pipes")
    assert status.is_dir
    read = client.dbfs.read("/tmp/pipes/context.json")
    assert base64.b64decode(read.data) == b'{"a": 1}' and read.bytes_read == 8
    with pytest.raises(NotFound):
        client.dbfs.read("/tmp/pipes/1.json")
    client.dbfs.delete("/tmp/pipes", recursive=True)
    with pytest.raises(NotFound):
        client.dbfs.get_status("/tmp/pipes")
    # Large files go up in blocks and come back whole (the launcher's put_file).
    blob = bytes(range(256)) * 10_000
    handle = client.dbfs.create("/stage/code.zip", overwrite=True).handle
    for i in range(0, len(blob), 1 << 20):
        client.dbfs.add_block(handle, base64.b64encode(blob[i : i + (1 << 20)]).decode())
    client.dbfs.close(handle)
    assert fake.dbfs("dbfs:/stage/code.zip").read_bytes() == blob


def test_files_api_and_containment(client, fake):
    volume = fake.root / "Volumes" / "c" / "s" / "v"
    client.files.create_directory(f"{volume}/tmp/x")
    client.files.upload(f"{volume}/tmp/x/1.json", io.BytesIO(b"hello"), overwrite=True)
    listed = list(client.files.list_directory_contents(f"{volume}/tmp/x"))
    assert [(e.name, e.is_directory) for e in listed] == [("1.json", False)]
    assert client.files.download(f"{volume}/tmp/x/1.json").contents.read() == b"hello"
    with pytest.raises(NotFound):
        client.files.download(f"{volume}/tmp/x/2.json")
    client.files.delete(f"{volume}/tmp/x/1.json")
    client.files.delete_directory(f"{volume}/tmp/x")
    assert not (volume / "tmp" / "x").exists()
    # A path from outside the workspace is refused, never served.
    with pytest.raises(Exception, match="outside the workspace"):
        client.files.download("/etc/passwd")
    with pytest.raises(Exception, match="outside the workspace"):
        client.dbfs.read("/../../etc/passwd")


def _submit(client, fake, script: str, libraries=None, run_name="t", **task):
    path = fake.dbfs("/scripts/main.py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script)
    return client.jobs.submit(
        run_name=run_name,
        tasks=[
            jobs.SubmitTask.from_dict(
                {
                    "task_key": "t",
                    "new_cluster": {"spark_version": "15.4.x-gpu-ml-scala2.12", "num_workers": 1},
                    "libraries": libraries or [],
                    "spark_python_task": {"python_file": "dbfs:/scripts/main.py", **task},
                }
            )
        ],
    ).bind()["run_id"]


def _wait(client, run_id, timeout=60, until="TERMINATED"):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        run = client.jobs.get_run(run_id)
        state = run.state.life_cycle_state.value
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == until:
            return run, seen
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never terminated: {seen}")


def test_a_run_really_runs_its_script_with_dbutils_and_mapped_paths(client, fake):
    script = (
        "import sys, time\n"
        "assert dbutils is None and sc is None\n"
        "time.sleep(0.5)\n"
        "import os; os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True)\n"
        "open(sys.argv[1], 'w').write('ran')\n"
    )
    run_id = _submit(client, fake, script, parameters=["/dbfs/out/ran.txt"])
    run, seen = _wait(client, run_id)
    assert seen[-3:] == ["RUNNING", "TERMINATING", "TERMINATED"]
    assert run.state.result_state.value == "SUCCESS"
    assert run.run_page_url.endswith(f"/run/{run_id}")
    assert fake.dbfs("/out/ran.txt").read_text() == "ran"
    assert client.clusters.get("c1").cluster_id == "c1"


def test_a_failing_script_and_a_timeout(client, fake):
    failed = _submit(client, fake, "raise SystemExit('boom: no GPU')\n")
    run, _ = _wait(client, failed)
    assert run.state.result_state.value == "FAILED"
    assert "boom: no GPU" in run.state.state_message

    fake.dbfs("/scripts/main.py").write_text("import time\ntime.sleep(60)\n")
    slow = client.jobs.submit(
        run_name="slow",
        timeout_seconds=1,
        tasks=[
            jobs.SubmitTask.from_dict(
                {
                    "task_key": "t",
                    "new_cluster": {"spark_version": "x", "num_workers": 1},
                    "spark_python_task": {"python_file": "dbfs:/scripts/main.py"},
                }
            )
        ],
    ).bind()["run_id"]
    run, _ = _wait(client, slow)
    assert run.state.result_state.value == "TIMEDOUT"
    assert fake.runs[slow].process.returncode < 0


def test_wrong_token_is_refused(fake):
    bad = WorkspaceClient(host=fake.host, token="wrong")
    with pytest.raises(Exception, match="bad token"):
        bad.dbfs.get_status("/")
    assert fake.calls == [("GET", "/api/2.0/dbfs/get-status")]  # refused, nothing done


def test_a_run_queues_then_terminates_before_it_is_terminated(client, fake):
    fake.queued_seconds, fake.terminating_seconds = 0.3, 0.3
    run_id = _submit(client, fake, "import time; time.sleep(0.3)\n")
    run, seen = _wait(client, run_id)
    assert fake.runs[run_id].history == [
        "QUEUED",
        "PENDING",
        "RUNNING",
        "TERMINATING",
        "TERMINATED",
    ]
    assert {"QUEUED", "RUNNING", "TERMINATING"} <= set(seen)
    assert run.state.result_state.value == "SUCCESS"
    assert run.status.state.value == "TERMINATED"


def test_a_cancel_is_asynchronous_as_on_databricks(client, fake):
    fake.cancel_seconds = 0.5
    run_id = _submit(client, fake, "import time; time.sleep(60)\n")
    while fake.runs[run_id].life_cycle_state != "RUNNING":
        time.sleep(0.05)
    client.jobs.cancel_run(run_id)
    state = client.jobs.get_run(run_id).state
    # Still being cancelled: no result yet, and the task's process still alive.
    assert state.life_cycle_state.value == "TERMINATING" and state.result_state is None
    assert fake.runs[run_id].process.poll() is None
    run, _ = _wait(client, run_id)
    assert run.state.result_state.value == "CANCELED"
    assert fake.runs[run_id].process.returncode < 0
    client.jobs.cancel_run(run_id)  # cancelling an ended run is no error


def test_runs_list_pages_through_the_live_one_time_runs(client, fake):
    fake.list_page_size = 2
    fake.start_runs = False  # all stay PENDING
    ids = [_submit(client, fake, "pass\n", run_name=f"r{i}") for i in range(5)]
    fake.runs[ids[0]].move("TERMINATED")
    listed = list(client.jobs.list_runs(active_only=True, run_type=jobs.RunType.SUBMIT_RUN))
    assert [r.run_id for r in listed] == ids[:0:-1]  # newest first, the ended one left out
    assert [r.run_name for r in listed] == ["r4", "r3", "r2", "r1"]
    assert len(list(client.jobs.list_runs(run_type=jobs.RunType.SUBMIT_RUN))) == 5


@pytest.mark.parametrize(
    "end",
    [
        ("INTERNAL_ERROR", "FAILED", "Cluster fake-1 terminated. Reason: Cloud provider launch"),
        ("SKIPPED", None, "Skipping this run: the maximum number of concurrent runs is reached"),
    ],
)
def test_a_run_can_end_before_its_script_starts(client, fake, end):
    fake.end_next_run = end
    run_id = _submit(client, fake, "open('/tmp/never', 'w')\n")
    run, _ = _wait(client, run_id, until=end[0])
    assert run.state.life_cycle_state.value == end[0]
    assert (run.state.result_state.value if run.state.result_state else None) == end[1]
    assert run.state.state_message == end[2]
    assert fake.runs[run_id].process is None  # nothing ran
    assert fake.end_next_run is None  # only the next run


def _wheel(path, valid=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    if not valid:
        path.write_bytes(b"<html>not a wheel</html>")
        return path
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("voyce_assets-0.1.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
        archive.writestr("voyce_assets-0.1.0.dist-info/METADATA", "Name: voyce-assets\n")
    return path


def test_cluster_libraries_are_installed_or_fail_the_run(client, fake):
    good = "/Volumes/c/s/v/wheels/voyce_assets-0.1.0-py3-none-any.whl"
    _wheel(fake.root / good.lstrip("/"))
    libraries = [{"whl": good}, {"pypi": {"package": "mlflow>=2.9"}}]
    ok, _ = _wait(client, _submit(client, fake, "pass\n", libraries=libraries))
    assert ok.state.result_state.value == "SUCCESS"

    bad = "/Volumes/c/s/v/wheels/voyce_assets-0.2.0-py3-none-any.whl"
    cases = {
        "missing": ([{"whl": "dbfs:/wheels/none.whl"}], "ERROR_NO_SUCH_FILE_OR_DIRECTORY"),
        "not a wheel": ([{"whl": bad}], "ERROR_INVALID_WHEEL"),
        "bad requirement": ([{"pypi": {"package": "mlflow>=>2"}}], "ERROR_PIP_INSTALL"),
    }
    _wheel(fake.root / bad.lstrip("/"), valid=False)
    for libraries, code in cases.values():
        run_id = _submit(client, fake, "open('/tmp/never', 'w')\n", libraries=libraries)
        run, _ = _wait(client, run_id, until="INTERNAL_ERROR")
        assert run.state.result_state.value == "FAILED"
        assert run.state.state_message.startswith("Library installation failed for library")
        assert code in run.state.state_message
        assert run.status.termination_details.code.value == "LIBRARY_INSTALLATION_ERROR"
        assert fake.runs[run_id].process is None


def test_throttling_and_unavailability_are_retried_by_the_sdk_a_500_is_not(client, fake):
    run_id = _submit(client, fake, "pass\n")
    fake.fail_requests("/jobs/runs/get", 429, retry_after=1)
    fake.fail_requests("/jobs/runs/get", 503, retry_after=1)
    started = time.monotonic()
    assert client.jobs.get_run(run_id).run_id == run_id
    assert time.monotonic() - started >= 2  # it waited as Retry-After said, twice
    gets = [p for _, p in fake.calls if p.endswith("/runs/get")]
    assert len(gets) == 3
    fake.fail_requests("/jobs/runs/get", 500)
    with pytest.raises(InternalError, match="Internal error"):
        client.jobs.get_run(run_id)
    assert client.jobs.get_run(run_id).run_id == run_id  # only the next call failed
