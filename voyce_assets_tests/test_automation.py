"""The pipeline's automation: which partitions the conditions request, tick by tick, on a real
instance; the late-cost rule proven by really recomputing a day's costs after training; one
mechanism and the seed's retries per asset; the sensor and schedules as a deployment sees
them."""

from __future__ import annotations

import datetime as dt

import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DagsterInstance,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    build_schedule_context,
    evaluate_automation_conditions,
    materialize,
)

from voyce_assets.analytics.cost_tracking import COSTS, cost_tracking
from voyce_assets.analytics.views import view_assets
from voyce_assets.automation import LATE_DAYS, voyce_automation
from voyce_assets.definitions import build_definitions
from voyce_assets.ingestion.resources import IngestionSettings
from voyce_assets.ingestion.schedules import raw_daily_full_sync
from voyce_assets.resources import Pricing
from voyce_assets.resources.sql_engine import DuckDBEngine
from voyce_assets.tables import table_key
from voyce_assets.training.schedules import model_training_weekly
from voyce_assets_tests.analytics.harness import A, uid, write_tables
from voyce_assets_tests.training.synthetic import dataset_rows
from voyce_assets_tests.training.test_model_registry import train

# A weekend in the past: materialize only accepts partitions that exist by the clock.
SAT, SUN = dt.date(2026, 11, 21), dt.date(2026, 11, 22)
HOURLY_ASSETS = {
    "processed_data/processed_audio",
    "raw_data/transcriptions",
    "processed_data/audio_features",
    "raw_data/sentiment_analysis",
    "processed_data/enhanced_transcriptions",
    "app_db/auto_tags",
    "app_db/feedback_search_index",
    "processed_data/training_dataset",
    "ml_models/predictions",
}
# The seed's retries per stage (notebooks README, "Scheduling Recommendations").
SEED_RETRIES = {"ingestion": 3, "voice": 2, "text": 2, "training": 1, "inference": 2}
SEED_RETRIES["analytics"] = 1


def at(day: dt.date, hour: int, minute: int = 0, second: int = 30) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute, second), dt.UTC)


def key(path: str) -> AssetKey:
    return AssetKey.from_user_string(path)


def landed(instance: DagsterInstance, path: str, day: dt.date) -> None:
    """An upstream partition written by a run this test does not execute."""
    instance.report_runless_asset_event(
        AssetMaterialization(asset_key=key(path), partition=day.isoformat())
    )


class Ticks:
    """The automation sensor's evaluations, one after the other, sharing its cursor."""

    def __init__(self, defs, instance, selection=None):
        self.defs, self.instance, self.selection, self.cursor = defs, instance, selection, None

    def __call__(self, when: dt.datetime) -> dict[str, set[str]]:
        result = evaluate_automation_conditions(
            defs=self.defs,
            instance=self.instance,
            cursor=self.cursor,
            evaluation_time=when,
            asset_selection=self.selection,
        )
        self.cursor = result.cursor
        graph = self.defs.resolve_asset_graph()
        requested = {
            k.to_user_string(): set(result.get_requested_partitions(k))
            for k in graph.get_all_asset_keys()
        }
        return {k: v for k, v in requested.items() if v}


@pytest.fixture
def defs(voyce_home):
    return build_definitions("local")


def test_an_upload_runs_voice_text_and_predictions_at_the_next_hour_once(defs):
    instance = DagsterInstance.ephemeral()
    tick = Ticks(defs, instance)
    assert tick(at(SUN, 10, 20)) == {}
    landed(instance, "raw_data/voice_feedback", SUN)
    # Three days back is past the hourly look-back: a backfill's, not the hour's, work.
    landed(instance, "raw_data/voice_feedback", SUN - dt.timedelta(days=2))
    assert tick(at(SUN, 10, 40)) == {}  # no hour has struck yet
    hour = tick(at(SUN, 11))
    # The whole chain in one tick (each waits for its upstream inside the run); the
    # registry's own day is missing, predictions still run (the champion is an alias).
    assert hour == {path: {SUN.isoformat()} for path in HOURLY_ASSETS}
    assert tick(at(SUN, 11, 10)) == {}
    assert tick(at(SUN, 12)) == {}  # nothing new upstream: the next hour does nothing
    # Nothing more than once an hour: a change after a handled hour waits for the next one.
    landed(instance, "raw_data/voice_feedback", SUN)
    assert tick(at(SUN, 12, 20)) == {path: {SUN.isoformat()} for path in HOURLY_ASSETS}
    assert tick(at(SUN, 12, 30)) == {}
    landed(instance, "raw_data/voice_feedback", SUN)
    assert tick(at(SUN, 12, 40)) == {}
    assert tick(at(SUN, 13))["processed_data/processed_audio"] == {SUN.isoformat()}


def test_near_midnight_yesterday_is_still_processed(defs):
    instance = DagsterInstance.ephemeral()
    tick = Ticks(defs, instance)
    tick(at(SAT, 23, 50))
    landed(instance, "raw_data/voice_feedback", SAT)
    requested = tick(at(SUN, 0))
    assert requested["processed_data/processed_audio"] == {SAT.isoformat()}
    assert not [k for k in requested if k.startswith("analytics/")]  # not before 01:00


def test_a_failed_hourly_run_is_tried_again_the_next_hour(defs):
    instance = DagsterInstance.ephemeral()
    tick = Ticks(defs, instance, AssetSelection.keys(key("raw_data/sentiment_analysis")))
    tick(at(SUN, 10, 20))
    landed(instance, "raw_data/transcriptions", SUN)
    assert tick(at(SUN, 11)) == {"raw_data/sentiment_analysis": {SUN.isoformat()}}
    # The requested run fails (after its own retries): the partition is still owed.
    failing = materialize(
        [_raising(table_key("raw_data/sentiment_analysis"))],
        instance=instance,
        partition_key=SUN.isoformat(),
        raise_on_error=False,
    )
    assert not failing.success
    assert tick(at(SUN, 11, 30)) == {}
    assert tick(at(SUN, 12)) == {"raw_data/sentiment_analysis": {SUN.isoformat()}}


def _raising(asset_key: AssetKey):
    """A stand-in run of ``asset_key`` that fails (the instance records a failed run of it)."""
    from dagster import asset

    from voyce_assets.partitions import daily_partitions

    @asset(key=asset_key, partitions_def=daily_partitions)
    def _fails():
        raise RuntimeError("provider down")

    return _fails


def test_analytics_run_at_one_for_the_day_that_ended_once(defs):
    """01:00 for yesterday, once, and only once its upstream exists: not at midnight (a tick
    seen while the day was today), not for a day with nothing upstream (it would fail)."""
    instance = DagsterInstance.ephemeral()
    tick = Ticks(defs, instance)
    graph = defs.resolve_asset_graph()
    analytics = {
        k.to_user_string()
        for k in graph.get_all_asset_keys()
        if k.path[0] == "analytics" and graph.get(k).automation_condition
    }
    assert len(analytics) >= 20

    def of_analytics(requested):
        return {k: v for k, v in requested.items() if k in analytics}

    tick(at(SAT, 0, 50))
    assert of_analytics(tick(at(SAT, 1))) == {}  # Friday: nothing upstream, nothing to fail
    tick(at(SAT, 11))
    for k in graph.get_all_asset_keys():  # Saturday's upstream, as the day's runs write it
        node = graph.get(k)
        if k.path[0] != "analytics" and node.partitions_def and node.is_materializable:
            landed(instance, k.to_user_string(), SAT)
    tick(at(SAT, 12))
    assert of_analytics(tick(at(SUN, 0, 0, 30))) == {}  # midnight: Saturday not yet
    assert of_analytics(tick(at(SUN, 0, 59))) == {}
    one = of_analytics(tick(at(SUN, 1)))
    assert one == {path: {SAT.isoformat()} for path in analytics}
    assert of_analytics(tick(at(SUN, 2))) == {}


def test_a_days_costs_are_recomputed_when_training_lands_after_them(voyce_home, ml_stores):
    """Saturday's costs are computed at 01:00 on Sunday; the weekly training of Saturday
    lands at 02:00: the costs (and the cost view) of Saturday are computed again, now with
    the training's GPU seconds. Late data beyond the look-back, or for today, is left."""
    lakehouse, registry = ml_stores
    cost_by_day = next(a for a in view_assets if a.key == table_key("analytics/cost_by_day"))
    selection = AssetSelection.assets(cost_tracking, cost_by_day)
    defs = build_definitions("local")
    write_tables(
        lakehouse,
        {
            "raw_data/voice_feedback": [
                {"id": uid("f"), "organization_id": A, "audio_duration_seconds": 60.0, "day": SAT}
            ],
            "raw_data/transcriptions": [
                {
                    "voice_feedback_id": uid("f"),
                    "transcription_engine": "whisper-base",
                    "processing_time_ms": 1500,
                    "day": SAT,
                }
            ],
            "raw_data/organizations": [{"id": A, "is_active": True, "day": SAT}],
            "processed_data/training_dataset": dataset_rows([SAT], 120),
        },
    )
    resources = {"lakehouse": lakehouse, "sql_engine": DuckDBEngine(), "pricing": Pricing()}
    instance = DagsterInstance.ephemeral()
    tick = Ticks(defs, instance, selection)

    def execute(requested):
        assert all(days == {SAT.isoformat()} for days in requested.values())
        keys = [table_key(path) for path in requested]
        result = materialize(
            [cost_tracking, cost_by_day],
            selection=keys,
            instance=instance,
            resources=resources,
            partition_key=SAT.isoformat(),
        )
        assert result.success

    def operations():
        return {r["operation"] for r in lakehouse.read(COSTS, [SAT]).to_pylist()}

    tick(at(SAT, 23))
    for path in ("voice_feedback", "transcriptions", "sentiment_analysis"):
        landed(instance, f"raw_data/{path}", SAT)
    landed(instance, "processed_data/enhanced_transcriptions", SAT)
    landed(instance, "processed_data/training_dataset", SAT)
    assert tick(at(SUN, 0, 30)) == {}  # Saturday's numbers wait for 01:00
    one = tick(at(SUN, 1))
    assert one == {
        "analytics/cost_tracking": {SAT.isoformat()},
        "analytics/cost_by_day": {SAT.isoformat()},
    }
    execute(one)
    assert operations() == {"transcribe"}  # the day's Whisper seconds; no training yet
    assert tick(at(SUN, 1, 30)) == {}  # its own run does not call it again

    trained = train(lakehouse, registry, SAT, instance=instance, families=["lr"])
    assert trained.success  # the Sunday 02:00 training of Saturday: a real run
    late = tick(at(SUN, 2, 30))
    assert late == {
        "analytics/cost_tracking": {SAT.isoformat()},
        "analytics/cost_by_day": {SAT.isoformat()},
    }
    execute(late)
    training = [r for r in lakehouse.read(COSTS, [SAT]).to_pylist() if r["operation"] == "train"]
    assert training and sum(r["total_cost"] for r in training) > 0
    assert tick(at(SUN, 3)) == {}

    # Bounded: a day past the look-back, and today (still filling), are not recomputed.
    old = SUN - dt.timedelta(days=LATE_DAYS + 1)
    for day in (old, SUN):
        instance.report_runless_asset_event(
            AssetMaterialization(asset_key=COSTS_KEY, partition=day.isoformat())
        )
    tick(at(SUN, 3, 10))
    for day in (old, SUN):
        landed(instance, "ml_models/predictions", day)
    assert tick(at(SUN, 3, 20)) == {}
    # Inside it, a late prediction of a day already computed is.
    inside = SUN - dt.timedelta(days=LATE_DAYS)
    instance.report_runless_asset_event(
        AssetMaterialization(asset_key=COSTS_KEY, partition=inside.isoformat())
    )
    tick(at(SUN, 3, 30))
    landed(instance, "ml_models/predictions", inside)
    # At most once an hour: not before the next hour's tick.
    assert tick(at(SUN, 3, 40)) == {}
    assert tick(at(SUN, 4))["analytics/cost_tracking"] == {inside.isoformat()}


COSTS_KEY = table_key("analytics/cost_tracking")


def test_one_mechanism_and_the_seeds_retries_per_asset(defs):
    graph = defs.resolve_asset_graph()
    repo = defs.get_repository_def()
    scheduled = set()
    for schedule in repo.schedule_defs:
        scheduled |= set(defs.resolve_job_def(schedule.job_name).asset_layer.selected_asset_keys)
    sensed = set(defs.resolve_sensor_def("raw_cdc_sensor").asset_selection.resolve(graph))
    conditioned = {k for k in graph.get_all_asset_keys() if graph.get(k).automation_condition}
    assert not scheduled & conditioned and not sensed & conditioned
    assert {key(p) for p in HOURLY_ASSETS} <= conditioned
    assert table_key("ml_models/model_registry") in scheduled
    for asset_key in scheduled | sensed | conditioned:
        node = graph.get(asset_key)
        assets_def = node.assets_def
        policy = assets_def.op.retry_policy
        assert policy is not None, asset_key
        assert policy.max_retries == SEED_RETRIES[node.group_name], asset_key


def test_the_automation_sensor_is_the_only_one_and_starts_stopped(defs):
    repo = defs.get_repository_def()
    automation = [s for s in repo.sensor_defs if isinstance(s, AutomationConditionSensorDefinition)]
    assert [s.name for s in automation] == ["voyce_automation"]
    assert voyce_automation.default_status == DefaultSensorStatus.STOPPED
    graph = defs.resolve_asset_graph()
    targeted = voyce_automation.asset_selection.resolve(graph)
    assert {k for k in graph.get_all_asset_keys() if graph.get(k).automation_condition} <= targeted
    for schedule in repo.schedule_defs:
        assert schedule.default_status == DefaultScheduleStatus.STOPPED


def test_full_sync_at_half_past_midnight_before_the_analytics_and_training_on_sunday(defs):
    assert raw_daily_full_sync.cron_schedule == "30 0 * * *"
    context = build_schedule_context(
        scheduled_execution_time=at(SUN, 0, 30, 0),
        resources={"ingestion_settings": IngestionSettings(full_sync_days=3)},
    )
    request = raw_daily_full_sync(context)
    assert request.tags["dagster/asset_partition_range_start"] == "2026-11-20"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-11-22"
    training = model_training_weekly.evaluate_tick(
        build_schedule_context(
            scheduled_execution_time=at(SUN, 2, 0, 0), repository_def=defs.get_repository_def()
        )
    ).run_requests
    assert [r.partition_key for r in training] == [SAT.isoformat()]
    assert model_training_weekly.cron_schedule == "0 2 * * 0"
