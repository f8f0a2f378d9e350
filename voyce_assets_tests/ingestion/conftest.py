"""Shared by the ingestion tests: three demo days in a fresh database, resources, helpers."""

import datetime as dt

import pyarrow as pa
import pytest
import sqlalchemy as sa
from dagster import AssetKey, RetryPolicy, build_sensor_context
from deltalake import DeltaTable

from voyce_assets.catalog import table
from voyce_assets.demo.seed import DemoConfig, generate, load_rows
from voyce_assets.ingestion.big_sync import LocalSparkSync
from voyce_assets.ingestion.reconciliation import (
    raw_reconciliation_checksum_job,
    raw_reconciliation_sweep,
)
from voyce_assets.ingestion.resources import IngestionSettings
from voyce_assets.resources.app_db import EmbeddedAppDatabase, sqlalchemy_url
from voyce_assets.resources.lakehouse import Lakehouse
from voyce_assets.resources.pricing import Pricing

CONFIG = DemoConfig(days=3, per_day=6, seed=3, end_date=dt.date(2026, 3, 4))
DAYS = [d.isoformat() for d in CONFIG.partition_dates()]  # 2026-03-01 .. 03-03
RANGE = {
    "dagster/asset_partition_range_start": DAYS[0],
    "dagster/asset_partition_range_end": DAYS[-1],
}
QUICK_RETRY = RetryPolicy(max_retries=1, delay=0.1)


@pytest.fixture
def env(pg_database, tmp_path):
    engine = sa.create_engine(sqlalchemy_url(pg_database))
    load_rows(engine, generate(CONFIG))
    resources = {
        "app_db": EmbeddedAppDatabase(source_url=pg_database, data_dir=str(tmp_path / "unused")),
        "lakehouse": Lakehouse(
            catalog="c", root_uri=str(tmp_path / "lake"), volumes_root=str(tmp_path / "v")
        ),
        "pricing": Pricing(),
        "ingestion_settings": IngestionSettings(),
        # Never Spark at the default threshold on these few rows (test_spark_sync sets one).
        "big_sync": LocalSparkSync(),
    }
    yield engine, resources
    engine.dispose()


def sql_rows(engine, statement, **params):
    with engine.begin() as conn:
        result = conn.execute(sa.text(statement), params)
        return result.all() if result.returns_rows else None


def delta_rows(resources, path, day=None):
    spec = table(path)
    data = DeltaTable(resources["lakehouse"].table_uri(spec)).to_pyarrow_table()
    if day:
        data = data.filter(
            pa.compute.equal(data[spec.partition_column], pa.scalar(dt.date.fromisoformat(day)))
        )
    return data


def bulk_feedback(engine, day, rows):
    """Enough feedback on ``day`` that a COPY streams long enough to be interrupted."""
    sql_rows(
        engine,
        "INSERT INTO voice_feedback (id, organization_id, user_id, audio_file_path, metadata, status, created_at, updated_at) "
        "SELECT gen_random_uuid(), organization_id, user_id, 'bulk/' || g || '.wav', metadata, 'pending', "
        "created_at + make_interval(secs => g % 3600), updated_at FROM voice_feedback, generate_series(1, :n) g "
        "WHERE id = (SELECT id FROM voice_feedback WHERE (created_at AT TIME ZONE 'UTC')::date = :d LIMIT 1)",
        n=rows,
        d=dt.date.fromisoformat(day),
    )


def source_rows(engine, path, day):
    spec = table(path)
    cols = ", ".join(spec.column_names[:-1])
    return sql_rows(
        engine,
        f"SELECT {cols} FROM {spec.name} WHERE (created_at AT TIME ZONE 'UTC')::date = :d",
        d=dt.date.fromisoformat(day),
    )


def checks_by_name(result):
    return {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}


def materializations(result, name):
    return [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == AssetKey(["raw_data", name])
    ]


def sweep(instance, resources, cursor=None, every_days=7):
    """A tick of the reconciliation sweep (checksums every ``every_days``, no CDC lag)."""
    settings = IngestionSettings(checksum_every_days=every_days, cdc_lag_seconds=0)
    return raw_reconciliation_sweep(
        build_sensor_context(
            instance=instance,
            cursor=cursor,
            resources={**resources, "ingestion_settings": settings},
        )
    )


def checksum_run(instance, resources, request, **kwargs):
    """The sweep's checksum run as the sensor requested it, in this process."""
    return raw_reconciliation_checksum_job.execute_in_process(
        run_config=request.run_config,
        instance=instance,
        resources={k: v for k, v in resources.items() if k != "pricing"},
        tags=request.tags,
        **kwargs,
    )


def full_sweep(instance, resources, cursor=None, every_days=7, sweep_day=None):
    """A day's whole sweep: a tick (the counts), the checksum run it requests, and the next
    tick (the run's findings as full syncs). ``sweep_day``: the run's, as another day's
    sweep (the sensor's day is today's). Returns ({table: the observations' metadata, the
    tick's and the run's}, the full syncs requested, the cursor)."""
    tick = sweep(instance, resources, cursor=cursor, every_days=every_days)
    found: dict[str, list] = {}
    for event in tick.asset_events:
        found.setdefault(event.asset_key.path[-1], []).append(event.metadata)
    syncs = [r for r in tick.run_requests if r.job_name != raw_reconciliation_checksum_job.name]
    for request in tick.run_requests:
        if request.job_name != raw_reconciliation_checksum_job.name:
            continue
        if sweep_day:
            request.run_config["ops"]["reconciliation_checksums"]["config"]["sweep_day"] = sweep_day
        run = checksum_run(instance, resources, request)
        assert run.success
        for event in run.all_events:
            if event.is_asset_observation:
                observation = event.asset_observation_data.asset_observation
                if observation.partition is None:
                    found.setdefault(observation.asset_key.path[-1], []).append(
                        observation.metadata
                    )
        tick = sweep(instance, resources, cursor=tick.cursor, every_days=every_days)
        syncs += tick.run_requests
    return found, syncs, tick.cursor
