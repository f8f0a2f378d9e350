"""The training schedule: Sundays 02:00 UTC, the models of the day before, once."""

import calendar
import datetime as dt

from dagster import build_schedule_context

from voyce_assets.definitions import build_definitions
from voyce_assets.training.model_registry import TrainingConfig
from voyce_assets.training.schedules import model_training_weekly


def test_on_sunday_at_two_it_trains_on_everything_up_to_saturday(voyce_home):
    defs = build_definitions("local")
    at = dt.datetime(2026, 11, 29, 2, 0, tzinfo=dt.UTC)  # a Sunday
    context = build_schedule_context(
        scheduled_execution_time=at, repository_def=defs.get_repository_def()
    )
    request = model_training_weekly.evaluate_tick(context).run_requests[0]
    assert request.partition_key == "2026-11-28" and request.run_key == "training:2026-11-28"
    job = defs.resolve_job_def("model_training_job")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {
        "ml_models/model_registry"
    }
    assert model_training_weekly.cron_schedule == "0 2 * * 0"
    # A backfill trains the days the schedule trains: the default cadence names its weekday.
    weekday = calendar.day_name[dt.date.fromisoformat(request.partition_key).weekday()]
    assert TrainingConfig().train_on_weekdays == [weekday]
