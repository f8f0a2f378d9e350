"""How the text stage's stores forget an erased subject (``privacy.erasure``): the content-hash
cache's analyses and embeddings of its texts (the local file and its durable copy), its rows
of the pgvector search index, and the auto-tags this stage wrote back to the app database
(``assigned_by`` = ``auto_sentiment_analysis`` only: never a tag a person added).

The cache is keyed by hashes of the text: the keys are made again from the subject's texts as
the lakehouse still holds them (this runs before the Delta deletes), under the configured
embedding model and analyzer.
"""

from __future__ import annotations

import datetime as dt

from voyce_assets.privacy import pii
from voyce_assets.privacy.erasure import Plan, StoreEraser
from voyce_assets.text.auto_tags import ASSIGNED_BY
from voyce_assets.text.cache import TextCache
from voyce_assets.text.enhanced_transcriptions import ENHANCED
from voyce_assets.text.search import SCHEMA
from voyce_assets.text.sentiment_analysis import TRANSCRIPTIONS, analysable_text


def subject_texts(lakehouse, ids: set[str], days: list[dt.date]) -> set[str]:
    """Every text of ``ids`` the stage may have cached: the cleaned transcript as analysed
    and embedded, from the transcriptions and the enhanced transcriptions."""
    texts: set[str] = set()
    if not ids:
        return texts
    if lakehouse.exists(TRANSCRIPTIONS):
        for row in lakehouse.read(TRANSCRIPTIONS, days).to_pylist():
            if row["voice_feedback_id"] in ids:
                texts.add(analysable_text(row))
    if lakehouse.exists(ENHANCED):
        for row in lakehouse.read(
            ENHANCED, days, ["voice_feedback_id", "cleaned_text"]
        ).to_pylist():
            if row["voice_feedback_id"] in ids:
                texts.add(row["cleaned_text"] or "")
    return {t for t in texts if t and t.strip()}


def cache_keys(texts: set[str], embedder, analyzer) -> list[str]:
    """The cache keys of ``texts`` under the configured embedder and analyzer. A remote
    analyzer redacts the text it is handed once more and keys the cache by that text
    (``RemoteAnalyzer.analyze``), which may differ from the stored one: its key too."""
    version = f"{analyzer.prompt_version}:{analyzer.fingerprint()}"
    keys = []
    for text in sorted(texts):
        keys.append(TextCache.embedding_key(embedder.model_name, text))
        analysed = {text}
        if getattr(analyzer, "redact_pii", False):
            analysed.add(pii.redact(text).text)
        for sent in sorted(analysed):
            keys.append(
                TextCache.analysis_key(analyzer.provider, analyzer.model_name, version, sent)
            )
    return keys


def _app_deletes(app_db, ids: list[str]) -> tuple[int, int]:
    """(search index rows, auto-tags) of ``ids`` removed from the app database."""
    with app_db.connect(snapshot=False) as conn, conn.cursor() as cur:
        index = 0
        cur.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.feedback_embeddings",))
        if cur.fetchone()[0] is not None:
            cur.execute(
                f"DELETE FROM {SCHEMA}.feedback_embeddings "
                "WHERE voice_feedback_id = ANY(%s::uuid[])",
                (ids,),
            )
            index = cur.rowcount
        tags = 0
        cur.execute("SELECT to_regclass('feedback_tags')")
        if cur.fetchone()[0] is not None:
            cur.execute(
                "DELETE FROM feedback_tags WHERE assigned_by = %s "
                "AND voice_feedback_id = ANY(%s::uuid[])",
                (ASSIGNED_BY, ids),
            )
            tags = cur.rowcount
        conn.commit()
    return index, tags


def forget(plan: Plan, resources) -> dict[str, int]:
    ids = sorted(plan.feedback_ids)
    texts = subject_texts(resources.lakehouse, set(ids), plan.feedback_days)
    keys = cache_keys(texts, resources.embedder, resources.sentiment_analyzer)
    cache = resources.text_cache
    cached = cache.forget(keys) if keys else 0
    index, tags = _app_deletes(resources.app_db, ids) if ids else (0, 0)
    counts = {"text_cache": cached, "search_index": index, "auto_tags": tags}
    if keys and cache.durable_unreachable():
        # Its volume is not mounted here: not a silent 0.
        counts["text_cache_durable_unchecked"] = 1
    return counts


ERASER = StoreEraser(
    "text",
    forget,
    frozenset({"lakehouse", "app_db", "text_cache", "embedder", "sentiment_analyzer"}),
)
