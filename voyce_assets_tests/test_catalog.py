"""The catalog spec covers DESIGN.md's tables and volumes and derives consistent schemas."""

import pyarrow as pa
import pytest

from voyce_assets.catalog import APP_TABLES, DATE, TABLES, VOLUMES, Owner, table

# Column lists of DESIGN.md (the original notebooks); the spec may add columns, never drop.
DESIGN_COLUMNS = {
    "raw_data/organizations": "id name industry company_size subscription_tier settings created_at updated_at is_active",
    "raw_data/users": "id organization_id email full_name role department phone_number preferences last_login created_at updated_at is_active",
    "raw_data/voice_feedback": "id organization_id user_id audio_file_path audio_duration_seconds audio_format file_size_bytes upload_source metadata status created_at updated_at",
    "raw_data/transcriptions": "id voice_feedback_id transcription_text transcription_engine confidence_score language_detected word_count processing_time_ms error_message created_at",
    "raw_data/sentiment_analysis": "id transcription_id voice_feedback_id sentiment_label sentiment_score sentiment_confidence emotions key_phrases topics model_used model_version processing_time_ms created_at",
    "raw_data/tags": "id name category description created_at",
    "raw_data/feedback_tags": "id voice_feedback_id tag_id assigned_by confidence_score created_at",
    "raw_data/action_items": "id voice_feedback_id description priority assigned_to due_date status completed_at created_at updated_at",
    "processed_data/audio_features": "id voice_feedback_id organization_id duration_seconds sample_rate bit_rate channels avg_volume max_volume silence_ratio speech_rate pitch_mean pitch_std energy_mean energy_std mfcc_features spectral_features",
    "processed_data/enhanced_transcriptions": "id voice_feedback_id organization_id transcription_text cleaned_text language word_count sentence_count avg_word_length unique_word_count sentiment_label sentiment_score key_phrases topics named_entities text_embedding processing_timestamp created_at",
    "processed_data/training_dataset": "id voice_feedback_id organization_id features label label_confidence split created_at",
    "ml_models/model_registry": "model_id model_name model_version model_type framework mlflow_run_id mlflow_model_uri metrics parameters tags stage created_at updated_at",
    "ml_models/predictions": "prediction_id voice_feedback_id model_id model_version predicted_label prediction_confidence prediction_probabilities features_used prediction_timestamp inference_time_ms",
    "analytics/daily_feedback_summary": "date organization_id total_feedback_count avg_duration_seconds sentiment_positive_count sentiment_neutral_count sentiment_negative_count avg_sentiment_score top_topics top_tags processing_success_rate avg_processing_time_ms created_at",
    "analytics/organization_metrics": "organization_id metric_date total_users active_users total_feedback_count avg_feedback_per_user total_audio_minutes storage_used_gb api_calls_count processing_cost_usd created_at",
    "analytics/cost_tracking": "id organization_id resource_type resource_id operation quantity unit_cost total_cost currency cost_date metadata created_at",
}
# Types DESIGN.md names explicitly.
DESIGN_TYPES = {
    ("raw_data/organizations", "is_active"): "BOOLEAN",
    ("raw_data/voice_feedback", "audio_duration_seconds"): "DOUBLE",
    ("raw_data/voice_feedback", "file_size_bytes"): "BIGINT",
    ("raw_data/transcriptions", "confidence_score"): "DOUBLE",
    ("raw_data/transcriptions", "word_count"): "INT",
    ("raw_data/transcriptions", "processing_time_ms"): "BIGINT",
    ("raw_data/sentiment_analysis", "sentiment_score"): "DOUBLE",
    ("raw_data/feedback_tags", "confidence_score"): "DOUBLE",
    ("processed_data/audio_features", "mfcc_features"): "ARRAY<DOUBLE>",
    ("processed_data/enhanced_transcriptions", "text_embedding"): "ARRAY<DOUBLE>",
    ("processed_data/enhanced_transcriptions", "topics"): "ARRAY<STRING>",
    ("analytics/daily_feedback_summary", "top_tags"): "ARRAY<STRING>",
}


def test_the_sixteen_design_tables_the_analytics_views_and_three_volumes():
    from voyce_assets.analytics.views import VIEWS

    assert len(DESIGN_COLUMNS) == 16
    # Beyond DESIGN.md's tables, only the analytics views (the notebook's other queries) and
    # the seed's monitoring metrics (analytics/pipeline_health, which the alerts read), and
    # the erasure log (raw_data/erasure_log: right to erasure, and the syncs' tombstones).
    assert sorted(t.path for t in TABLES) == sorted(
        [*DESIGN_COLUMNS, *VIEWS, "analytics/pipeline_health", "raw_data/erasure_log"]
    )
    assert sorted(v.path for v in VOLUMES) == [
        "ml_models/artifacts",
        "processed_data/processed_audio",
        "raw_data/audio_files",
    ]


@pytest.mark.parametrize("path", sorted(DESIGN_COLUMNS))
def test_design_columns_present(path):
    spec = table(path)
    missing = set(DESIGN_COLUMNS[path].split()) - set(spec.column_names)
    assert not missing, f"{path} lacks {missing}"
    assert len(spec.column_names) == len(set(spec.column_names))


def test_design_types():
    for (path, column), expected in DESIGN_TYPES.items():
        assert table(path).column(column).type.databricks == expected, (path, column)
    assert table("processed_data/audio_features").column("mfcc_features").length == 13
    assert table("processed_data/audio_features").column("spectral_features").length == 6
    assert table("processed_data/enhanced_transcriptions").column("text_embedding").length == 384


@pytest.mark.parametrize("spec", TABLES, ids=lambda t: t.path)
def test_partition_and_key_invariants(spec):
    part = spec.column(spec.partition_column)
    assert part.type is DATE and not part.nullable
    for key in spec.primary_key:
        assert not spec.column(key).nullable
    schema = spec.arrow_schema()
    assert schema.names == spec.column_names
    assert schema.field(spec.partition_column).type == pa.date32()
    # Timestamps are UTC-aware: a naive one would let a writer overwrite the whole table.
    for f in schema:
        if pa.types.is_timestamp(f.type):
            assert f.type.tz == "UTC"
    if spec.partition_source:
        source = spec.partition_source.split(".")[-1]
        # When the row came to be; for an erasure, when it was asked for.
        assert source == ("requested_at" if spec.path == "raw_data/erasure_log" else "created_at")
        assert spec.lakehouse_only == (spec.partition_column,)


def test_owners_one_writer_per_table():
    assert [t.name for t in APP_TABLES] == [
        "organizations",
        "users",
        "voice_feedback",
        "tags",
        "feedback_tags",
        "action_items",
    ]
    pipeline = {t.name for t in TABLES if t.owner is Owner.PIPELINE}
    assert {"transcriptions", "sentiment_analysis", "cost_tracking"} <= pipeline
    # Tables without updated_at are tracked by created_at (the CDC stage relies on this).
    assert {t.name for t in APP_TABLES if not t.has_updated_at} == {"tags", "feedback_tags"}


def test_column_schema_metadata_matches_spec():
    spec = table("raw_data/voice_feedback")
    schema = spec.column_schema()
    assert [c.name for c in schema.columns] == spec.column_names
    by_name = {c.name: c for c in schema.columns}
    assert by_name["id"].constraints.unique and not by_name["id"].constraints.nullable
    assert by_name["user_id"].constraints.nullable
    assert by_name["file_size_bytes"].type == "BIGINT"
    assert any("one of pending" in o for o in by_name["status"].constraints.other)
    assert "PARTITIONED BY (event_date)" in schema.constraints.other


def test_unknown_table_names_the_choices():
    with pytest.raises(KeyError, match="raw_data/voice_feedback"):
        table("raw_data/nope")


def test_each_schema_module_declares_its_schema_only():
    # catalog/<schema>.py holds that schema's tables and volumes, and every schema has one.
    from voyce_assets import catalog

    for name in catalog.SCHEMAS:
        module = getattr(catalog, name)
        assert name == module.SCHEMA
        assert {t.schema for t in module.TABLES} <= {name}, name
        assert {v.schema for v in module.VOLUMES} <= {name}, name
    assert [t.schema for t in TABLES] == sorted(
        (t.schema for t in TABLES), key=list(catalog.SCHEMAS).index
    )
    paths = [t.path for t in TABLES]
    assert len(set(paths)) == len(paths)  # no table declared twice


def test_previews_mask_personal_data_free_text_and_users_ids():
    """What a preview (in Dagster's event log, which cannot forget one person) may show."""
    users, feedback, items = (
        table("raw_data/users"),
        table("raw_data/voice_feedback"),
        table("raw_data/action_items"),
    )
    user = {"id": "u1", "email": "a@b.c", "full_name": "Ann Bee", "role": "member"}
    assert users.mask(user) == {"id": "***", "email": "***", "full_name": "***", "role": "member"}
    row = {"id": "f1", "user_id": "u1", "organization_id": "o1", "metadata": '{"script": "hi"}'}
    assert feedback.mask(row) == {
        "id": "f1",
        "user_id": "***",
        "organization_id": "o1",
        "metadata": "***",
    }
    item = {"assigned_to": "u1", "description": "call Ann back", "priority": "high"}
    assert items.mask(item) == {"assigned_to": "***", "description": "***", "priority": "high"}
