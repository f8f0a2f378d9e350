"""The analytics stage's Definitions."""

from dagster import Definitions

from voyce_assets.analytics.cost_tracking import cost_tracking
from voyce_assets.analytics.daily_feedback_summary import daily_feedback_summary
from voyce_assets.analytics.organization_metrics import organization_metrics
from voyce_assets.analytics.schedules import analytics_daily, analytics_job
from voyce_assets.analytics.views import view_assets

defs = Definitions(
    assets=[daily_feedback_summary, cost_tracking, organization_metrics, *view_assets],
    jobs=[analytics_job],
    schedules=[analytics_daily],
)
