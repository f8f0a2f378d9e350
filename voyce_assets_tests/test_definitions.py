"""The code location: every table an asset key with shared partitions and column schemas."""

import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, AssetsDefinition, AssetSpec, DailyPartitionsDefinition

from voyce_assets.catalog import APP_TABLES, TABLES
from voyce_assets.definitions import build_definitions
from voyce_assets.partitions import daily_partitions
from voyce_assets.resources import ModelRegistry
from voyce_assets.resources.app_db import EmbeddedAppDatabase, PostgresAppDatabase
from voyce_assets.resources.unity_catalog import DatabricksUnityCatalog, LocalUnityCatalog
from voyce_assets.settings import ConfigError
from voyce_assets.training.compute import SparkTraining, TrainingCompute
from voyce_assets.voice.transcriber import Transcriber
from voyce_assets_tests.conftest import PROD_ENV, subprocess_env


def _graph(defs):
    return defs.resolve_asset_graph()


def test_every_table_is_a_partitioned_asset_key_with_column_schema(voyce_home):
    defs = build_definitions("local")
    graph = _graph(defs)
    keys = set(graph.get_all_asset_keys())
    assert keys == {AssetKey(list(t.key)) for t in TABLES} | {
        AssetKey("catalog_setup"),
        AssetKey(["processed_data", "processed_audio"]),  # the volume of normalized copies
        # Written to the app's PostgreSQL by the text stage: auto-tags and the search index.
        AssetKey(["app_db", "auto_tags"]),
        AssetKey(["app_db", "feedback_search_index"]),
    }
    for spec in TABLES:
        node = graph.get(AssetKey(list(spec.key)))
        assert node.group_name == spec.stage
        assert node.partitions_def == daily_partitions
        assert isinstance(node.partitions_def, DailyPartitionsDefinition)
        assert node.partitions_def.timezone == "UTC"
        schema = node.metadata["dagster/column_schema"]
        assert [c.name for c in schema.columns] == spec.column_names
        assert (
            node.metadata["dagster/table_name"] == f"voice_feedback_dev.{spec.schema}.{spec.name}"
        )


def test_every_catalog_table_is_a_materializable_asset(voyce_home):
    defs = build_definitions("local")
    graph = _graph(defs)
    executable = {k for k in graph.get_all_asset_keys() if graph.get(k).is_executable}
    # Every table of the catalog, the app database's own assets and the one-off setup.
    built = {
        AssetKey("catalog_setup"),
        AssetKey(["processed_data", "processed_audio"]),
        AssetKey(["app_db", "auto_tags"]),
        AssetKey(["app_db", "feedback_search_index"]),
    } | {AssetKey(list(t.key)) for t in TABLES}
    assert executable == built | {AssetKey(list(t.key)) for t in APP_TABLES}
    assert not [a for a in defs.assets if isinstance(a, AssetSpec)]  # no lineage-only spec left
    lineage = graph.get(AssetKey(["ml_models", "model_registry"])).parent_keys
    assert lineage == {AssetKey(["processed_data", "training_dataset"])}
    predictions = graph.get(AssetKey(["ml_models", "predictions"])).parent_keys
    assert AssetKey(["ml_models", "model_registry"]) in predictions
    catalog_setup = next(
        a
        for a in defs.assets
        if isinstance(a, AssetsDefinition) and a.key == AssetKey("catalog_setup")
    )
    assert catalog_setup.partitions_def is None
    assert {s.name for s in defs.sensors} == {
        "raw_cdc_sensor",
        "raw_reconciliation_sweep",
        "pipeline_health_alerts",
        "model_quality_alerts",
        "run_failure_alerts",
        "voyce_automation",
        "erasure_cascade",
        "erasure_recompute",
    }
    # The hourly and daily cadences are automation conditions; only these stay schedules.
    assert {s.name for s in defs.schedules} == {
        "raw_daily_full_sync",
        "model_training_weekly",
        "delta_maintenance_weekly",
    }


def test_resources_follow_voyce_env(voyce_home, prod_env):
    local = build_definitions("local").resources
    assert isinstance(local["app_db"], EmbeddedAppDatabase)
    assert isinstance(local["unity_catalog"], LocalUnityCatalog)
    prod = build_definitions("prod").resources
    assert isinstance(prod["app_db"], PostgresAppDatabase)
    assert isinstance(prod["unity_catalog"], DatabricksUnityCatalog)
    assert set(local) == set(prod)
    assert isinstance(local["transcriber"], Transcriber)
    # The GPU step runs in process locally; prod binds its step launcher on the same key.
    assert "gpu_step_launcher" in local and "gpu_step_launcher" in prod
    transcriptions = _graph(build_definitions("local")).get(
        AssetKey(["raw_data", "transcriptions"])
    )
    assert transcriptions.pools == {"gpu"}
    # Training is the other GPU step: same pool, same launcher key.
    training = _graph(build_definitions("local")).get(AssetKey(["ml_models", "model_registry"]))
    assert training.pools == {"gpu"}
    # Training fits in the step's process locally; on the cluster XGBoost above the row
    # threshold trains with xgboost.spark on the cluster's own session (no master).
    assert type(local["training_compute"]) is TrainingCompute
    assert isinstance(prod["training_compute"], SparkTraining)
    assert prod["training_compute"].master is None
    assert isinstance(local["mlflow"], ModelRegistry) and isinstance(prod["mlflow"], ModelRegistry)
    assert local["mlflow"].tracking_uri.startswith("sqlite:///")
    assert prod["mlflow"].registry_uri == "databricks-uc"
    assert prod["mlflow"].name("lr") == "voice_feedback_prod.ml_models.sentiment_classifier_lr"


def _validate(voyce_home, **env: str) -> subprocess.CompletedProcess:
    """`dagster definitions validate` of workspace.yaml in a process with ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(VOYCE_HOME=str(voyce_home), DAGSTER_HOME=str(voyce_home), **env),
    )


@pytest.mark.parametrize("env", ["local", "prod"])
def test_dagster_definitions_validate(env, voyce_home):
    extra = PROD_ENV if env == "prod" else {"VOYCE_ENV": "local"}
    proc = _validate(voyce_home, **extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "All code locations passed validation" in proc.stdout + proc.stderr
    assert "prod-secret-never-logged" not in proc.stdout + proc.stderr


TUNED = {
    "VOYCE_SOURCE_URL": "postgresql://app:tuned-secret@127.0.0.1:9/voyce",
    "VOYCE_FULL_SYNC_DAYS": "5",
    "VOYCE_CDC_LAG_SECONDS": "30",
    "VOYCE_CHECKSUM_EVERY_DAYS": "14",
    "WHISPER_ENGINE": "openai-whisper",
    "WHISPER_MODEL_SIZE": "tiny.en",
    "WHISPER_DEVICE": "cpu",
    "BATCH_SIZE": "4",
}


def test_every_tunable_set_still_loads_and_reaches_its_resource(voyce_home, monkeypatch):
    for name, value in TUNED.items():
        monkeypatch.setenv(name, value)
    resources = build_definitions("local").resources
    resolved = {
        key: resources[key].process_config_and_initialize()
        for key in ("app_db", "ingestion_settings", "transcriber")
    }
    assert resolved["app_db"].source_url == TUNED["VOYCE_SOURCE_URL"]
    assert resolved["ingestion_settings"].full_sync_days == 5
    assert resolved["ingestion_settings"].cdc_lag_seconds == 30
    assert resolved["ingestion_settings"].checksum_every_days == 14
    tuned = resolved["transcriber"]
    assert (tuned.engine, tuned.model, tuned.device, tuned.batch_size) == (
        "openai-whisper",
        "tiny.en",
        "cpu",
        4,
    )
    proc = _validate(voyce_home, **TUNED)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tuned-secret" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("VOYCE_FULL_SYNC_DAYS", "0", "ingestion_settings"),
        ("VOYCE_CDC_LAG_SECONDS", "-5", "ingestion_settings"),
        ("VOYCE_CHECKSUM_EVERY_DAYS", "0", "ingestion_settings"),
        ("WHISPER_ENGINE", "whisperx", "transcriber"),
        ("WHISPER_DEVICE", "tpu", "transcriber"),
        ("BATCH_SIZE", "0", "transcriber"),
    ],
)
def test_a_setting_out_of_range_names_its_variable(voyce_home, monkeypatch, name, value, key):
    monkeypatch.setenv(name, value)
    resource = build_definitions("local").resources[key].process_config_and_initialize()
    with pytest.raises(ConfigError, match=rf"^{name}: must be"):
        resource.check()


def test_the_documented_graph_is_the_definitions_graph(voyce_home):
    from voyce_assets.asset_graph import DOC, doc_block, mermaid

    defs = build_definitions("local")
    doc = (Path(__file__).resolve().parents[1] / DOC).read_text()
    assert doc_block(defs) in doc, "stale: run `voyce graph --write`"
    chart = mermaid(defs)
    # Every asset is a node, inside its stage's box, and the training path is drawn.
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        assert f'["{key.to_user_string()}"]' in chart
    assert "processed_data_training_dataset --> ml_models_model_registry" in chart
    assert "ml_models_model_registry --> ml_models_predictions" in chart
