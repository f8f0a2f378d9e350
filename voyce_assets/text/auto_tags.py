"""Auto-tags: the topics the analyzer found, written back to the app's PostgreSQL.

``raw_data.tags`` and ``raw_data.feedback_tags`` are mirrors of the app (one writer per
table), so the tags go where the app keeps them and come back to the lake through the CDC
like any tag a person adds. Ids are derived from the content, so re-running inserts nothing
twice. When a new analysis (prompt, provider, taxonomy) drops a topic, its auto-tag is
removed from the app; a delete leaves no trace for the CDC, so the daily reconciliation
sweep finds that partition's count changed and re-syncs it.

Only the taxonomy's topics become tags (``AutoTagger.topics``, the analyzer's taxonomy): the
analyzers already keep no other, and a row stored before they did (or by another analyzer)
never adds a name of its own to the app's shared ``tags`` table.
"""

import datetime as dt
import json
import re
import uuid

from dagster import (
    AssetExecutionContext,
    AssetKey,
    ConfigurableResource,
    MaterializeResult,
    RetryPolicy,
)
from pydantic import Field

from voyce_assets.automation import hourly_after_upstream
from voyce_assets.partitions import by_partition, partition_dates, record_partitions
from voyce_assets.resources import AppDatabase, Lakehouse
from voyce_assets.tables import partitioned_asset
from voyce_assets.text.sentiment_analysis import SENTIMENT
from voyce_assets.text.taxonomy import TOPICS

CATEGORY = "auto_generated"
ASSIGNED_BY = "auto_sentiment_analysis"
AUTO_TAGS_KEY = AssetKey(["app_db", "auto_tags"])
_NAME = re.compile(r"[^a-z0-9]+")


class AutoTagger(ConfigurableResource):
    """Whether and how topics become tags in the app database."""

    enabled: bool = Field(default=True, description="Write auto-tags back to the app DB.")
    min_confidence: float = Field(
        default=0.0, description="Skip analyses less confident than this (0..1)."
    )
    topics: list[str] = Field(
        default_factory=lambda: list(TOPICS),
        description="The taxonomy's topic names (the analyzer's `topics`): only these become tags.",
    )


def tag_name(topic: str) -> str:
    """A topic as a tag name: lowercase words joined by underscores, at most 64 characters."""
    return _NAME.sub("_", topic.lower()).strip("_")[:64]


def tag_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"voyce:auto-tag:{name}"))


def feedback_tag_id(feedback_id: str, tag: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"voyce:auto-tag:{feedback_id}:{tag}"))


def tag_rows(
    rows: list[dict], min_confidence: float, topics: list[str]
) -> tuple[dict[str, str], list[dict]]:
    """``({tag id: name}, feedback_tags rows)`` for the analysed sentiment ``rows``, tags
    only of the taxonomy's ``topics``."""
    allowed = {tag_name(t) for t in topics}
    tags: dict[str, str] = {}
    links: list[dict] = []
    for row in rows:
        if row["error_message"] or (row["sentiment_confidence"] or 0.0) < min_confidence:
            continue
        for topic in json.loads(row["topics"] or "[]"):
            name = tag_name(topic)
            if name not in allowed:
                continue
            tags[tag_id(name)] = name
            links.append(
                {
                    "id": feedback_tag_id(row["voice_feedback_id"], name),
                    "voice_feedback_id": row["voice_feedback_id"],
                    "tag_id": tag_id(name),
                    "confidence_score": row["sentiment_confidence"],
                    "event_date": row["event_date"],
                }
            )
    return tags, links


def write_tags(
    app_db: AppDatabase, tags: dict[str, str], links: list[dict], feedback_ids: list[str]
) -> tuple[int, int, int]:
    """In one transaction: insert ``tags`` and ``links`` that are new, and remove the
    auto-tags of ``feedback_ids`` that the latest analysis no longer gives (a new prompt,
    provider or taxonomy). ``(new tags, new feedback tags, removed feedback tags)``."""
    now = dt.datetime.now(dt.UTC)
    with app_db.connect(snapshot=False) as conn, conn.cursor() as cur:
        cur.execute(
            "DELETE FROM feedback_tags WHERE assigned_by = %s "
            "AND voice_feedback_id = ANY(%s::uuid[]) AND NOT (id = ANY(%s::uuid[]))",
            (ASSIGNED_BY, feedback_ids, [link["id"] for link in links]),
        )
        removed = cur.rowcount
        new_tags = 0
        for ident, name in sorted(tags.items()):
            cur.execute(
                "INSERT INTO tags (id, name, category, description, created_at) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (ident, name, CATEGORY, "Topic found by the sentiment analysis.", now),
            )
            new_tags += cur.rowcount
        new_links = 0
        for link in links:
            # The feedback may be gone from the app since the mirror ran: nothing to tag.
            cur.execute(
                "INSERT INTO feedback_tags "
                "(id, voice_feedback_id, tag_id, assigned_by, confidence_score, created_at) "
                "SELECT %s, f.id, %s, %s, %s, %s FROM voice_feedback f WHERE f.id = %s "
                "ON CONFLICT (id) DO NOTHING",
                (
                    link["id"],
                    link["tag_id"],
                    ASSIGNED_BY,
                    link["confidence_score"],
                    now,
                    link["voice_feedback_id"],
                ),
            )
            new_links += cur.rowcount
        conn.commit()
    return new_tags, new_links, removed


@partitioned_asset(
    AUTO_TAGS_KEY,
    group="text",
    deps=[SENTIMENT.path],
    kinds={"postgres"},
    retry_policy=RetryPolicy(max_retries=2, delay=30),
    automation_condition=hourly_after_upstream(),
    required_resource_keys={"lakehouse", "app_db", "auto_tagger"},
    description="Topics as tags (category auto_generated, assigned_by "
    "auto_sentiment_analysis) written back to the app's tags and feedback_tags tables; "
    "the CDC brings them into raw_data like any tag.",
)
def auto_tags(context: AssetExecutionContext) -> MaterializeResult:
    tagger: AutoTagger = context.resources.auto_tagger
    if not tagger.enabled:
        record_partitions(context, {k: {"written": "disabled"} for k in context.partition_keys})
        return MaterializeResult(metadata={"enabled": False})
    lakehouse: Lakehouse = context.resources.lakehouse
    rows = lakehouse.read(
        SENTIMENT,
        partition_dates(context),
        ["voice_feedback_id", "topics", "sentiment_confidence", "error_message", "event_date"],
    ).to_pylist()
    tags, links = tag_rows(rows, tagger.min_confidence, tagger.topics)
    # Only feedback analysed successfully is re-tagged; a failed analysis keeps its old tags.
    analysed = [r["voice_feedback_id"] for r in rows if not r["error_message"]]
    new_tags, new_links, removed = write_tags(context.resources.app_db, tags, links, analysed)
    record_partitions(
        context,
        {
            key: {"feedback_tags": len(day), "tags": len({r["tag_id"] for r in day})}
            for key, day in by_partition(context, links, lambda r: r["event_date"]).items()
        },
    )
    return MaterializeResult(
        metadata={
            "enabled": True,
            "tags_created": new_tags,
            "feedback_tags_created": new_links,
            "feedback_tags_removed": removed,
        }
    )
