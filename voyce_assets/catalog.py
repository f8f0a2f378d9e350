"""The Unity Catalog spec: every table and volume of the pipeline, declared once.

Everything else is derived from ``TABLES`` and ``VOLUMES``: Arrow/Delta schemas, Dagster column
metadata, the app-database DDL for PostgreSQL, the Databricks DDL, and (in later layers) the
data-quality checks. Types follow the original notebooks (STRING unless noted) with their bugs
fixed: ids are UUIDs, money is DECIMAL, every table carries a DATE partition column.

Partitioning: one daily partition per UTC event date. App-mirrored tables and the tables that
describe one voice feedback derive ``event_date`` from a timestamp (``partition_source``), so
that materializing partition D of any asset touches exactly the rows of D's feedback.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import pyarrow as pa
from dagster import TableColumn, TableColumnConstraints, TableConstraints, TableSchema

# The pipeline's stages, in the order data flows (the notebooks 01-06 and their jobs), plus
# operations. Each is a package of voyce_assets and the group of its assets in the UI; every
# table names the one stage that writes it.
STAGES: tuple[str, ...] = (
    "ingestion",
    "voice",
    "text",
    "training",
    "inference",
    "analytics",
    "operations",
)


class Owner(enum.StrEnum):
    """Who writes a table: the Voyce app (mirrored from PostgreSQL) or a pipeline asset."""

    APP = "app"
    PIPELINE = "pipeline"


@dataclass(frozen=True)
class LogicalType:
    """One column type and its spelling in each system we target."""

    name: str
    arrow: pa.DataType
    postgres: str
    databricks: str


STRING = LogicalType("string", pa.string(), "TEXT", "STRING")
UUID = LogicalType("uuid", pa.string(), "UUID", "STRING")
JSON = LogicalType("json", pa.string(), "JSONB", "STRING")
INT = LogicalType("int", pa.int32(), "INTEGER", "INT")
BIGINT = LogicalType("bigint", pa.int64(), "BIGINT", "BIGINT")
DOUBLE = LogicalType("double", pa.float64(), "DOUBLE PRECISION", "DOUBLE")
MONEY = LogicalType("decimal(18,6)", pa.decimal128(18, 6), "NUMERIC(18,6)", "DECIMAL(18,6)")
BOOLEAN = LogicalType("boolean", pa.bool_(), "BOOLEAN", "BOOLEAN")
TIMESTAMP = LogicalType("timestamp", pa.timestamp("us", tz="UTC"), "TIMESTAMPTZ", "TIMESTAMP")
DATE = LogicalType("date", pa.date32(), "DATE", "DATE")
ARRAY_DOUBLE = LogicalType(
    "array<double>", pa.list_(pa.float64()), "DOUBLE PRECISION[]", "ARRAY<DOUBLE>"
)
ARRAY_STRING = LogicalType("array<string>", pa.list_(pa.string()), "TEXT[]", "ARRAY<STRING>")


@dataclass(frozen=True)
class Column:
    name: str
    type: LogicalType = STRING
    nullable: bool = True
    description: str = ""
    # A closed vocabulary the app or the pipeline promises; checked downstream, enforced in
    # the demo app schema.
    allowed: tuple[str, ...] | None = None
    # Fixed length of an array column (MFCC = 13, embedding = 384 ...).
    length: int | None = None
    # Foreign key in the app database, "table.column".
    references: str | None = None
    # Personal data: masked wherever rows are shown (previews, check metadata).
    pii: bool = False


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    owner: Owner
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    partition_column: str
    # The stage (package and asset group) whose asset is the table's one writer; for an
    # app-owned table, the stage that mirrors it.
    stage: str
    # Where the partition date comes from: a column of this table, or "table.column" of the
    # feedback the row describes. None when the partition column is itself a business date.
    partition_source: str | None = "created_at"
    # Column that only exists in the lakehouse (computed while writing), never in the app DB.
    lakehouse_only: tuple[str, ...] = field(default=())
    # Columns OPTIMIZE co-locates (Z-ORDER BY), those the notebooks' queries filter on; empty:
    # plain compaction. Within each partition, so never the partition column.
    z_order: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        types = {c.name: c.type for c in self.columns}
        if len(set(self.z_order)) != len(self.z_order):
            raise ValueError(f"{self.path}: z_order repeats a column: {self.z_order}")
        for col in self.z_order:
            if col not in types:
                raise ValueError(f"{self.path}: z_order column {col!r} is not a column")
            if col == self.partition_column:
                raise ValueError(f"{self.path}: z_order column {col!r} is the partition column")
            if types[col].name.startswith("array"):
                # Delta keeps no min/max statistics of arrays: no file could be skipped.
                raise ValueError(f"{self.path}: z_order column {col!r} is an array")

    @property
    def key(self) -> tuple[str, str]:
        return (self.schema, self.name)

    @property
    def path(self) -> str:
        """``schema/table``: the asset key path and the Delta folder below the catalog."""
        return f"{self.schema}/{self.name}"

    def full_name(self, catalog: str) -> str:
        return f"{catalog}.{self.schema}.{self.name}"

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.path} has no column {name!r}")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def source_columns(self) -> tuple[Column, ...]:
        """Columns the app database holds (app-owned tables only)."""
        return tuple(c for c in self.columns if c.name not in self.lakehouse_only)

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if not c.nullable]

    def mask(self, row: dict) -> dict:
        """The row with its personal-data columns masked, for previews and check metadata."""
        pii = {c.name for c in self.columns if c.pii}
        return {k: ("***" if k in pii and v is not None else v) for k, v in row.items()}

    @property
    def has_updated_at(self) -> bool:
        return any(c.name == "updated_at" for c in self.columns)

    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [
                pa.field(
                    c.name,
                    c.type.arrow,
                    nullable=c.nullable,
                    metadata={"comment": c.description} if c.description else None,
                )
                for c in self.columns
            ]
        )

    def column_schema(self) -> TableSchema:
        """Dagster ``dagster/column_schema`` metadata."""
        single_pk = self.primary_key[0] if len(self.primary_key) == 1 else None
        columns = []
        for c in self.columns:
            other = []
            if c.name in self.primary_key:
                other.append("primary key")
            if c.name == self.partition_column:
                other.append(f"partition column (from {self.partition_source or 'itself'})")
            if c.allowed:
                other.append("one of " + ", ".join(c.allowed))
            if c.length:
                other.append(f"length {c.length}")
            if c.references:
                other.append(f"references {c.references}")
            if c.pii:
                other.append("personal data (masked in previews)")
            columns.append(
                TableColumn(
                    name=c.name,
                    type=c.type.databricks,
                    description=c.description or None,
                    constraints=TableColumnConstraints(
                        nullable=c.nullable, unique=c.name == single_pk, other=other
                    ),
                )
            )
        return TableSchema(
            columns=columns,
            constraints=TableConstraints(
                other=[
                    f"PRIMARY KEY ({', '.join(self.primary_key)})",
                    f"PARTITIONED BY ({self.partition_column})",
                    *([f"ZORDER BY ({', '.join(self.z_order)})"] if self.z_order else []),
                ]
            ),
        )


@dataclass(frozen=True)
class Volume:
    schema: str
    name: str
    description: str
    # The stage whose asset writes the volume; None for the app's own uploads.
    stage: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.schema, self.name)

    @property
    def path(self) -> str:
        return f"{self.schema}/{self.name}"

    def full_name(self, catalog: str) -> str:
        return f"{catalog}.{self.schema}.{self.name}"


SCHEMAS: dict[str, str] = {
    "raw_data": "Mirrors of the Voyce app database plus per-feedback transcripts and sentiment.",
    "processed_data": "Features and enriched text derived from raw_data.",
    "ml_models": "Model registry and predictions of the sentiment classifiers.",
    "analytics": "Daily aggregates for business intelligence and cost monitoring.",
}

FEEDBACK_STATUSES = ("pending", "processing", "completed", "failed")
SENTIMENT_LABELS = ("positive", "neutral", "negative", "mixed")


def _id(description: str = "Primary key (UUID).") -> Column:
    return Column("id", UUID, nullable=False, description=description)


def _created_at(description: str = "When the row was created (UTC).") -> Column:
    return Column("created_at", TIMESTAMP, nullable=False, description=description)


def _updated_at() -> Column:
    return Column("updated_at", TIMESTAMP, nullable=False, description="Last change (UTC).")


def _event_date(source: str) -> Column:
    return Column(
        "event_date",
        DATE,
        nullable=False,
        description=f"UTC date of {source}; the daily partition of the row.",
    )


def _feedback_ref(nullable: bool = False) -> Column:
    return Column(
        "voice_feedback_id",
        UUID,
        nullable=nullable,
        description="The voice feedback this row describes.",
        references="voice_feedback.id",
    )


def _org_ref(nullable: bool = False, references: str | None = "organizations.id") -> Column:
    return Column(
        "organization_id",
        UUID,
        nullable=nullable,
        description="Owning organization.",
        references=references,
    )


def _table(
    schema: str,
    name: str,
    owner: Owner,
    stage: str,
    description: str,
    columns: list[Column],
    primary_key: tuple[str, ...] = ("id",),
    partition_source: str | None = "created_at",
    partition_column: str = "event_date",
    z_order: tuple[str, ...] = (),
) -> Table:
    """Declare a table; a derived ``event_date`` partition column is appended automatically."""
    if stage not in STAGES:
        raise ValueError(f"{schema}.{name}: unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    lakehouse_only: tuple[str, ...] = ()
    if partition_source is not None:
        columns = [*columns, _event_date(partition_source)]
        lakehouse_only = ("event_date",)
    return Table(
        schema=schema,
        name=name,
        owner=owner,
        description=description,
        columns=tuple(columns),
        primary_key=primary_key,
        partition_column=partition_column,
        stage=stage,
        partition_source=partition_source,
        lakehouse_only=lakehouse_only,
        z_order=z_order,
    )


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


_FEEDBACK_EVENT = "voice_feedback.created_at"

TABLES: tuple[Table, ...] = (
    # ---- raw_data: app-owned, mirrored from PostgreSQL -----------------------------------
    _table(
        "raw_data",
        "organizations",
        Owner.APP,
        "ingestion",
        "Customer organizations of Voyce.",
        [
            _id(),
            Column("name", nullable=False, description="Display name."),
            Column("industry", description="Industry, e.g. retail, fintech."),
            Column("company_size", allowed=("1-10", "11-50", "51-200", "201-1000", "1000+")),
            Column(
                "subscription_tier",
                nullable=False,
                allowed=("free", "starter", "professional", "enterprise"),
            ),
            Column("settings", JSON, description="Organization settings (JSON object)."),
            _created_at(),
            _updated_at(),
            Column("is_active", BOOLEAN, nullable=False),
        ],
    ),
    _table(
        "raw_data",
        "users",
        Owner.APP,
        "ingestion",
        "People who record or manage feedback.",
        [
            _id(),
            _org_ref(),
            Column("email", nullable=False, pii=True),
            Column("full_name", pii=True),
            Column("role", nullable=False, allowed=("admin", "manager", "member", "viewer")),
            Column("department"),
            Column("phone_number", pii=True),
            Column("preferences", JSON, description="User preferences (JSON object)."),
            Column("last_login", TIMESTAMP),
            _created_at(),
            _updated_at(),
            Column("is_active", BOOLEAN, nullable=False),
        ],
    ),
    _table(
        "raw_data",
        "voice_feedback",
        Owner.APP,
        "ingestion",
        "One spoken feedback recording and its upload facts.",
        [
            _id(),
            _org_ref(),
            Column("user_id", UUID, description="Who recorded it.", references="users.id"),
            Column(
                "audio_file_path",
                nullable=False,
                description="Path of the recording inside the raw_data.audio_files volume.",
            ),
            Column("audio_duration_seconds", DOUBLE, description="Duration the app reported."),
            Column("audio_format", allowed=("wav", "mp3", "m4a", "flac", "ogg", "webm")),
            Column("file_size_bytes", BIGINT),
            Column("upload_source", allowed=("ios", "android", "web", "api")),
            Column("metadata", JSON, description="Free-form upload metadata (JSON object)."),
            Column("status", nullable=False, allowed=FEEDBACK_STATUSES),
            _created_at(),
            _updated_at(),
        ],
        z_order=("organization_id", "created_at", "status"),
    ),
    _table(
        "raw_data",
        "tags",
        Owner.APP,
        "ingestion",
        "Tag vocabulary for feedback.",
        [
            _id(),
            Column("name", nullable=False),
            Column(
                "category",
                allowed=("topic", "sentiment", "priority", "product", "custom", "auto_generated"),
            ),
            Column("description"),
            _created_at(),
        ],
    ),
    _table(
        "raw_data",
        "feedback_tags",
        Owner.APP,
        "ingestion",
        "Tags assigned to feedback, by people or by the auto-tagger.",
        [
            _id(),
            _feedback_ref(),
            Column("tag_id", UUID, nullable=False, references="tags.id"),
            Column(
                "assigned_by",
                nullable=False,
                description="'auto', 'auto_sentiment_analysis' (the text stage) or the user id.",
            ),
            Column("confidence_score", DOUBLE, description="0..1; 1 for manual tags."),
            _created_at(),
        ],
    ),
    _table(
        "raw_data",
        "action_items",
        Owner.APP,
        "ingestion",
        "Follow-ups created from feedback.",
        [
            _id(),
            _feedback_ref(),
            Column("description", nullable=False),
            Column("priority", nullable=False, allowed=("low", "medium", "high", "urgent")),
            Column("assigned_to", UUID, references="users.id"),
            Column("due_date", DATE),
            Column(
                "status",
                nullable=False,
                allowed=("open", "in_progress", "completed", "cancelled"),
            ),
            Column("completed_at", TIMESTAMP),
            _created_at(),
            _updated_at(),
        ],
    ),
    # ---- raw_data: pipeline-owned ---------------------------------------------------------
    _table(
        "raw_data",
        "transcriptions",
        Owner.PIPELINE,
        "voice",
        "Whisper speech-to-text, one row per voice feedback.",
        [
            _id(),
            _feedback_ref(),
            Column("transcription_text"),
            Column("transcription_engine", nullable=False, description="Engine and model."),
            Column("confidence_score", DOUBLE, description="From the decoder, 0..1."),
            Column("language_detected"),
            Column("word_count", INT),
            Column("processing_time_ms", BIGINT),
            Column("error_message", description="Why transcription failed; null when fine."),
            _created_at(),
        ],
        partition_source=_FEEDBACK_EVENT,
        z_order=("voice_feedback_id", "created_at"),
    ),
    _table(
        "raw_data",
        "sentiment_analysis",
        Owner.PIPELINE,
        "text",
        "Sentiment, emotions, key phrases and topics of each transcript, with what it cost.",
        [
            _id(),
            Column("transcription_id", UUID, nullable=False),
            _feedback_ref(),
            Column(
                "sentiment_label",
                allowed=SENTIMENT_LABELS,
                description="Null only when the analysis failed (see error_message).",
            ),
            Column("sentiment_score", DOUBLE, description="-1 (negative) .. 1 (positive)."),
            Column("sentiment_confidence", DOUBLE, description="0..1."),
            Column("emotions", JSON, description="JSON list of emotions."),
            Column("key_phrases", JSON, description="JSON list of key phrases (at most 5)."),
            Column("topics", JSON, description="JSON list of topics (at most 5)."),
            Column("named_entities", JSON, description="JSON list of named entities."),
            Column("urgency", INT, description="1 (none) .. 5 (act now)."),
            Column("summary", description="One sentence."),
            Column("action_items", JSON, description="JSON list of suggested actions."),
            Column("model_used", nullable=False, description="Provider and model."),
            Column("model_version", description="Prompt version the result answers."),
            Column("provider", nullable=False, allowed=("anthropic", "openai", "local")),
            Column(
                "api_mode",
                nullable=False,
                allowed=("messages", "batch", "local"),
                description="How it was called: batch is billed at half price.",
            ),
            Column("input_tokens", BIGINT, description="Billed input tokens (0 if cached)."),
            Column("output_tokens", BIGINT, description="Billed output tokens (0 if cached)."),
            Column(
                "cached",
                BOOLEAN,
                nullable=False,
                description="Served from the content-hash cache: no provider call was made.",
            ),
            Column("text_sha256", nullable=False, description="Hash of the analysed text."),
            Column("processing_time_ms", BIGINT),
            Column("error_message", description="Why the analysis failed; null when fine."),
            _created_at(),
        ],
        partition_source=_FEEDBACK_EVENT,
        z_order=("voice_feedback_id", "sentiment_label"),
    ),
    # ---- processed_data -------------------------------------------------------------------
    _table(
        "processed_data",
        "audio_features",
        Owner.PIPELINE,
        "voice",
        "Acoustic features of each recording.",
        [
            _id(),
            _feedback_ref(),
            _org_ref(references=None),
            Column("duration_seconds", DOUBLE),
            Column("sample_rate", INT),
            Column("bit_rate", BIGINT, description="Bits per second of the stored file."),
            Column("channels", INT),
            Column("avg_volume", DOUBLE, description="Mean RMS level, dBFS."),
            Column("max_volume", DOUBLE, description="Peak level, dBFS."),
            Column("silence_ratio", DOUBLE, description="Share of frames below the threshold."),
            Column("speech_rate", DOUBLE, description="Words per minute of voiced audio."),
            Column("pitch_mean", DOUBLE, description="Hz."),
            Column("pitch_std", DOUBLE, description="Hz."),
            Column("energy_mean", DOUBLE),
            Column("energy_std", DOUBLE),
            Column("mfcc_features", ARRAY_DOUBLE, description="13 MFCC means.", length=13),
            Column(
                "spectral_features",
                ARRAY_DOUBLE,
                description="Centroid, rolloff, bandwidth: mean and std each.",
                length=6,
            ),
            _created_at(),
        ],
        partition_source=_FEEDBACK_EVENT,
    ),
    _table(
        "processed_data",
        "enhanced_transcriptions",
        Owner.PIPELINE,
        "text",
        "Cleaned transcripts with text statistics, sentiment, entities and embeddings.",
        [
            _id(),
            _feedback_ref(),
            _org_ref(references=None),
            Column("transcription_text"),
            Column("cleaned_text"),
            Column("language"),
            Column("word_count", INT),
            Column("sentence_count", INT),
            Column("avg_word_length", DOUBLE),
            Column("unique_word_count", INT),
            Column("sentiment_label", allowed=SENTIMENT_LABELS),
            Column("sentiment_score", DOUBLE),
            Column("key_phrases", ARRAY_STRING),
            Column("topics", ARRAY_STRING),
            Column("named_entities", ARRAY_STRING),
            Column(
                "text_embedding", ARRAY_DOUBLE, description="all-MiniLM-L6-v2 vector.", length=384
            ),
            Column("embedding_model", description="Model that made text_embedding."),
            Column(
                "embedding_cached",
                BOOLEAN,
                description="text_embedding came from the content-hash cache (not computed).",
            ),
            Column("processing_timestamp", TIMESTAMP),
            _created_at(),
        ],
        partition_source=_FEEDBACK_EVENT,
    ),
    _table(
        "processed_data",
        "training_dataset",
        Owner.PIPELINE,
        "training",
        "Labelled feature vectors for the sentiment classifiers.",
        [
            _id(),
            _feedback_ref(),
            _org_ref(references=None),
            Column("features", ARRAY_DOUBLE, nullable=False, description="Feature vector."),
            Column("label", nullable=False, allowed=SENTIMENT_LABELS),
            Column("label_confidence", DOUBLE),
            Column("label_source", description="provider/model of the text stage's label."),
            Column("split", nullable=False, allowed=("train", "validation", "test")),
            _created_at(),
        ],
        partition_source=_FEEDBACK_EVENT,
    ),
    # ---- ml_models ------------------------------------------------------------------------
    _table(
        "ml_models",
        "model_registry",
        Owner.PIPELINE,
        "training",
        "Trained models, their MLflow runs and stage.",
        [
            Column("model_id", UUID, nullable=False),
            Column("model_name", nullable=False),
            Column("model_version", nullable=False),
            Column(
                "model_type",
                allowed=("logistic_regression", "random_forest", "xgboost", "lightgbm"),
            ),
            Column("framework"),
            Column("mlflow_run_id"),
            Column("mlflow_model_uri"),
            Column("metrics", JSON),
            Column("parameters", JSON),
            Column("tags", JSON),
            Column(
                "stage",
                allowed=("None", "Staging", "Production", "Archived"),
                description="Production: the champion alias; Staging: the challenger; Archived: "
                "held one before a later training took it.",
            ),
            Column(
                "training_seconds",
                DOUBLE,
                description="Compute seconds spent fitting the version (its AutoML trials "
                "included); what cost_tracking prices.",
            ),
            _created_at(),
            _updated_at(),
        ],
        primary_key=("model_id",),
    ),
    _table(
        "ml_models",
        "predictions",
        Owner.PIPELINE,
        "inference",
        "Batch predictions of the champion (and challenger) models.",
        [
            Column("prediction_id", UUID, nullable=False),
            _feedback_ref(),
            Column("model_id", UUID, nullable=False),
            Column("model_name", nullable=False, description="Registered model name."),
            Column("model_version", nullable=False),
            Column(
                "ab_arm",
                nullable=False,
                allowed=("A", "B"),
                description="A: the champion; B: the challenger (a fixed share, by id hash).",
            ),
            Column("predicted_label", nullable=False, allowed=SENTIMENT_LABELS),
            Column("prediction_confidence", DOUBLE),
            Column("prediction_probabilities", JSON, description="JSON object label -> p."),
            Column("features_used", JSON, description="JSON list of feature names."),
            Column("prediction_timestamp", TIMESTAMP, nullable=False),
            Column(
                "inference_time_ms",
                DOUBLE,
                description="The row's share of its batch's predict time; what cost_tracking "
                "prices.",
            ),
        ],
        primary_key=("prediction_id",),
        partition_source=_FEEDBACK_EVENT,
    ),
    # ---- analytics ------------------------------------------------------------------------
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
        "Per day and resource type: cost, feedback served and cost per feedback, flagged "
        "when it is above 1.2x the p90 or 1.5x the median of the 30 days to that day.",
        [*_COST_FIGURES],
        ("date", "resource_type"),
        partition_column="date",
    ),
    _view(
        "cost_by_month",
        "Per calendar month (12 to the as-of day) and resource type: cost and cost per "
        "feedback, flagged against the months shown (1.2x p90 or 1.5x median).",
        [Column("month_start", DATE, nullable=False), *_COST_FIGURES],
        ("as_of_date", "month_start", "resource_type"),
    ),
    _view(
        "cost_by_organization",
        "Per organization, the 30 days to the as-of day: cost and cost per feedback, "
        "flagged against the organizations' (1.2x p90 or 1.5x median).",
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
            Column("description"),
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

VOLUMES: tuple[Volume, ...] = (
    Volume("raw_data", "audio_files", "Original voice feedback recordings as uploaded."),
    Volume(
        "processed_data",
        "processed_audio",
        "Normalized 16 kHz mono copies of the recordings used for transcription.",
        stage="voice",
    ),
    Volume("ml_models", "artifacts", "Model artifacts, plots and reports.", stage="training"),
)

TABLES_BY_PATH: dict[str, Table] = {t.path: t for t in TABLES}
VOLUMES_BY_PATH: dict[str, Volume] = {v.path: v for v in VOLUMES}
APP_TABLES: tuple[Table, ...] = tuple(t for t in TABLES if t.owner is Owner.APP)


def table(path: str) -> Table:
    """Look a table up by ``schema/name``."""
    try:
        return TABLES_BY_PATH[path]
    except KeyError:
        raise KeyError(f"unknown table {path!r}; known: {', '.join(TABLES_BY_PATH)}") from None


def volume(path: str) -> Volume:
    try:
        return VOLUMES_BY_PATH[path]
    except KeyError:
        raise KeyError(f"unknown volume {path!r}; known: {', '.join(VOLUMES_BY_PATH)}") from None
