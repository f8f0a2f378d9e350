"""The analytics schedule asks, at 01:00 UTC, for the day that just ended, once."""

import datetime as dt

from dagster import build_schedule_context

from voyce_assets.analytics.schedules import analytics_daily
from voyce_assets.definitions import build_definitions


def test_at_one_it_runs_every_analytics_table_for_yesterday(voyce_home):
    defs = build_definitions("local")
    at = dt.datetime(2026, 11, 27, 1, 0, tzinfo=dt.UTC)
    context = build_schedule_context(
        scheduled_execution_time=at, repository_def=defs.get_repository_def()
    )
    request = analytics_daily.evaluate_tick(context).run_requests[0]
    assert request.partition_key == "2026-11-26" and request.run_key == "analytics:2026-11-26"
    job = defs.resolve_job_def("analytics_daily_job")
    selected = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert "analytics/cost_tracking" in selected and "analytics/platform_summary" in selected
    assert all(key.startswith("analytics/") for key in selected)
    assert analytics_daily.cron_schedule == "0 1 * * *"
