"""The analytics stage's Definitions."""

from dagster import Definitions

from voyce_assets.analytics.daily_feedback_summary import daily_feedback_summary
from voyce_assets.analytics.tables import analytics_specs

defs = Definitions(assets=[daily_feedback_summary, *analytics_specs])
