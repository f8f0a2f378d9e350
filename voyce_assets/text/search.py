"""Semantic search over feedback: embeddings indexed with pgvector (HNSW, cosine) in the app's
PostgreSQL, and the query behind ``voyce search``.

The index lives in its own schema (``voyce_search``) of the app database, written only by the
``app_db/feedback_search_index`` asset from ``enhanced_transcriptions``: a partition is
replaced in one transaction. In prod the same asset can point at any PostgreSQL with
pgvector; a Databricks Vector Search index is the alternative seam: a Delta Sync index over
``processed_data.enhanced_transcriptions`` (primary key ``id``, embedding column
``text_embedding``, 384 dimensions), which needs no writer of ours, queried with
``databricks-sdk``'s ``vector_search_indexes.query_index``.
"""

import datetime as dt
from dataclasses import dataclass

import numpy as np
from dagster import AssetExecutionContext, AssetKey, MaterializeResult, RetryPolicy

from voyce_assets.automation import hourly_after_upstream
from voyce_assets.partitions import by_partition, partition_dates, record_partitions
from voyce_assets.privacy.tombstones import without_erased
from voyce_assets.resources import AppDatabase, Lakehouse
from voyce_assets.tables import partitioned_asset
from voyce_assets.text.embedder import DIMENSIONS, Embedder
from voyce_assets.text.enhanced_transcriptions import ENHANCED

SEARCH_INDEX_KEY = AssetKey(["app_db", "feedback_search_index"])
SCHEMA = "voyce_search"

DDL = [
    "CREATE EXTENSION IF NOT EXISTS vector",
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.feedback_embeddings (
        voice_feedback_id UUID PRIMARY KEY,
        organization_id UUID NOT NULL,
        event_date DATE NOT NULL,
        sentiment_label TEXT,
        text TEXT NOT NULL,
        embedding vector({DIMENSIONS}) NOT NULL
    )""",
    f"""CREATE INDEX IF NOT EXISTS feedback_embeddings_hnsw ON {SCHEMA}.feedback_embeddings
        USING hnsw (embedding vector_cosine_ops)""",
    f"""CREATE INDEX IF NOT EXISTS feedback_embeddings_date
        ON {SCHEMA}.feedback_embeddings (event_date)""",
]


def _vector(values) -> str:
    return "[" + ",".join(f"{float(v):.7g}" for v in values) + "]"


def ensure_index(conn) -> None:
    with conn.cursor() as cur:
        for statement in DDL:
            cur.execute(statement)


def replace_index_partitions(app_db: AppDatabase, rows: list[dict], dates: list[dt.date]) -> None:
    """Replace the index rows of ``dates`` with ``rows`` in one transaction."""
    with app_db.connect(snapshot=False) as conn:
        ensure_index(conn)
        with conn.cursor() as cur:
            cur.execute(
                f"DELETE FROM {SCHEMA}.feedback_embeddings WHERE event_date = ANY(%s)", (dates,)
            )
            with cur.copy(
                f"COPY {SCHEMA}.feedback_embeddings (voice_feedback_id, organization_id, "
                "event_date, sentiment_label, text, embedding) FROM STDIN"
            ) as copy:
                for r in rows:
                    copy.write_row(
                        (
                            r["voice_feedback_id"],
                            r["organization_id"],
                            r["event_date"],
                            r["sentiment_label"],
                            r["cleaned_text"],
                            _vector(r["text_embedding"]),
                        )
                    )
        conn.commit()


@dataclass(frozen=True)
class Hit:
    voice_feedback_id: str
    score: float
    event_date: dt.date
    sentiment_label: str | None
    text: str


def search(
    app_db: AppDatabase,
    embedder: Embedder,
    query: str,
    k: int = 5,
    organization_id: str | None = None,
) -> list[Hit]:
    """The ``k`` feedback nearest to ``query`` (cosine similarity, 1 = same direction)."""
    if not query.strip():
        raise ValueError("an empty query matches nothing")
    vector = _vector(np.asarray(embedder.embed([query])[0][0]))
    where, params = "", [vector]
    if organization_id:
        where, params = "WHERE organization_id = %s", [vector, organization_id]
    with app_db.connect(snapshot=False) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.feedback_embeddings",))
        if cur.fetchone()[0] is None:
            raise LookupError("no search index yet: materialize app_db/feedback_search_index first")
        # The HNSW index serves ORDER BY distance LIMIT k. A filter applies after the scan,
        # so a small organization could get fewer than k: iterative scans (pgvector >= 0.8)
        # go on until k rows pass it, in exact distance order.
        cur.execute("SET LOCAL hnsw.ef_search = 100")
        cur.execute("SET LOCAL hnsw.iterative_scan = strict_order")
        cur.execute(
            "SELECT voice_feedback_id::text, 1 - (embedding <=> %s::vector), event_date, "
            f"sentiment_label, text FROM {SCHEMA}.feedback_embeddings {where} "
            "ORDER BY embedding <=> %s::vector LIMIT %s",
            [*params, vector, k],
        )
        return [Hit(*row) for row in cur.fetchall()]


@partitioned_asset(
    SEARCH_INDEX_KEY,
    group="text",
    deps=[ENHANCED.path],
    kinds={"postgres"},
    retry_policy=RetryPolicy(max_retries=2, delay=30),
    automation_condition=hourly_after_upstream(),
    required_resource_keys={"lakehouse", "app_db"},
    description="pgvector index (HNSW, cosine) of the feedback embeddings in the app's "
    "PostgreSQL, schema voyce_search: what `voyce search` queries.",
)
def feedback_search_index(context: AssetExecutionContext) -> MaterializeResult:
    lakehouse: Lakehouse = context.resources.lakehouse
    dates = partition_dates(context)
    rows = lakehouse.read(
        ENHANCED,
        dates,
        [
            "voice_feedback_id",
            "organization_id",
            "event_date",
            "sentiment_label",
            "cleaned_text",
            "text_embedding",
        ],
    ).to_pylist()
    rows = without_erased(lakehouse, rows)
    replace_index_partitions(context.resources.app_db, rows, dates)
    record_partitions(
        context,
        {
            key: {"indexed": len(day)}
            for key, day in by_partition(context, rows, lambda r: r["event_date"]).items()
        },
    )
    return MaterializeResult(metadata={"schema": SCHEMA, "dimensions": DIMENSIONS})
