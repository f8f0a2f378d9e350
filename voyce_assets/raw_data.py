"""raw_data: app-owned mirrors of PostgreSQL plus per-feedback transcripts and sentiment.

Until the raw-layer, voice-processing and text-intelligence stages land, these tables are
lineage-only specs: they show in the graph with their schema but cannot be materialized.
"""

from voyce_assets.tables import table_spec

APP_MIRRORS = ("organizations", "users", "voice_feedback", "tags", "feedback_tags", "action_items")

raw_data_specs = [
    *(table_spec(f"raw_data/{name}", pending_issue="raw layer (CDC)") for name in APP_MIRRORS),
    table_spec(
        "raw_data/transcriptions",
        deps=["raw_data/voice_feedback"],
        pending_issue="voice processing",
    ),
    table_spec(
        "raw_data/sentiment_analysis",
        deps=["raw_data/transcriptions"],
        pending_issue="text intelligence",
    ),
]
