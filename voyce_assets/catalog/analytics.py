"""Schema ``analytics``: the daily aggregates (feedback summary, organization metrics, cost
tracking) and the views the notebook's other queries became, each table written by its
own SQL (``voyce_assets/analytics/sql/``). No volume.
"""

from __future__ import annotations

from voyce_assets.catalog.specs import (
    ARRAY_STRING,
    BIGINT,
    BOOLEAN,
    DATE,
    DOUBLE,
    INT,
    JSON,
    MONEY,
    SENTIMENT_LABELS,
    TIMESTAMP,
    UUID,
    Column,
    Owner,
    Table,
    Volume,
    _created_at,
    _feedback_ref,
    _id,
    _org_ref,
    _table,
)

SCHEMA = "analytics"
DESCRIPTION = "Daily aggregates for business intelligence and cost monitoring."

_SENTIMENT_MIX = (
    Column("feedback_count", BIGINT, nullable=False),
    Column("positive_count", BIGINT, nullable=False),
    Column("neutral_count", BIGINT, nullable=False),
    Column("negative_count", BIGINT, nullable=False),
    Column("mixed_count", BIGINT, nullable=False),
    Column("avg_sentiment_score", DOUBLE),
    Column("negative_share", DOUBLE, description="Negative / analysed feedback."),
)

_COST_FIGURES = (
    Column("resource_type", nullable=False),
    Column("total_cost_usd", MONEY, nullable=False),
    Column("feedback_count", BIGINT, nullable=False),
    Column("cost_per_feedback_usd", DOUBLE, description="Null when no feedback was served."),
    Column("is_flagged", BOOLEAN, nullable=False),
)

# The notebook's cost flag, defined here once: a cost per feedback above COST_FLAG_P90 x the
# p90 or COST_FLAG_MEDIAN x the median of its resource type's cost per feedback over a
# comparison set (each cost view its own). The views' descriptions say it with
# ``_cost_flagged``; their SQL writes it as ``{{ cost_flag }}``, rendered from these numbers
# (``voyce_assets/analytics/sql_macros.py``).
COST_FLAG_P90 = 1.2
COST_FLAG_MEDIAN = 1.5


def _cost_flagged(compared_with: str) -> str:
    """The flag rule in a cost view's description, compared with ``compared_with``."""
    return (
        f"flagged when it is above {COST_FLAG_P90}x the p90 or {COST_FLAG_MEDIAN}x the median "
        f"of {compared_with}"
    )


def _view(
    name: str,
    description: str,
    columns: list[Column],
    primary_key: tuple[str, ...],
    partition_column: str = "as_of_date",
) -> Table:
    """An analytics view: a table written by its own SQL, partitioned by the day it shows
    (``date``) or the day it was seen from (``as_of_date``)."""
    first = Column(
        partition_column,
        DATE,
        nullable=False,
        description="The day shown."
        if partition_column == "date"
        else "The day it shows the view as of; the daily partition.",
    )
    return _table(
        "analytics",
        name,
        Owner.PIPELINE,
        "analytics",
        description,
        [first, *columns, _created_at()],
        primary_key=primary_key,
        partition_source=None,
        partition_column=partition_column,
    )


TABLES: tuple[Table, ...] = (
    _table(
        "analytics",
        "daily_feedback_summary",
        Owner.PIPELINE,
        "analytics",
        "Per organization and day: volume, sentiment mix, topics, processing health.",
        [
            Column("date", DATE, nullable=False),
            _org_ref(references=None),
            Column("total_feedback_count", BIGINT, nullable=False),
            Column("avg_duration_seconds", DOUBLE),
            Column("sentiment_positive_count", BIGINT),
            Column("sentiment_neutral_count", BIGINT),
            Column("sentiment_negative_count", BIGINT),
            Column("avg_sentiment_score", DOUBLE),
            Column("top_topics", ARRAY_STRING),
            Column("top_tags", ARRAY_STRING),
            Column("processing_success_rate", DOUBLE),
            Column("avg_processing_time_ms", DOUBLE),
            _created_at(),
        ],
        primary_key=("date", "organization_id"),
        partition_source=None,
        partition_column="date",
    ),
    _table(
        "analytics",
        "organization_metrics",
        Owner.PIPELINE,
        "analytics",
        "Per organization and day: users, engagement, audio minutes, storage and cost.",
        [
            _org_ref(references=None),
            Column("metric_date", DATE, nullable=False),
            Column("total_users", BIGINT),
            Column("active_users", BIGINT),
            Column("total_feedback_count", BIGINT),
            Column("avg_feedback_per_user", DOUBLE),
            Column("total_audio_minutes", DOUBLE),
            Column("storage_used_gb", DOUBLE),
            Column("api_calls_count", BIGINT),
            Column("processing_cost_usd", MONEY),
            _created_at(),
        ],
        primary_key=("organization_id", "metric_date"),
        partition_source=None,
        partition_column="metric_date",
    ),
    _table(
        "analytics",
        "cost_tracking",
        Owner.PIPELINE,
        "analytics",
        "Cost of every pipeline operation (ingestion, transcription, LLM calls, inference).",
        [
            _id(),
            _org_ref(nullable=True, references=None),
            Column(
                "resource_type",
                nullable=False,
                description="compute, storage, llm_api, speech_to_text ...",
            ),
            Column("resource_id"),
            Column("operation", nullable=False),
            Column("quantity", DOUBLE, nullable=False),
            Column("unit_cost", MONEY, nullable=False),
            Column("total_cost", MONEY, nullable=False),
            Column("currency", nullable=False, description="ISO 4217 code."),
            Column("cost_date", DATE, nullable=False),
            Column("metadata", JSON),
            _created_at(),
        ],
        partition_source=None,
        partition_column="cost_date",
    ),
    # ---- analytics views: the notebook's other queries, one table each ---------------------
    # Per-day views hold one day's rows in the partition of that day (``date``); windowed
    # views hold, in partition D (``as_of_date``), what the view showed on D.
    _view(
        "sentiment_trends_weekly",
        "Per organization and ISO week (Monday start), the 12 weeks to the as-of day: "
        "volume and sentiment mix (a week in progress counts up to the as-of day).",
        [
            _org_ref(references=None),
            Column("week_start", DATE, nullable=False),
            *_SENTIMENT_MIX,
        ],
        ("as_of_date", "organization_id", "week_start"),
    ),
    _view(
        "sentiment_trends_monthly",
        "Per organization and calendar month, the 12 months to the as-of day: volume and "
        "sentiment mix.",
        [
            _org_ref(references=None),
            Column("month_start", DATE, nullable=False),
            *_SENTIMENT_MIX,
        ],
        ("as_of_date", "organization_id", "month_start"),
    ),
    _view(
        "topic_ranking",
        "Per organization, its topics over the 7 days to the as-of day, ranked by mentions "
        "(ties by name).",
        [
            _org_ref(references=None),
            Column("topic", nullable=False),
            Column("rank", INT, nullable=False),
            Column("mention_count", BIGINT, nullable=False),
            Column(
                "share_of_feedback",
                DOUBLE,
                description="Analysed feedback mentioning it / analysed feedback.",
            ),
            Column("avg_sentiment_score", DOUBLE),
        ],
        ("as_of_date", "organization_id", "topic"),
    ),
    _view(
        "trending_topics",
        "Per organization and topic, mentions in the 7 days to the as-of day against the 7 "
        "before (week over week); growth is null when the topic is new.",
        [
            _org_ref(references=None),
            Column("topic", nullable=False),
            Column("this_week_count", BIGINT, nullable=False),
            Column("last_week_count", BIGINT, nullable=False),
            Column("change", BIGINT, nullable=False),
            Column("growth_rate", DOUBLE, description="change / last_week_count."),
            Column("is_new", BOOLEAN, nullable=False),
        ],
        ("as_of_date", "organization_id", "topic"),
    ),
    _view(
        "topic_sentiment",
        "Per organization, topic and sentiment label, mentions over the 30 days to the as-of day.",
        [
            _org_ref(references=None),
            Column("topic", nullable=False),
            Column("sentiment_label", nullable=False, allowed=SENTIMENT_LABELS),
            Column("mention_count", BIGINT, nullable=False),
            Column("share_of_topic", DOUBLE),
            Column("avg_sentiment_score", DOUBLE),
        ],
        ("as_of_date", "organization_id", "topic", "sentiment_label"),
    ),
    _view(
        "most_active_users",
        "Per organization, its 10 users with the most feedback over the 30 days to the as-of day.",
        [
            _org_ref(references=None),
            Column("user_id", UUID, nullable=False),
            Column("rank", INT, nullable=False),
            Column("feedback_count", BIGINT, nullable=False),
            Column("total_audio_minutes", DOUBLE),
            Column("avg_sentiment_score", DOUBLE),
            Column("last_feedback_at", TIMESTAMP),
        ],
        ("as_of_date", "organization_id", "user_id"),
    ),
    _view(
        "retention_cohorts",
        "Monthly retention: users grouped by the month of their first feedback, and how "
        "many of them gave feedback n months later (to the as-of day, 12 cohorts).",
        [
            _org_ref(references=None),
            Column("cohort_month", DATE, nullable=False),
            Column("months_since_first", INT, nullable=False),
            Column("cohort_users", BIGINT, nullable=False),
            Column("active_users", BIGINT, nullable=False),
            Column("retention_rate", DOUBLE),
        ],
        ("as_of_date", "organization_id", "cohort_month", "months_since_first"),
    ),
    _view(
        "organization_dashboard",
        "One row per organization active on the as-of day or with feedback in the 30 days "
        "to it: those 30 days at a glance, action items open at the end of the day.",
        [
            _org_ref(references=None),
            Column("organization_name"),
            Column("feedback_count_30d", BIGINT, nullable=False),
            Column("active_users_30d", BIGINT, nullable=False),
            Column("avg_sentiment_score_30d", DOUBLE),
            Column("negative_share_30d", DOUBLE),
            Column("top_topic_30d"),
            Column("open_action_items", BIGINT, nullable=False),
            Column("overdue_action_items", BIGINT, nullable=False),
            Column("cost_usd_30d", MONEY),
        ],
        ("as_of_date", "organization_id"),
    ),
    _view(
        "cost_by_day",
        "Per day and resource type: cost, feedback served and cost per feedback, "
        + _cost_flagged("the 30 days to that day")
        + ".",
        [*_COST_FIGURES],
        ("date", "resource_type"),
        partition_column="date",
    ),
    _view(
        "cost_by_month",
        "Per calendar month (12 to the as-of day) and resource type: cost and cost per "
        "feedback, " + _cost_flagged("the months shown") + ".",
        [Column("month_start", DATE, nullable=False), *_COST_FIGURES],
        ("as_of_date", "month_start", "resource_type"),
    ),
    _view(
        "cost_by_organization",
        "Per organization, the 30 days to the as-of day: cost and cost per feedback, "
        + _cost_flagged("the organizations shown")
        + ".",
        [_org_ref(references=None), *_COST_FIGURES],
        ("as_of_date", "organization_id", "resource_type"),
    ),
    _view(
        "transcription_performance",
        "Per day and engine: files, error rate, processing time p50 / p95, confidence.",
        [
            Column("transcription_engine", nullable=False),
            Column("files", BIGINT, nullable=False),
            Column("failed", BIGINT, nullable=False),
            Column("error_rate", DOUBLE),
            Column("p50_processing_ms", DOUBLE),
            Column("p95_processing_ms", DOUBLE),
            Column("avg_confidence", DOUBLE),
            Column("audio_minutes", DOUBLE),
        ],
        ("date", "transcription_engine"),
        partition_column="date",
    ),
    _view(
        "transcription_duration_buckets",
        "Per day and recording-length bucket: files, error rate, processing time.",
        [
            Column(
                "duration_bucket",
                nullable=False,
                allowed=("<30s", "30s-1m", "1-2m", "2-5m", ">5m", "unknown"),
            ),
            Column("files", BIGINT, nullable=False),
            Column("failed", BIGINT, nullable=False),
            Column("error_rate", DOUBLE),
            Column("avg_processing_ms", DOUBLE),
            Column("p95_processing_ms", DOUBLE),
        ],
        ("date", "duration_bucket"),
        partition_column="date",
    ),
    _view(
        "processing_funnel",
        "Per day and organization: uploaded, transcribed, analysed, predicted, and the "
        "share reaching each step.",
        [
            _org_ref(references=None),
            Column("uploaded", BIGINT, nullable=False),
            Column("transcribed", BIGINT, nullable=False),
            Column("analysed", BIGINT, nullable=False),
            Column("predicted", BIGINT, nullable=False),
            Column("transcribed_rate", DOUBLE),
            Column("analysed_rate", DOUBLE),
            Column("predicted_rate", DOUBLE),
        ],
        ("date", "organization_id"),
        partition_column="date",
    ),
    _view(
        "action_items_by_status",
        "Per organization, status and priority: action items created up to the as-of day, "
        "and the organization's completion rate.",
        [
            _org_ref(references=None),
            Column("status", nullable=False),
            Column("priority", nullable=False),
            Column("item_count", BIGINT, nullable=False),
            Column("completion_rate", DOUBLE, description="Completed / all, per organization."),
        ],
        ("as_of_date", "organization_id", "status", "priority"),
    ),
    _view(
        "overdue_action_items",
        "Action items still open on the as-of day whose due date has passed.",
        [
            Column("action_item_id", UUID, nullable=False),
            _org_ref(references=None),
            _feedback_ref(),
            Column("description", free_text=True),
            Column("priority"),
            Column("status"),
            Column("assigned_to", UUID),
            Column("due_date", DATE, nullable=False),
            Column("days_overdue", INT, nullable=False),
        ],
        ("as_of_date", "action_item_id"),
    ),
    _view(
        "platform_summary",
        "One row per day for the whole platform: organizations and users active, feedback, "
        "audio, success rates, sentiment and cost.",
        [
            Column("active_organizations", BIGINT, nullable=False),
            Column("active_users", BIGINT, nullable=False),
            Column("feedback_count", BIGINT, nullable=False),
            Column("audio_hours", DOUBLE),
            Column("transcription_success_rate", DOUBLE),
            Column("analysis_success_rate", DOUBLE),
            Column("avg_sentiment_score", DOUBLE),
            Column("negative_share", DOUBLE),
            Column("total_cost_usd", MONEY),
            Column("cost_per_feedback_usd", DOUBLE),
        ],
        ("date",),
        partition_column="date",
    ),
    _view(
        "pipeline_health",
        "One row per day with feedback, transcriptions, analyses, predictions or cost: the "
        "seed's key metrics (ingestion, voice, sentiment, model, cost) the alert sensors read.",
        [
            Column(
                "sync_latency_seconds",
                DOUBLE,
                description="Always null: the mirrors record no time a row was synced (no "
                "synced_at), so its delay after the source's updated_at cannot be measured.",
            ),
            Column(
                "failed_syncs",
                BIGINT,
                description="Mirror partitions of the day planned by a run that failed (from "
                "Dagster's run history, the newest 1,000 failed runs).",
            ),
            Column(
                "data_quality_failures",
                BIGINT,
                description="Failed check evaluations of the mirrors (primary key, required "
                "columns, reconciliation, schema drift) in runs that synced the day.",
            ),
            Column("feedback_count", BIGINT, nullable=False),
            Column(
                "feedback_failed_count",
                BIGINT,
                nullable=False,
                description="Feedback the app marks status 'failed'.",
            ),
            Column("files_processed", BIGINT, nullable=False, description="Transcription rows."),
            Column("files_failed", BIGINT, nullable=False, description="... with an error."),
            Column("processing_success_rate", DOUBLE, description="Null without files."),
            Column("processing_failure_rate", DOUBLE, description="files_failed / files."),
            Column("avg_transcription_confidence", DOUBLE, description="Successful files."),
            Column("avg_processing_time_ms", DOUBLE, description="Per successful file."),
            Column(
                "sentiment_calls",
                BIGINT,
                nullable=False,
                description="Analyses the provider was asked for (not served from the cache).",
            ),
            Column("sentiment_errors", BIGINT, nullable=False, description="... that failed."),
            Column("sentiment_success_rate", DOUBLE, description="Null without calls."),
            Column("avg_sentiment_confidence", DOUBLE, description="Successful analyses."),
            Column("sentiment_positive_count", BIGINT, nullable=False),
            Column("sentiment_neutral_count", BIGINT, nullable=False),
            Column("sentiment_negative_count", BIGINT, nullable=False),
            Column("sentiment_mixed_count", BIGINT, nullable=False),
            Column("prediction_count", BIGINT, nullable=False),
            Column(
                "low_confidence_share",
                DOUBLE,
                description="Predictions with confidence below 0.6 / predictions.",
            ),
            Column("avg_inference_time_ms", DOUBLE),
            Column("total_cost_usd", MONEY, nullable=False),
            Column("cost_per_feedback_usd", DOUBLE, description="Null without feedback."),
        ],
        ("date",),
        partition_column="date",
    ),
)

VOLUMES: tuple[Volume, ...] = ()
