"""The inference schedule: every hour, one run over yesterday and today."""

import datetime as dt

from dagster import build_schedule_context

from voyce_assets.definitions import build_definitions
from voyce_assets.inference.schedules import batch_inference_hourly


def test_every_hour_it_predicts_yesterday_and_today_once(voyce_home):
    defs = build_definitions("local")
    at = dt.datetime(2026, 11, 27, 0, 0, tzinfo=dt.UTC)  # just after midnight
    context = build_schedule_context(
        scheduled_execution_time=at, repository_def=defs.get_repository_def()
    )
    request = batch_inference_hourly.evaluate_tick(context).run_requests[0]
    assert request.tags["dagster/asset_partition_range_start"] == "2026-11-26"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-11-27"
    assert request.run_key == "inference:2026-11-27T00"
    job = defs.resolve_job_def("batch_inference_job")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {
        "ml_models/predictions"
    }
    assert batch_inference_hourly.cron_schedule == "0 * * * *"
