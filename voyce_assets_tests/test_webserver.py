"""The Dagster UI serves the graph of workspace.yaml (what `make ui` / `dagster dev` shows)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from voyce_assets.catalog import TABLES, Owner
from voyce_assets_tests.conftest import subprocess_env

QUERY = """
{ assetNodes { assetKey { path } groupName isExecutable
  partitionDefinition { description } } }
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_webserver_serves_every_table(voyce_home):
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster_webserver",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=subprocess_env(VOYCE_HOME=str(voyce_home), DAGSTER_HOME=str(voyce_home)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, so we stop all of it
    )
    try:
        deadline = time.monotonic() + 180
        nodes = None
        while time.monotonic() < deadline and nodes is None:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql",
                    data=json.dumps({"query": QUERY}).encode(),
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=10) as response:
                    data = json.load(response)["data"]
                nodes = data["assetNodes"] or None  # empty while the code location loads
            except OSError:
                pass
            if nodes is None:
                time.sleep(1)
        assert nodes is not None, "webserver did not serve the asset graph in time"
        by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
        assert set(by_key) == {t.path for t in TABLES} | {
            "catalog_setup",
            "processed_data/processed_audio",
        }
        built = {"raw_data/transcriptions", "processed_data/audio_features"}
        for spec in TABLES:
            node = by_key[spec.path]
            assert node["groupName"] == spec.schema
            assert node["isExecutable"] == (spec.owner is Owner.APP or spec.path in built)
            assert "Daily" in node["partitionDefinition"]["description"]
        assert by_key["catalog_setup"]["isExecutable"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
