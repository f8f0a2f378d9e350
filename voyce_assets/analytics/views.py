"""The notebook's other analytics queries, one asset each: what each reads, and how far back.

Windows are counted back from each day of the run (a backfill computes each day's own view):
``days`` covers the longest window the SQL looks at (7 days back for a week over week, 29 for
30-day views, 90 for 12 weeks, 366 for 12 months).
"""

from voyce_assets.analytics.sql_asset import HISTORY, WHOLE, Input, build_sql_asset

FEEDBACK = "raw_data/voice_feedback"
TRANSCRIPTIONS = "raw_data/transcriptions"
SENTIMENT = "raw_data/sentiment_analysis"
ENHANCED = "processed_data/enhanced_transcriptions"
COSTS = "analytics/cost_tracking"

VIEWS: dict[str, list[Input]] = {
    "analytics/sentiment_trends_weekly": [Input(FEEDBACK, 90), Input(SENTIMENT, 90)],
    "analytics/sentiment_trends_monthly": [Input(FEEDBACK, 366), Input(SENTIMENT, 366)],
    "analytics/topic_ranking": [Input(ENHANCED, 6)],
    "analytics/trending_topics": [Input(ENHANCED, 13)],
    "analytics/topic_sentiment": [Input(ENHANCED, 29)],
    "analytics/most_active_users": [Input(FEEDBACK, 29), Input(SENTIMENT, 29)],
    "analytics/retention_cohorts": [Input(FEEDBACK, HISTORY)],
    "analytics/organization_dashboard": [
        Input("raw_data/organizations", WHOLE, required=False),
        Input(FEEDBACK, HISTORY),
        Input(SENTIMENT, 29),
        Input(ENHANCED, 29),
        Input("raw_data/action_items", HISTORY),
        Input(COSTS, 29),
    ],
    "analytics/cost_by_day": [Input(COSTS, 29), Input(FEEDBACK, 29)],
    "analytics/cost_by_month": [Input(COSTS, 366), Input(FEEDBACK, 366)],
    "analytics/cost_by_organization": [Input(COSTS, 29), Input(FEEDBACK, 29)],
    "analytics/transcription_performance": [Input(TRANSCRIPTIONS), Input(FEEDBACK)],
    "analytics/transcription_duration_buckets": [Input(TRANSCRIPTIONS), Input(FEEDBACK)],
    "analytics/processing_funnel": [
        Input(FEEDBACK),
        Input(TRANSCRIPTIONS),
        Input(SENTIMENT),
        # Written by the inference stage; a day it has not predicted yet counts 0 predicted.
        Input("ml_models/predictions", required=False),
    ],
    "analytics/action_items_by_status": [
        Input("raw_data/action_items", HISTORY),
        Input(FEEDBACK, HISTORY),
    ],
    "analytics/overdue_action_items": [
        Input("raw_data/action_items", HISTORY),
        Input(FEEDBACK, HISTORY),
    ],
    "analytics/platform_summary": [
        Input(FEEDBACK),
        Input(TRANSCRIPTIONS),
        Input(SENTIMENT),
        Input(COSTS),
    ],
}

view_assets = [build_sql_asset(path, inputs) for path, inputs in VIEWS.items()]
