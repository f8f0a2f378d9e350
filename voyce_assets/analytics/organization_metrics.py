"""``analytics/organization_metrics``: per organization and day, users, engagement, audio
minutes, storage and what it cost (``sql/organization_metrics.sql``)."""

from voyce_assets.analytics.sql_asset import HISTORY, Input, build_sql_asset

INPUTS = [
    # Storage and users are totals to the end of the day: their whole history is read.
    Input("raw_data/voice_feedback", HISTORY),
    Input("raw_data/users", HISTORY),
    Input("raw_data/sentiment_analysis"),
    Input("analytics/cost_tracking"),
]

organization_metrics = build_sql_asset(
    "analytics/organization_metrics",
    INPUTS,
    description="Active users are those who gave feedback that day; storage counts every "
    "recording up to the day; API calls are paid language-model calls (not cached, not the "
    "local analyzer).",
)
