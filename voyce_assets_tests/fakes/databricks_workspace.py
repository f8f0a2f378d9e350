"""A Databricks workspace on localhost for the launch path: DBFS, the Files API (Unity
Catalog Volumes), Jobs one-time runs and clusters/get, in their real wire format.

Callers are the real dagster-databricks step launcher and Pipes client through the official
databricks-sdk. A submitted ``spark_python_task`` really runs: its script in a subprocess,
with DBFS paths (``dbfs:/x``, ``/dbfs/x``) mapped to ``<root>/dbfs/x``, and a clean
environment as on a cluster (PATH, HOME, the cluster's ``spark_env_vars``, and what the test
passes as ``cluster_env``); ``dbutils`` and ``sc`` exist as globals, as on Databricks, and with
``spark_master`` set the process starts a real local SparkSession first, as a cluster's driver
has one (the step's ``SparkSession.builder.getOrCreate()`` gets it).

A run moves as on Databricks: QUEUED (for ``queued_seconds``, when set), PENDING while the
cluster starts and installs the task's ``libraries`` (a missing or malformed wheel, or an
unparsable pypi requirement, ends it INTERNAL_ERROR/FAILED with Databricks' "Library
installation failed" message, and its script never starts), RUNNING, then TERMINATING (no
result state yet, for ``terminating_seconds``) and TERMINATED with SUCCESS on exit 0 or FAILED
otherwise, only once its process has exited. Cancelling is asynchronous, as there: the run is
TERMINATING until its process is killed ``cancel_seconds`` later, then TERMINATED/CANCELED;
past its ``timeout_seconds`` it ends TIMEDOUT. ``start_runs=False`` leaves runs PENDING
forever (a cluster that never comes up); ``end_next_run`` ends the next submitted run before
its script starts (INTERNAL_ERROR for a cluster that failed, SKIPPED), and ``fail_requests``
answers the next calls of an API with an HTTP error (429 and 503 with ``Retry-After``, 500),
in Databricks' error body.

Volumes: Files API paths are absolute paths of this machine and must lie inside ``root``
(``dagster_pipes`` opens ``/Volumes/...`` paths itself, so a volume here is a real folder).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Runs the task's script as Databricks does: as __main__, with dbutils and sc defined, and,
# when the workspace has a ``spark_master``, the cluster's SparkSession already started (what
# ``SparkSession.builder.getOrCreate()`` returns in the task), its Python workers this
# interpreter.
RUNNER = (
    "import os, runpy, sys\n"
    "sys.argv = sys.argv[1:]\n"
    "scope = {'dbutils': None, 'sc': None}\n"
    "master = os.environ.pop('FAKE_CLUSTER_SPARK_MASTER', '')\n"
    "if master:\n"
    "    from pyspark.sql import SparkSession\n"
    "    os.environ['PYSPARK_PYTHON'] = sys.executable\n"
    "    spark = (SparkSession.builder.master(master).appName('cluster')\n"
    "             .config('spark.ui.enabled', 'false').getOrCreate())\n"
    "    scope.update(spark=spark, sc=spark.sparkContext)\n"
    "runpy.run_path(sys.argv[0], init_globals=scope, run_name='__main__')\n"
)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def not_found(what: str) -> ApiError:
    return ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"{what} does not exist")


# A failed request as Databricks answers it: status, error_code, message, Retry-After.
@dataclass
class Fault:
    path: str
    status: int
    error_code: str
    message: str
    retry_after: int | None = None


# Run states that are over: the task's process has ended and the cluster is gone.
ENDED = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")


@dataclass
class Run:
    run_id: int
    spec: dict
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = ""
    process: subprocess.Popen | None = None
    log: Path | None = None
    cancel_requested: bool = False
    # What the fake's end_next_run gave this run: it ends so before its script starts.
    forced: tuple[str, str | None, str] | None = None
    # time.time() of the submit, and of the end (TERMINATED, SKIPPED, INTERNAL_ERROR): wall
    # clock, to compare with Dagster's event timestamps.
    submitted_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    # Every life cycle state the run went through, in order.
    history: list[str] = field(default_factory=list)

    def state(self) -> dict:
        state = {"life_cycle_state": self.life_cycle_state, "state_message": self.state_message}
        if self.result_state:
            state["result_state"] = self.result_state
        return state

    def status(self) -> dict:
        """The run's newer ``status`` field (Jobs 2.2), beside the ``state`` callers read."""
        if self.life_cycle_state not in ENDED:
            return {"state": self.life_cycle_state}
        code = {
            "SUCCESS": "SUCCESS",
            "CANCELED": "CANCELED",
            "TIMEDOUT": "RUN_EXECUTION_ERROR",
        }.get(self.result_state or "", "RUN_EXECUTION_ERROR")
        if "Library installation failed" in self.state_message:
            code = "LIBRARY_INSTALLATION_ERROR"
        elif self.life_cycle_state == "SKIPPED":
            code = "SKIPPED"
        elif self.life_cycle_state == "INTERNAL_ERROR":
            code = "CLUSTER_ERROR"
        return {
            "state": "TERMINATED",
            "termination_details": {"code": code, "message": self.state_message},
        }

    def move(self, life_cycle_state: str) -> None:
        if self.history and self.history[-1] == life_cycle_state:
            return
        self.life_cycle_state = life_cycle_state
        self.history.append(life_cycle_state)
        if life_cycle_state in ENDED:
            self.ended_at = time.time()


@dataclass
class FakeWorkspace:
    root: Path
    token: str = "fake-token"
    # Extra environment of every run's process (what a cluster's libraries and init give it).
    cluster_env: dict[str, str] = field(default_factory=dict)
    # The master of the SparkSession each run's process starts with (e.g. local[2]), as a
    # cluster's driver has one; None: no session (sc is None), which is quicker.
    spark_master: str | None = None
    start_runs: bool = True
    # How long a run stays QUEUED, PENDING (its cluster starting), TERMINATING after its
    # process ended, and TERMINATING after a cancel before its process is killed.
    queued_seconds: float = 0.0
    pending_seconds: float = 0.1
    terminating_seconds: float = 0.3
    cancel_seconds: float = 0.5
    # (life_cycle_state, result_state, state_message) the next submitted run ends with before
    # its script starts, e.g. ("INTERNAL_ERROR", "FAILED", "Cluster ... terminated").
    end_next_run: tuple[str, str | None, str] | None = None
    # Requests answered with an error instead, first come first served (see fail_requests).
    faults: list[Fault] = field(default_factory=list)
    # Runs listed per runs/list page.
    list_page_size: int = 25
    runs: dict[int, Run] = field(default_factory=dict)
    # (method, path) of every request, in order.
    calls: list[tuple[str, str]] = field(default_factory=list)
    _handles: dict[int, tuple[Path, bytearray]] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- paths ---------------------------------------------------------------------------
    def dbfs(self, path: str) -> Path:
        """The local file of a DBFS path (``dbfs:/x``, ``dbfs:///x``, ``/dbfs/x``, ``/x``)."""
        if path.startswith("dbfs:"):
            path = path[len("dbfs:") :]
        elif path.startswith("/dbfs/"):
            path = path[len("/dbfs") :]
        return self._inside(self.root / "dbfs", path)

    def volume(self, path: str) -> Path:
        return self._inside(self.root, path, absolute=True)

    def _inside(self, base: Path, path: str, absolute: bool = False) -> Path:
        target = (Path(path) if absolute else base / path.lstrip("/")).resolve()
        if not target.is_relative_to(base.resolve()):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"path {path} is outside the workspace")
        return target

    def _task_path(self, path: str) -> str:
        """A path in a task's parameters as the process on the cluster opens it."""
        if path.startswith(("dbfs:", "/dbfs/")):
            return str(self.dbfs(path))
        return path

    def library(self, path: str) -> Path:
        """The local file of a library path (``dbfs:/...``, ``/Volumes/...``, ``/Workspace/...``,
        or a path inside the workspace's root)."""
        if path.startswith("dbfs:"):
            return self.dbfs(path)
        local = Path(path)
        if local.is_absolute() and local.resolve().is_relative_to(self.root.resolve()):
            return local.resolve()
        if path.startswith(("/Volumes/", "/Workspace/")):
            return self._inside(self.root, path)
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"library path {path} is not absolute")

    def fail_requests(
        self,
        path: str,
        status: int,
        times: int = 1,
        retry_after: int | None = None,
        error_code: str | None = None,
        message: str | None = None,
    ) -> None:
        """Answers the next ``times`` requests whose path ends with ``path`` with ``status``,
        as Databricks does: 429 REQUEST_LIMIT_EXCEEDED, 503 TEMPORARILY_UNAVAILABLE, 500
        INTERNAL_ERROR, with ``Retry-After`` when given."""
        code, text = {
            429: ("REQUEST_LIMIT_EXCEEDED", "Too many requests. Please wait and retry."),
            503: ("TEMPORARILY_UNAVAILABLE", "The service is temporarily unavailable."),
            500: ("INTERNAL_ERROR", "Internal error while processing the request."),
        }.get(status, ("INTERNAL_ERROR", "error"))
        for _ in range(times):
            self.faults.append(
                Fault(path, status, error_code or code, message or text, retry_after)
            )

    def _fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if path.endswith(fault.path):
                    self.faults.remove(fault)
                    return fault
        return None

    @property
    def host(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- server --------------------------------------------------------------------------
    def __enter__(self) -> FakeWorkspace:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status: int, body: dict | bytes, headers: dict | None = None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                kind = "application/octet-stream" if isinstance(body, bytes) else "application/json"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                url = urllib.parse.urlsplit(self.path)
                path = urllib.parse.unquote(url.path)
                query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
                fake.calls.append((method, path))
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    self._reply(401, {"error_code": "UNAUTHENTICATED", "message": "bad token"})
                    return
                fault = fake._fault(path)
                if fault is not None:
                    headers = {}
                    if fault.retry_after is not None:
                        headers["Retry-After"] = str(fault.retry_after)
                    body = {"error_code": fault.error_code, "message": fault.message}
                    self._reply(fault.status, body, headers)
                    return
                try:
                    self._reply(200, fake.route(method, path, query, raw))
                except ApiError as e:
                    self._reply(e.status, {"error_code": e.code, "message": e.message})
                except Exception as e:  # a bug here must fail the caller, not hang its retries
                    self._reply(400, {"error_code": "BAD_REQUEST", "message": repr(e)})

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PUT(self):
                self._handle("PUT")

            def do_DELETE(self):
                self._handle("DELETE")

            def do_HEAD(self):
                self._handle("HEAD")

        self.root.mkdir(parents=True, exist_ok=True)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        for run in self.runs.values():
            self._kill(run)
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def route(self, method: str, path: str, query: dict, raw: bytes) -> dict | bytes:
        body = json.loads(raw) if raw and not path.startswith("/api/2.0/fs/files") else {}
        if path.startswith("/api/2.0/dbfs/"):
            return self._dbfs_api(path.rsplit("/", 1)[1], body, query)
        if path.startswith("/api/2.0/fs/"):
            return self._files_api(method, path, query, raw)
        if path.startswith(("/api/2.1/jobs/runs/", "/api/2.2/jobs/runs/")):
            return self._runs_api(path.rsplit("/", 1)[1], body, query)
        if path.endswith("/clusters/get"):
            return {"cluster_id": query["cluster_id"], "state": "RUNNING"}
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"no API {method} {path}")

    # -- DBFS ----------------------------------------------------------------------------
    def _dbfs_api(self, verb: str, body: dict, query: dict) -> dict:
        if verb == "create":
            target = self.dbfs(body["path"])
            if target.exists() and not body.get("overwrite"):
                raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"{body['path']} exists")
            with self._lock:
                handle = next(self._ids)
                self._handles[handle] = (target, bytearray())
            return {"handle": handle}
        if verb == "add-block":
            block = base64.b64decode(body["data"])
            if len(block) > 1024 * 1024:
                raise ApiError(400, "MAX_BLOCK_SIZE_EXCEEDED", "blocks are at most 1 MB")
            self._handles[body["handle"]][1].extend(block)
            return {}
        if verb == "close":
            target, data = self._handles.pop(body["handle"])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(bytes(data))
            return {}
        if verb == "put":
            target = self.dbfs(body["path"])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(body.get("contents", "")))
            return {}
        if verb == "mkdirs":
            self.dbfs(body["path"]).mkdir(parents=True, exist_ok=True)
            return {}
        if verb == "get-status":
            target = self.dbfs(query["path"])
            if not target.exists():
                raise not_found(query["path"])
            return {
                "path": query["path"],
                "is_dir": target.is_dir(),
                "file_size": 0 if target.is_dir() else target.stat().st_size,
            }
        if verb == "read":
            target = self.dbfs(query["path"])
            if not target.is_file():
                raise not_found(query["path"])
            offset = int(query.get("offset", 0))
            length = int(query.get("length", 1024 * 1024))
            with target.open("rb") as f:
                f.seek(offset)
                data = f.read(length)
            return {"bytes_read": len(data), "data": base64.b64encode(data).decode()}
        if verb == "delete":
            target = self.dbfs(body["path"])
            if target.is_dir():
                if not body.get("recursive") and any(target.iterdir()):
                    raise ApiError(400, "IO_ERROR", f"{body['path']} is not empty")
                import shutil

                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            return {}
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"no DBFS verb {verb}")

    # -- Files API (Unity Catalog Volumes) -----------------------------------------------
    def _files_api(self, method: str, path: str, query: dict, raw: bytes) -> dict | bytes:
        kind, _, rest = path[len("/api/2.0/fs/") :].partition("/")
        target = self.volume("/" + rest)
        if kind == "directories":
            if method == "PUT":
                target.mkdir(parents=True, exist_ok=True)
                return {}
            if not target.is_dir():
                raise not_found("/" + rest)
            if method == "DELETE":
                if any(target.iterdir()):
                    raise ApiError(409, "DIRECTORY_NOT_EMPTY", f"/{rest} is not empty")
                target.rmdir()
                return {}
            if method == "HEAD":
                return {}
            return {
                "contents": [
                    {
                        "name": child.name,
                        "path": f"/{rest.rstrip('/')}/{child.name}",
                        "is_directory": child.is_dir(),
                        **({} if child.is_dir() else {"file_size": child.stat().st_size}),
                    }
                    for child in sorted(target.iterdir())
                ]
            }
        if kind == "files":
            if method == "PUT":
                if target.exists() and query.get("overwrite") != "true":
                    raise ApiError(409, "ALREADY_EXISTS", f"/{rest} exists")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(raw)
                return {}
            if not target.is_file():
                raise not_found("/" + rest)
            if method == "DELETE":
                target.unlink()
                return {}
            return target.read_bytes()
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"no Files API {path}")

    # -- Jobs: one-time runs -------------------------------------------------------------
    def _runs_api(self, verb: str, body: dict, query: dict) -> dict:
        if verb == "submit":
            with self._lock:
                run = Run(run_id=1000 + next(self._ids), spec=body)
                run.move("QUEUED" if self.queued_seconds else "PENDING")
                run.forced, self.end_next_run = self.end_next_run, None
                self.runs[run.run_id] = run
            if self.start_runs:
                threading.Thread(target=self._execute, args=(run,), daemon=True).start()
            return {"run_id": run.run_id}
        if verb == "get":
            run = self.runs.get(int(query["run_id"]))
            if run is None:
                raise not_found(f"run {query['run_id']}")
            task = run.spec["tasks"][0]
            return {
                **self._listed(run),
                "job_id": 1,
                "run_page_url": f"{self.host}/#job/1/run/{run.run_id}",
                "tasks": [
                    {
                        "task_key": task["task_key"],
                        "run_id": run.run_id + 100000,
                        "state": run.state(),
                        "cluster_instance": {"cluster_id": f"fake-cluster-{run.run_id}"},
                    }
                ],
            }
        if verb == "list":
            runs = sorted(self.runs.values(), key=lambda r: -r.run_id)  # newest first
            if query.get("active_only") == "true":
                runs = [r for r in runs if r.life_cycle_state not in ENDED]
            if query.get("run_type"):
                runs = [r for r in runs if query["run_type"] == "SUBMIT_RUN"]
            start = int(query.get("page_token") or 0)
            size = min(int(query.get("limit") or self.list_page_size), self.list_page_size)
            page = runs[start : start + size]
            more = start + size < len(runs)
            return {
                "runs": [self._listed(r) for r in page],
                "has_more": more,
                **({"next_page_token": str(start + size)} if more else {}),
            }
        if verb == "cancel":
            run = self.runs.get(int(body["run_id"]))
            if run is None:
                raise not_found(f"run {body['run_id']}")
            self.cancel(run.run_id)
            return {}
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"no runs verb {verb}")

    @staticmethod
    def _listed(run: Run) -> dict:
        return {
            "run_id": run.run_id,
            "run_name": run.spec.get("run_name", ""),
            "run_type": "SUBMIT_RUN",
            "state": run.state(),
            "status": run.status(),
        }

    def cancel(self, run_id: int) -> None:
        """Cancels as Databricks does: the run is TERMINATING at once, its process is killed
        ``cancel_seconds`` later, and only then is it TERMINATED/CANCELED."""
        run = self.runs[run_id]
        with self._lock:
            if run.cancel_requested or run.life_cycle_state in ENDED:
                return
            run.cancel_requested = True
            run.move("TERMINATING")
            run.state_message = "Run cancellation requested."
        timer = threading.Timer(self.cancel_seconds, self._cancelled, args=(run,))
        timer.daemon = True
        timer.start()

    def _cancelled(self, run: Run) -> None:
        with self._lock:
            started = run.process is not None
            self._kill(run)
        if not started:  # the cluster was still starting: nothing ran
            self._finish(run, "CANCELED", "Run cancelled.")
        # Otherwise _execute sees the process end and finishes the run.

    def _kill(self, run: Run) -> None:
        if run.process is not None and run.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                os.killpg(run.process.pid, signal.SIGKILL)

    def _finish(self, run: Run, result: str | None, message: str, state: str = "TERMINATED"):
        with self._lock:
            if run.life_cycle_state in ENDED:
                return
            run.result_state, run.state_message = result, message
            run.move(state)

    def _libraries_error(self, task: dict, run: Run) -> str | None:
        """Databricks' message when one of the task's libraries cannot be installed."""
        from packaging.requirements import InvalidRequirement, Requirement

        for library in task.get("libraries") or []:
            problem = None
            if "whl" in library:
                kind, name = "whl", library["whl"]
                try:
                    wheel = self.library(name)
                except ApiError as e:
                    wheel, problem = None, f"ERROR_INVALID_PATH, error message: {e.message}"
                if problem is None and not wheel.is_file():
                    problem = (
                        "ERROR_NO_SUCH_FILE_OR_DIRECTORY, error message: "
                        f"java.lang.RuntimeException: {name} does not exist"
                    )
                elif problem is None and not _is_wheel(wheel):
                    problem = (
                        "ERROR_INVALID_WHEEL, error message: "
                        f"org.apache.spark.SparkException: {name} is not a valid wheel file"
                    )
            elif "pypi" in library:
                kind, name = "pypi", library["pypi"]["package"]
                try:
                    Requirement(name)
                except InvalidRequirement as e:
                    problem = f"ERROR_PIP_INSTALL, error message: ERROR: Invalid requirement: {e}"
            else:
                continue
            if problem:
                return (
                    f'Library installation failed for library due to user error for {kind}: "{name}"'
                    "\n Error messages:\nLibrary installation attempted on the driver node of "
                    f"cluster fake-cluster-{run.run_id} and failed. Please refer to the following "
                    f"error message to fix the library or contact Databricks support. Error code: "
                    f"{problem}"
                )
        return None

    def _execute(self, run: Run) -> None:
        task = run.spec["tasks"][0]
        if self.queued_seconds:
            time.sleep(self.queued_seconds)
            with self._lock:
                if run.cancel_requested:
                    return
                run.move("PENDING")
        time.sleep(self.pending_seconds)  # the cluster starts, its libraries install
        if run.cancel_requested:
            return
        if run.forced:
            state, result, message = run.forced
            self._finish(run, result, message, state)
            return
        failed_install = self._libraries_error(task, run)
        if failed_install:
            self._finish(run, "FAILED", failed_install, "INTERNAL_ERROR")
            return
        python_task = task["spark_python_task"]
        script = self._task_path(python_task["python_file"])
        args = [self._task_path(p) for p in python_task.get("parameters", [])]
        cluster = task.get("new_cluster") or {}
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "DATABRICKS_RUNTIME_VERSION": cluster.get("spark_version", "15.4"),
            **self.cluster_env,
            **({"FAKE_CLUSTER_SPARK_MASTER": self.spark_master} if self.spark_master else {}),
            **cluster.get("spark_env_vars", {}),
        }
        workdir = self.root / "driver" / str(run.run_id)
        workdir.mkdir(parents=True, exist_ok=True)
        run.log = workdir / "driver.log"
        with self._lock, run.log.open("wb") as log:
            if run.cancel_requested:  # cancelled while the cluster was starting
                return
            run.process = subprocess.Popen(
                [sys.executable, "-c", RUNNER, script, *args],
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            run.move("RUNNING")
            run.state_message = "In run"
        # The run's limit, or its task's (Pipes sets it on the task).
        timeout = run.spec.get("timeout_seconds") or task.get("timeout_seconds") or 0
        started = time.monotonic()
        while run.process.poll() is None:
            if timeout and time.monotonic() - started > timeout:
                self._kill(run)
                run.process.wait()
                self._finish(run, "TIMEDOUT", f"Run timed out after {timeout} seconds.")
                return
            time.sleep(0.1)
        if run.cancel_requested:
            self._finish(run, "CANCELED", "Run cancelled.")
            return
        # The task has ended; the cluster is cleaned up before the run is TERMINATED.
        with self._lock:
            if run.cancel_requested:
                return
            run.move("TERMINATING")
        time.sleep(self.terminating_seconds)
        if run.process.returncode == 0:
            self._finish(run, "SUCCESS", "")
        else:
            tail = run.log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
            self._finish(
                run,
                "FAILED",
                f"Task {task['task_key']} failed with message: {tail[0]}",
            )

    def output(self, run_id: int) -> str:
        """What the run's process printed (its driver log)."""
        log = self.runs[run_id].log
        return log.read_text(errors="replace") if log and log.exists() else ""


def _is_wheel(path: Path) -> bool:
    """A wheel as pip checks it: a zip archive with a ``*.dist-info/WHEEL`` file."""
    if path.suffix != ".whl" or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith(".dist-info/WHEEL") for n in archive.namelist())
