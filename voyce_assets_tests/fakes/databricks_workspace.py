"""A Databricks workspace on localhost for the launch path: DBFS, the Files API (Unity
Catalog Volumes), Jobs one-time runs and clusters/get, in their real wire format.

Callers are the real dagster-databricks step launcher and Pipes client through the official
databricks-sdk. A submitted ``spark_python_task`` really runs: its script in a subprocess,
with DBFS paths (``dbfs:/x``, ``/dbfs/x``) mapped to ``<root>/dbfs/x``, and a clean
environment as on a cluster (PATH, HOME, the cluster's ``spark_env_vars``, and what the test
passes as ``cluster_env``); ``dbutils`` and ``sc`` exist as globals, as on Databricks. The run
moves PENDING -> RUNNING -> TERMINATED (SUCCESS on exit 0, FAILED otherwise) only once its
process has exited, or TERMINATED/CANCELED when cancelled (the process is killed), or
TIMEDOUT past its ``timeout_seconds``. ``start_runs=False`` leaves runs PENDING forever (a
cluster that never comes up).

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
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Runs the task's script as Databricks does: as __main__, with dbutils and sc defined.
RUNNER = (
    "import runpy, sys\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], init_globals={'dbutils': None, 'sc': None},"
    " run_name='__main__')\n"
)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def not_found(what: str) -> ApiError:
    return ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"{what} does not exist")


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

    def state(self) -> dict:
        state = {"life_cycle_state": self.life_cycle_state, "state_message": self.state_message}
        if self.result_state:
            state["result_state"] = self.result_state
        return state


@dataclass
class FakeWorkspace:
    root: Path
    token: str = "fake-token"
    # Extra environment of every run's process (what a cluster's libraries and init give it).
    cluster_env: dict[str, str] = field(default_factory=dict)
    start_runs: bool = True
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

            def _reply(self, status: int, body: dict | bytes) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
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
                "run_id": run.run_id,
                "job_id": 1,
                "run_name": run.spec.get("run_name", ""),
                "run_page_url": f"{self.host}/#job/1/run/{run.run_id}",
                "state": run.state(),
                "tasks": [
                    {
                        "task_key": task["task_key"],
                        "run_id": run.run_id + 100000,
                        "state": run.state(),
                        "cluster_instance": {"cluster_id": f"fake-cluster-{run.run_id}"},
                    }
                ],
            }
        if verb == "cancel":
            run = self.runs.get(int(body["run_id"]))
            if run is None:
                raise not_found(f"run {body['run_id']}")
            self.cancel(run.run_id)
            return {}
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"no runs verb {verb}")

    def cancel(self, run_id: int) -> None:
        run = self.runs[run_id]
        with self._lock:
            run.cancel_requested = True
            if run.life_cycle_state in ("PENDING", "RUNNING"):
                self._kill(run)
                if run.process is None:
                    self._finish(run, "CANCELED", "Run cancelled.")

    def _kill(self, run: Run) -> None:
        if run.process is not None and run.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                os.killpg(run.process.pid, signal.SIGKILL)

    def _finish(self, run: Run, result: str, message: str) -> None:
        run.result_state, run.state_message = result, message
        run.life_cycle_state = "TERMINATED"

    def _execute(self, run: Run) -> None:
        task = run.spec["tasks"][0]
        python_task = task["spark_python_task"]
        script = self._task_path(python_task["python_file"])
        args = [self._task_path(p) for p in python_task.get("parameters", [])]
        cluster = task.get("new_cluster") or {}
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "DATABRICKS_RUNTIME_VERSION": cluster.get("spark_version", "15.4"),
            **self.cluster_env,
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
            run.life_cycle_state, run.state_message = "RUNNING", "In run"
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
        elif run.process.returncode == 0:
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
