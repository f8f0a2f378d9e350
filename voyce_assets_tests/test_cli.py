"""The voyce console script end to end, as a user runs it (subprocesses, real services)."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pytest
import sqlglot
from dagster import DagsterInstance, DagsterRunStatus
from deltalake import DeltaTable

from voyce_assets.catalog import APP_TABLES, SCHEMAS, TABLES, VOLUMES
from voyce_assets.ddl import privacy_ddl
from voyce_assets_tests.conftest import subprocess_env


def voyce(*args, timeout=300, **env):
    return subprocess.run(
        [sys.executable, "-m", "voyce_assets.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(**env),
    )


def test_catalog_ddl_databricks_and_postgres():
    out = voyce("catalog", "ddl", "--catalog", "voice_feedback_prod", "--location-root", "s3://l")
    assert out.returncode == 0, out.stderr
    statements = [s for s in sqlglot.parse(out.stdout, dialect="databricks") if s is not None]
    privacy = len(privacy_ddl("voice_feedback_prod"))
    assert len(statements) == 1 + len(SCHEMAS) + len(TABLES) + privacy + len(VOLUMES)
    assert "CREATE CATALOG IF NOT EXISTS `voice_feedback_prod`" in out.stdout
    assert "LOCATION 's3://l/voice_feedback_prod/raw_data/voice_feedback'" in out.stdout
    default = voyce("catalog", "ddl")
    assert "`voice_feedback_dev`.`raw_data`.`users`" in default.stdout
    pg = voyce("catalog", "ddl", "--dialect", "postgres")
    assert pg.returncode == 0
    assert pg.stdout.count("CREATE TABLE IF NOT EXISTS") == len(APP_TABLES)
    assert sqlglot.parse(pg.stdout, dialect="postgres")


def test_demo_refuses_to_overwrite_a_foreign_database_or_prod(pg_database, tmp_path):
    out = voyce("demo", "seed", VOYCE_SOURCE_URL=pg_database, VOYCE_HOME=str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.startswith("voyce: VOYCE_SOURCE_URL: seeding replaces the app tables")
    assert "--force" in out.stderr
    prod = voyce("demo", "seed", VOYCE_ENV="prod")
    assert prod.returncode == 2 and "VOYCE_ENV" in prod.stderr


def test_demo_run_end_to_end_on_the_embedded_server(voyce_home):
    env = {"VOYCE_HOME": str(voyce_home), "DAGSTER_HOME": str(voyce_home / "dagster")}
    try:
        run = voyce(
            "demo", "run", "--days", "2", "--per-day", "26", "--end-date", "2026-03-02", **env
        )
        assert run.returncode == 0, run.stderr[-3000:]
        # The terminal gets progress and the summary; everything else goes to the log.
        out = run.stdout.splitlines()
        assert len(out) <= 80 and not run.stderr.strip(), run.stdout + run.stderr
        for noisy in ("DEBUG", "WARNING", "ERROR", "Successfully registered"):
            assert noisy not in run.stdout, noisy
        assert "voice_feedback: 52 rows" in run.stdout
        assert "partitions 2026-02-28 .. 2026-03-01 (2 days)" in run.stdout
        logs = [line.removeprefix("log: ") for line in out if line.startswith("log: ")]
        assert len(set(logs)) == 1 and logs[0].startswith(str(voyce_home / "logs"))
        log = Path(logs[0]).read_text()
        assert " - DEBUG - " in log and "materialized catalog_setup" in log
        assert "[2/4] 2026-02-28..2026-03-01: " in run.stdout
        assert len([line for line in out if line.startswith("[") and " done in " in line]) == 4
        # Two bad cases on one day of 26 recordings: 7.7%, over the 5% alert; the summary
        # says so before the run, and the failed check names that day and only that day.
        assert "over the 5% failure alert on 2026-02-28" in run.stdout
        assert "(the alert demonstration)" in run.stdout
        failed_checks = [line for line in out if line.startswith("  failed ")]
        assert (
            "  failed raw_data/transcriptions:failure_rate: 2026-02-28: 2 of 26 rows failed "
            "(7.7%)" in "\n".join(failed_checks)
        )
        assert "2026-03-01" not in "\n".join(
            line for line in failed_checks if "transcriptions" in line
        )
        status = voyce("db", "status", **env)
        assert status.stdout.startswith("running (pid ")
        url = voyce("db", "url", **env).stdout.strip()
        assert url.startswith("postgresql://postgres:***@/voyce?host=")

        for spec in TABLES:
            path = voyce_home / "lakehouse" / "voice_feedback_dev" / spec.schema / spec.name
            assert DeltaTable(str(path)).metadata().partition_columns == [spec.partition_column]
        audio = voyce_home / "volumes" / "voice_feedback_dev" / "raw_data" / "audio_files"
        assert len([p for p in audio.rglob("*") if p.is_file()]) >= 5

        # The run is recorded in the local instance, so `dagster dev` shows it.
        assert (voyce_home / "dagster" / "dagster.yaml").is_file()
        with DagsterInstance.from_config(str(voyce_home / "dagster")) as instance:
            runs = instance.get_runs()
            # catalog_setup; one run over the demo range; the weekly training for the last
            # day; what depends on the models (predictions, costs) over the range.
            assert [r.status for r in runs] == [DagsterRunStatus.SUCCESS] * 4
        # Every other check of the range run passes (the text stage skips the bad cases:
        # counted, not failed); each run's per-asset counts are in the log.
        assert "checks: 40 of 41 passed; failed: raw_data/transcriptions:failure_rate" in log
        assert "materialized ml_models/model_registry (1 partitions) " in log
        assert "materialized ml_models/predictions (2 partitions) " in log
        _champion_scores_the_demo_dataset(voyce_home)
        # Every analytics table is filled, and the report of the last day is written.
        for spec in TABLES:
            if spec.stage == "analytics":
                assert f"materialized {spec.path} (2 partitions)" in log
        report = voyce_home / "reports" / "voyce-report-2026-03-01.html"
        assert f"report: {report}" in run.stdout and "Voyce feedback report" in report.read_text()
        # The mirrors' costs reached cost_tracking through the run's event log, with the
        # stages' own, every row owned by an organization.
        costs = DeltaTable(
            str(voyce_home / "lakehouse" / "voice_feedback_dev" / "analytics" / "cost_tracking")
        ).to_pyarrow_table()
        stages = {json.loads(m)["stage"] for m in costs.column("metadata").to_pylist()}
        assert stages == {"ingestion", "voice", "text", "training", "inference"}
        assert costs.column("organization_id").null_count == 0
        assert "materialized raw_data/sentiment_analysis (2 partitions)" in log
        assert "materialized processed_data/enhanced_transcriptions (2 partitions)" in log
        assert "materialized app_db/auto_tags (2 partitions)" in log
        assert "materialized processed_data/training_dataset (2 partitions)" in log
        assert "materialized raw_data/voice_feedback (2 partitions)" in log

        setup = voyce("catalog", "setup", **env)
        assert setup.returncode == 0, setup.stderr[-3000:]
        assert (
            f"materialized catalog_setup tables_exists={len(TABLES)}, volumes_exists=3"
            in setup.stdout
        )

        # Re-running the demo is idempotent.
        again = voyce(
            "demo", "run", "--days", "2", "--per-day", "26", "--end-date", "2026-03-02", **env
        )
        assert again.returncode == 0, again.stderr[-3000:]
        again_log = next(
            line.removeprefix("log: ") for line in again.stdout.splitlines() if "log: " in line
        )
        assert (
            again_log != logs[0] and f"tables_exists={len(TABLES)}" in Path(again_log).read_text()
        )
    finally:
        stopped = voyce("db", "stop", **env)
    assert stopped.stdout.strip() == "stopped"
    assert voyce("db", "status", **env).stdout.startswith("not running")


def test_a_failed_demo_step_says_why_on_the_terminal(voyce_home):
    """One day of four recordings is too little to train on: the training step fails, the
    run after it is skipped for want of a champion, and the terminal names the failed steps
    with their messages (Dagster's failure events stay in the log); the exit status is 1."""
    env = {"VOYCE_HOME": str(voyce_home), "DAGSTER_HOME": str(voyce_home / "dagster")}
    try:
        run = voyce(
            "demo", "run", "--days", "1", "--per-day", "4", "--end-date", "2026-03-02", **env
        )
    finally:
        voyce("db", "stop", **env)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert "[3/4] weekly training for 2026-03-01: 1 asset x 1 day ... FAILED in " in run.stdout
    assert (
        "failed step ml_models__model_registry: not enough labelled data to train on up to "
        "2026-03-01" in run.stdout
    )
    log = next(line for line in run.stdout.splitlines() if line.startswith("log: "))
    assert " - STEP_FAILURE - " in Path(log.removeprefix("log: ")).read_text()


@pytest.mark.parametrize("command", [["--help"], ["db", "--help"], ["demo", "run", "--help"]])
def test_help(command):
    assert voyce(*command).returncode == 0


def _champion_scores_the_demo_dataset(voyce_home) -> None:
    """The demo's champion, loaded from the local MLflow registry by alias, scores the demo's
    own dataset; the tables hold one row per version and one prediction per scorable feedback."""
    import numpy as np

    from voyce_assets.models import CHAMPION
    from voyce_assets.resources import ModelRegistry

    lake = voyce_home / "lakehouse" / "voice_feedback_dev"
    db = f"sqlite:///{voyce_home / 'mlflow' / 'mlflow.db'}"
    registry = ModelRegistry(tracking_uri=db, registry_uri=db)
    version = registry.by_alias(CHAMPION)
    model = registry.load(version)
    dataset = DeltaTable(str(lake / "processed_data" / "training_dataset")).to_pyarrow_table()
    X = np.asarray(dataset.column("features").to_pylist())
    proba = model.predict_proba(X)
    # float32 probabilities (the boosters) sum to 1 within float32 precision.
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert set(model.predict(X)) <= {"positive", "neutral", "negative", "mixed"}
    registry_rows = DeltaTable(str(lake / "ml_models" / "model_registry")).to_pyarrow_table()
    stages = registry_rows.column("stage").to_pylist()
    assert registry_rows.num_rows == 4 and stages.count("Production") == 1
    champion = registry_rows.filter(pc.equal(registry_rows.column("stage"), "Production"))
    assert champion.column("model_name")[0].as_py() == version.name
    predictions = DeltaTable(str(lake / "ml_models" / "predictions")).to_pyarrow_table()
    assert sorted(predictions.column("voice_feedback_id").to_pylist()) == sorted(
        dataset.column("voice_feedback_id").to_pylist()
    )
