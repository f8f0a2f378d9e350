"""The local Databricks workspace itself, through the official SDK: what the launchers rely
on beyond the happy path they take (DBFS verbs Pipes' DBFS variant uses, the Files API
listing, errors, run states, timeouts, path containment)."""

import base64
import io
import time

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import NotFound
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


def _submit(client, fake, script: str, **task):
    path = fake.dbfs("/scripts/main.py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script)
    return client.jobs.submit(
        run_name="t",
        tasks=[
            jobs.SubmitTask.from_dict(
                {
                    "task_key": "t",
                    "new_cluster": {"spark_version": "15.4.x-gpu-ml-scala2.12", "num_workers": 1},
                    "spark_python_task": {"python_file": "dbfs:/scripts/main.py", **task},
                }
            )
        ],
    ).bind()["run_id"]


def _wait(client, run_id, timeout=60):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        run = client.jobs.get_run(run_id)
        state = run.state.life_cycle_state.value
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == "TERMINATED":
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
    assert seen[-2:] == ["RUNNING", "TERMINATED"]
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
