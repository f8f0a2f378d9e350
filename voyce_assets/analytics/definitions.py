"""The analytics stage's Definitions: its tables, the daily job and schedule, the alert
sensors, and the recompute of the days an erasure changed."""

from dagster import Definitions

from voyce_assets.analytics.alerts import (
    model_quality_alerts,
    pipeline_health_alerts,
    run_failure_alerts,
)
from voyce_assets.analytics.cost_tracking import cost_tracking
from voyce_assets.analytics.daily_feedback_summary import daily_feedback_summary
from voyce_assets.analytics.erasure import erasure_recompute
from voyce_assets.analytics.organization_metrics import organization_metrics
from voyce_assets.analytics.pipeline_health import pipeline_health
from voyce_assets.analytics.schedules import analytics_job
from voyce_assets.analytics.views import view_assets

defs = Definitions(
    assets=[
        daily_feedback_summary,
        cost_tracking,
        organization_metrics,
        pipeline_health,
        *view_assets,
    ],
    jobs=[analytics_job],
    sensors=[
        pipeline_health_alerts,
        model_quality_alerts,
        run_failure_alerts,
        erasure_recompute,
    ],
)
