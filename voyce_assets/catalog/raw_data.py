"""Schema ``raw_data``: the app tables mirrored from PostgreSQL (owned by the app, written by
the ingestion stage), the per-feedback transcripts and sentiment the pipeline writes beside
them, and the ``audio_files`` volume of the uploaded recordings.
"""

from __future__ import annotations

from voyce_assets.catalog.specs import (
    _FEEDBACK_EVENT,
    ARRAY_STRING,
    BIGINT,
    BOOLEAN,
    DATE,
    DOUBLE,
    FEEDBACK_STATUSES,
    INT,
    JSON,
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
    _updated_at,
)

SCHEMA = "raw_data"
DESCRIPTION = "Mirrors of the Voyce app database plus per-feedback transcripts and sentiment."

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
            Column(
                "metadata",
                JSON,
                free_text=True,
                description="Free-form upload metadata (JSON object).",
            ),
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
            Column("description", nullable=False, free_text=True),
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
            Column(
                "transcription_text",
                pii=True,
                description="What Whisper heard, personal data included: the record of what "
                "was said (column-masked in prod; nothing downstream reads it).",
            ),
            Column(
                "redacted_text",
                free_text=True,
                description="transcription_text with personal data replaced by typed "
                "placeholders ([EMAIL], [PHONE] ...): the text every later stage reads.",
            ),
            Column(
                "pii_entities",
                JSON,
                description="JSON list of the personal data found: type, start and end in "
                "transcription_text, audio_start and audio_end in seconds (never the text).",
            ),
            Column(
                "redaction",
                description="Redactor version that made redacted_text, or 'off' where a "
                "deployment turned redaction off (then redacted_text is null).",
            ),
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
            Column(
                "key_phrases",
                JSON,
                free_text=True,
                description="JSON list of key phrases (at most 5).",
            ),
            Column("topics", JSON, free_text=True, description="JSON list of topics (at most 5)."),
            Column(
                "named_entities",
                JSON,
                free_text=True,
                description="JSON list of named entities.",
            ),
            Column("urgency", INT, description="1 (none) .. 5 (act now)."),
            Column("summary", free_text=True, description="One sentence."),
            Column(
                "action_items",
                JSON,
                free_text=True,
                description="JSON list of suggested actions.",
            ),
            Column("model_used", nullable=False, description="Provider and model."),
            Column("model_version", description="Prompt version the result answers."),
            Column("provider", nullable=False, allowed=("anthropic", "openai", "local")),
            Column(
                "api_mode",
                nullable=False,
                allowed=("messages", "batch", "local"),
                description="How it was called: batch is billed at half price.",
            ),
            Column(
                "input_tokens",
                BIGINT,
                description="Input tokens billed at the full input price (beside the prompt "
                "cache's). Cached: what the row written before for this transcription "
                "carried, and an earlier failed attempt's not recorded yet.",
            ),
            Column(
                "output_tokens",
                BIGINT,
                description="Billed output tokens (cached: as input_tokens says).",
            ),
            Column(
                "cache_write_tokens",
                BIGINT,
                description="Input tokens written to the provider's prompt cache (Anthropic: "
                "1.25x the input price).",
            ),
            Column(
                "cache_read_tokens",
                BIGINT,
                description="Input tokens read from the provider's prompt cache (Anthropic: "
                "0.1x the input price).",
            ),
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
    _table(
        "raw_data",
        "erasure_log",
        Owner.PIPELINE,
        "operations",
        "Every erasure request carried out: who (hashed), when, what was removed. Also the "
        "tombstone list: a sync, CDC tick or sweep never brings an erased id back.",
        [
            _id("The erasure request."),
            Column("subject_type", nullable=False, allowed=("user", "feedback", "organization")),
            Column(
                "subject_hash",
                nullable=False,
                description="privacy.tombstones.subject_hash of the subject id (never the id).",
            ),
            Column(
                "reason",
                nullable=False,
                allowed=("request", "app_delete"),
                description="A right-to-erasure request, or the app having deleted the subject.",
            ),
            Column("requested_at", TIMESTAMP, nullable=False),
            Column("completed_at", TIMESTAMP),
            Column(
                "erased_id_hashes",
                ARRAY_STRING,
                nullable=False,
                description="Hashes of the subject id and every id erased with it (its "
                "feedback, an organization's users): the tombstones the syncs honour.",
            ),
            Column("removed", JSON, description="What was removed: rows or files per store."),
            Column(
                "purged",
                BOOLEAN,
                nullable=False,
                description="Superseded Delta files deleted at once (no time travel to them).",
            ),
            Column(
                "vacuum_after",
                TIMESTAMP,
                description="Without purge: when the weekly VACUUM deletes the superseded files.",
            ),
            Column(
                "app_still_holds",
                BOOLEAN,
                description="The app database still held the subject when the request ran.",
            ),
            _created_at(),
        ],
        partition_source="requested_at",
    ),
)

VOLUMES: tuple[Volume, ...] = (
    Volume("raw_data", "audio_files", "Original voice feedback recordings as uploaded."),
)
