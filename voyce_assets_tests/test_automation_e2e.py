"""One spoken feedback flows from the app database to its prediction and its day's summary
with nothing materialized by hand: the CDC sensor, the daily full sync and the automation
conditions are ticked across the hours, and exactly what each tick requests is executed.

Slow (Whisper tiny on CPU, the whole graph): kept in its own file for pytest-xdist.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections import defaultdict

import av
import pyarrow.compute as pc
import sqlalchemy as sa
from dagster import (
    AssetsDefinition,
    DagsterInstance,
    build_schedule_context,
    build_sensor_context,
    evaluate_automation_conditions,
    materialize,
)

from voyce_assets.catalog import table, volume
from voyce_assets.definitions import build_definitions
from voyce_assets.demo.seed import DemoConfig, _insert_sql, generate, render_audio, seed
from voyce_assets.ingestion.mirrors import raw_mirrors
from voyce_assets.ingestion.resources import IngestionSettings
from voyce_assets.ingestion.schedules import raw_daily_full_sync
from voyce_assets.ingestion.sensors import raw_cdc_sensor
from voyce_assets.resources.app_db import EmbeddedAppDatabase, sqlalchemy_url
from voyce_assets_tests.analytics.harness import write_tables
from voyce_assets_tests.training.synthetic import dataset_rows
from voyce_assets_tests.training.test_model_registry import train

STEP = dt.timedelta(minutes=30)


def _spoken_feedback(config: DemoConfig, audio_root, created: dt.datetime) -> dict:
    """A new upload like the demo's: a spoken clip on disk and its voice_feedback row."""
    data = generate(config)
    template = next(r for r in data.rows["voice_feedback"] if data.audio[r["id"]].case == "ok")
    job = data.audio[template["id"]]
    fid = str(uuid.uuid4())
    path = f"{template['organization_id']}/{created:%Y/%m/%d}/{fid}.{job.fmt}"
    target = audio_root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(render_audio(job, random.Random(7)))
    with av.open(str(target)) as container:
        duration = round(container.duration / 1_000_000, 2)
    return {
        **template,
        "id": fid,
        "audio_file_path": path,
        "audio_duration_seconds": duration,
        "file_size_bytes": target.stat().st_size,
        "status": "pending",
        "created_at": created,
        "updated_at": created,
    }


def test_a_new_upload_reaches_its_prediction_and_its_days_summary_by_ticks_alone(
    voyce_home, pg_database, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    defs = build_definitions("local")
    resources = dict(defs.resources)
    resources["app_db"] = EmbeddedAppDatabase(
        source_url=pg_database, data_dir=str(voyce_home / "unused")
    )
    resources["ingestion_settings"] = IngestionSettings(cdc_lag_seconds=0)
    lakehouse = resources["lakehouse"].process_config_and_initialize()
    registry = resources["mlflow"].process_config_and_initialize()
    assets = [a for a in defs.assets if isinstance(a, AssetsDefinition) and a.is_executable]

    # The demo-like start: the app's demo rows and audio of an earlier day, a champion.
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    today = now.date()
    engine = sa.create_engine(sqlalchemy_url(pg_database))
    audio_root = lakehouse.volume_path(volume("raw_data/audio_files"))
    config = DemoConfig(days=1, per_day=4, end_date=today - dt.timedelta(days=10))
    seed(engine, audio_root, config)
    trained_on = today - dt.timedelta(days=20)
    write_tables(lakehouse, {"processed_data/training_dataset": dataset_rows([trained_on], 120)})
    assert train(lakehouse, registry, trained_on, families=["lr", "lgbm"]).success

    instance = DagsterInstance.ephemeral()
    executed: list[tuple[dt.datetime, str, list[str]]] = []

    def run(at, selection, label, **kwargs):
        result = materialize(
            assets, selection=selection, instance=instance, resources=resources, **kwargs
        )
        executed.append((at, label, sorted(k.to_user_string() for k in selection)))
        assert result.success, f"{label} at {at} failed"

    def cdc_tick(cursor, at):
        result = raw_cdc_sensor(
            build_sensor_context(
                instance=instance,
                cursor=cursor,
                resources={k: resources[k] for k in ("app_db", "ingestion_settings")},
            )
        )
        for request in result.run_requests or []:
            run(
                at,
                request.asset_selection,
                f"cdc {request.partition_key}",
                partition_key=request.partition_key,
                run_config=request.run_config,
                tags=request.tags,
            )
        return result.cursor

    def automation_tick(cursor, at):
        result = evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=cursor, evaluation_time=at
        )
        by_partition = defaultdict(list)
        for a in assets:
            for key in a.keys:
                for partition in result.get_requested_partitions(key):
                    by_partition[partition].append(key)
        for partition, keys in sorted(by_partition.items()):
            run(at, keys, f"automation {partition}", partition_key=partition)
        return result.cursor

    def has_prediction(fid) -> bool:
        rows = lakehouse.read(table("ml_models/predictions"), [today])
        return fid in rows.column("voice_feedback_id").to_pylist()

    def has_summary() -> bool:
        rows = lakehouse.read(table("analytics/daily_feedback_summary"), [today])
        return (pc.sum(rows.column("total_feedback_count")).as_py() or 0) > 0

    cdc_cursor = cdc_tick(None, now)  # the first tick only records where the tables stand
    auto_cursor = automation_tick(None, now)
    assert not executed

    fid_row = _spoken_feedback(config, audio_root, now - dt.timedelta(minutes=1))
    with engine.begin() as conn:
        conn.execute(_insert_sql(table("raw_data/voice_feedback"), "public"), [fid_row])
    cdc_cursor = cdc_tick(cdc_cursor, now)
    assert [label for _, label, _ in executed] == [f"cdc {today}"]

    at = now.replace(minute=0, second=0) + dt.timedelta(seconds=30)
    predicted_at = summarised_at = None
    while at < now + dt.timedelta(hours=27) and not (predicted_at and summarised_at):
        at += STEP
        if at <= now:
            continue
        if at.hour == 0 and at.minute == 30:
            request = raw_daily_full_sync(
                build_schedule_context(
                    scheduled_execution_time=at.replace(second=0),
                    resources={"ingestion_settings": resources["ingestion_settings"]},
                )
            )
            run(at, [a.key for a in raw_mirrors], "full sync", tags=request.tags)
        auto_cursor = automation_tick(auto_cursor, at)
        if predicted_at is None and has_prediction(fid_row["id"]):
            predicted_at = at
        if summarised_at is None and has_summary():
            summarised_at = at
    engine.dispose()

    # Predicted in the run of the first hour after the upload was mirrored...
    first_hour = now.replace(minute=0, second=0) + dt.timedelta(hours=1, seconds=30)
    assert predicted_at == first_hour, executed
    hour_runs = [keys for when, _, keys in executed if when == first_hour]
    assert len(hour_runs) == 1 and {
        "processed_data/processed_audio",
        "raw_data/transcriptions",
        "raw_data/sentiment_analysis",
        "processed_data/enhanced_transcriptions",
        "ml_models/predictions",
    } <= set(hour_runs[0])
    assert not [k for k in hour_runs[0] if k.startswith("analytics/")]
    # ... and the day summarised at 01:00 UTC the next day, after the 00:30 full sync.
    next_day_one = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(1), dt.UTC)
    assert summarised_at == next_day_one + dt.timedelta(seconds=30), executed
