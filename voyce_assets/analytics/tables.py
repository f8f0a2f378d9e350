"""The analytics stage's tables not built yet: lineage-only specs."""

from voyce_assets.tables import table_spec

analytics_specs = [
    table_spec(
        "analytics/cost_tracking",
        deps=[
            "raw_data/voice_feedback",
            "raw_data/transcriptions",
            "raw_data/sentiment_analysis",
            "ml_models/predictions",
        ],
    ),
    table_spec(
        "analytics/organization_metrics",
        deps=[
            "raw_data/organizations",
            "raw_data/users",
            "raw_data/voice_feedback",
            "analytics/cost_tracking",
        ],
    ),
]
