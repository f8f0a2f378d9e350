"""The Dagster UI serves the graph of workspace.yaml (what `make ui` / `dagster dev` shows):
one group per stage, and resource settings that name their environment variable, never a
secret's value."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from voyce_assets.catalog import TABLES
from voyce_assets_tests.conftest import subprocess_env

QUERY = """
{ assetNodes { assetKey { path } groupName isExecutable
  partitionDefinition { description } } }
"""
RESOURCE_QUERY = """
query ($name: String!) {
  topLevelResourceDetailsOrError(resourceSelector: {
    repositoryLocationName: "voyce_assets", repositoryName: "__repository__",
    resourceName: $name}) {
    __typename
    ... on ResourceDetails { configuredValues { key value type } }
  }
}
"""
AUTOMATION_QUERY = """
{ repositoryOrError(repositorySelector: {
    repositoryLocationName: "voyce_assets", repositoryName: "__repository__"}) {
  ... on Repository {
    schedules { name scheduleState { status } }
    sensors { name sensorType sensorState { status } } } } }
"""
WEBHOOK = "https://hooks.slack.example/services/T0/B0/ui-secret-never-shown"
SECRET_URL = "postgresql://app:ui-secret-never-shown@127.0.0.1:9/voyce"
CLAUDE_KEY = "sk-ant-ui-secret-never-shown"


def _graphql(port: int, query: str, **variables) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


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
        env=subprocess_env(
            VOYCE_HOME=str(voyce_home),
            DAGSTER_HOME=str(voyce_home),
            VOYCE_SOURCE_URL=SECRET_URL,
            WHISPER_MODEL_SIZE="tiny.en",
            VOYCE_SENTIMENT_PROVIDER="anthropic",
            ANTHROPIC_API_KEY=CLAUDE_KEY,
            VOYCE_ALERT_WEBHOOK_URL=WEBHOOK,
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, so we stop all of it
    )
    try:
        deadline = time.monotonic() + 180
        nodes = None
        while time.monotonic() < deadline and nodes is None:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            with contextlib.suppress(OSError):
                nodes = _graphql(port, QUERY)["assetNodes"] or None  # empty while loading
            if nodes is None:
                time.sleep(1)
        assert nodes is not None, "webserver did not serve the asset graph in time"
        by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
        assert set(by_key) == {t.path for t in TABLES} | {
            "catalog_setup",
            "processed_data/processed_audio",
            "app_db/auto_tags",
            "app_db/feedback_search_index",
        }
        for spec in TABLES:  # every table of the catalog is built by its stage now
            node = by_key[spec.path]
            assert node["groupName"] == spec.stage
            assert node["isExecutable"], spec.path
            assert "Daily" in node["partitionDefinition"]["description"]
        assert by_key["catalog_setup"]["isExecutable"]
        assert by_key["catalog_setup"]["groupName"] == "operations"

        # Settings read from the environment show as "from VOYCE_SOURCE_URL", not its value.
        shown = {}
        names = (
            "app_db",
            "transcriber",
            "ingestion_settings",
            "sentiment_analyzer",
            "alert_webhook",
        )
        for name in names:
            details = _graphql(port, RESOURCE_QUERY, name=name)["topLevelResourceDetailsOrError"]
            assert details["__typename"] == "ResourceDetails", details
            shown[name] = {v["key"]: (v["type"], v["value"]) for v in details["configuredValues"]}
        assert shown["app_db"]["source_url"] == ("ENV_VAR", "VOYCE_SOURCE_URL")
        assert "ui-secret-never-shown" not in json.dumps(shown)
        assert shown["sentiment_analyzer"]["api_key"] == ("ENV_VAR", "ANTHROPIC_API_KEY")
        assert shown["sentiment_analyzer"]["mode"] == ("VALUE", '"messages"')
        assert shown["transcriber"]["model"] == ("ENV_VAR", "WHISPER_MODEL_SIZE")
        assert shown["transcriber"]["engine"] == ("VALUE", '"faster-whisper"')
        assert shown["ingestion_settings"]["full_sync_days"] == ("VALUE", "3")
        assert shown["alert_webhook"]["url"] == ("ENV_VAR", "VOYCE_ALERT_WEBHOOK_URL")

        # Every schedule and sensor of the code location is in the UI, each stopped until a
        # deployment switches it on.
        from voyce_assets.definitions import build_definitions

        defs = build_definitions("local")
        repo = _graphql(port, AUTOMATION_QUERY)["repositoryOrError"]
        schedules = {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]}
        sensors = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
        assert set(schedules) == {s.name for s in defs.schedules}
        assert set(sensors) == {s.name for s in defs.sensors}
        assert {"voyce_automation", "raw_cdc_sensor", "run_failure_alerts"} <= set(sensors)
        assert set(schedules.values()) == set(sensors.values()) == {"STOPPED"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
