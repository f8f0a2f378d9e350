"""``processed_data/enhanced_transcriptions``: each usable transcript cleaned, measured,
joined to its sentiment and embedded (all-MiniLM-L6-v2, 384 floats).

Embeddings come from the content-hash cache when the text was embedded before (by this asset
or by the local analyzer), so a second materialization computes none.
"""

import datetime as dt
import json

from dagster import AssetExecutionContext, MaterializeResult, RetryPolicy

from voyce_assets.automation import hourly_after_upstream
from voyce_assets.catalog import table
from voyce_assets.charts import markdown_table
from voyce_assets.feedback import existing_rows, partition_feedback, row_id, write_partition
from voyce_assets.partitions import by_partition, partition_dates, record_partitions
from voyce_assets.resources import Lakehouse
from voyce_assets.tables import table_asset
from voyce_assets.text.checks import (
    ENHANCED_CHECKS,
    embedding_check,
    label_check,
    score_check,
)
from voyce_assets.text.cleaning import text_stats
from voyce_assets.text.embedder import DIMENSIONS, Embedder
from voyce_assets.text.sentiment_analysis import (
    SENTIMENT,
    TRANSCRIPTIONS,
    analysable_text,
    redacted,
)

ENHANCED = table("processed_data/enhanced_transcriptions")
# No free text (the transcript, topics ...): Dagster's event log cannot forget one person.
PREVIEW_COLUMNS = [
    "voice_feedback_id",
    "word_count",
    "sentence_count",
    "sentiment_label",
    "sentiment_score",
    "embedding_cached",
]


def _list(value: str | None) -> list[str] | None:
    return json.loads(value) if value else None


@table_asset(
    ENHANCED.path,
    deps=[TRANSCRIPTIONS.path, SENTIMENT.path, "raw_data/voice_feedback"],
    retry_policy=RetryPolicy(max_retries=2, delay=60),
    automation_condition=hourly_after_upstream(),
    kinds={"pytorch"},
    # One at a time (dagster.yaml): runs share the provider's rate limit and the cache file.
    pool="text",
    required_resource_keys={"lakehouse", "embedder"},
    checks=ENHANCED_CHECKS,
)
def enhanced_transcriptions(context: AssetExecutionContext) -> MaterializeResult:
    lakehouse: Lakehouse = context.resources.lakehouse
    embedder: Embedder = context.resources.embedder
    dates = partition_dates(context)
    organization = {f.id: f.organization_id for f in partition_feedback(lakehouse, dates)}
    sentiment = existing_rows(lakehouse, SENTIMENT, dates)
    usable = sorted(
        (
            (t, text)
            for t in existing_rows(lakehouse, TRANSCRIPTIONS, dates).values()
            if (text := analysable_text(t))
        ),
        key=lambda pair: (pair[0]["event_date"], pair[0]["voice_feedback_id"]),
    )
    # A transcript whose feedback is gone from the mirror has no organization: left out.
    orphans = [
        t["voice_feedback_id"] for t, _ in usable if t["voice_feedback_id"] not in organization
    ]
    usable = [(t, text) for t, text in usable if t["voice_feedback_id"] in organization]
    transcripts = [t for t, _ in usable]
    cleaned = [text for _, text in usable]
    computed_before = embedder.computed
    vectors, cached = embedder.embed(cleaned)
    now = dt.datetime.now(dt.UTC)
    rows = []
    for t, text, vector, hit in zip(transcripts, cleaned, vectors, cached, strict=True):
        s = sentiment.get(t["voice_feedback_id"])
        # Only a sentiment row of this very transcription, and a successful one, is joined.
        s = s if s and s["transcription_id"] == t["id"] and not s["error_message"] else None
        rows.append(
            {
                "id": row_id(t["id"], "enhanced"),
                "voice_feedback_id": t["voice_feedback_id"],
                "organization_id": organization[t["voice_feedback_id"]],
                # The redacted transcript, before cleaning (never the raw one).
                "transcription_text": redacted(t),
                "cleaned_text": text,
                "language": t["language_detected"],
                **text_stats(text),
                "sentiment_label": s["sentiment_label"] if s else None,
                "sentiment_score": s["sentiment_score"] if s else None,
                "key_phrases": _list(s["key_phrases"]) if s else None,
                "topics": _list(s["topics"]) if s else None,
                "named_entities": _list(s["named_entities"]) if s else None,
                "text_embedding": vector.astype(float).tolist(),
                "embedding_model": embedder.model_name,
                "embedding_cached": bool(hit),
                "processing_timestamp": now,
                "created_at": now,
                "event_date": t["event_date"],
            }
        )
    write_partition(lakehouse, ENHANCED, rows, dates)
    per_day = by_partition(context, rows, lambda r: r["event_date"])
    record_partitions(
        context,
        {
            key: {
                "dagster/partition_row_count": len(day),
                "embeddings_computed": sum(1 for r in day if not r["embedding_cached"]),
                "embeddings_cached": sum(1 for r in day if r["embedding_cached"]),
                "without_sentiment": sum(1 for r in day if r["sentiment_label"] is None),
                "preview": markdown_table(day[:10], PREVIEW_COLUMNS),
            }
            for key, day in per_day.items()
        },
    )
    stored = lakehouse.read(
        ENHANCED, dates, ["id", "sentiment_label", "sentiment_score", "text_embedding"]
    ).to_pylist()
    return MaterializeResult(
        metadata={
            "embedding_model": embedder.model_name,
            "embeddings_computed_in_run": embedder.computed - computed_before,
            "orphan_transcripts": len(orphans),
        },
        check_results=[
            label_check(stored, allow_unlabelled=True),
            score_check(stored, allow_unlabelled=True),
            embedding_check(stored, DIMENSIONS),
        ],
    )
