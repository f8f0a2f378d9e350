"""Where an erased subject could still be: every Parquet file under the lakehouse (current or
superseded, data files and log checkpoints alike), every file under the volumes, the caches
and the MLflow store, and the app database's tables the pipeline writes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq


def parquet_holding(root: Path, needles: set[str]) -> dict[str, set[str]]:
    """``{parquet file: needles found in its values}``, every value of every column read."""
    found = {}
    for path in sorted(root.rglob("*.parquet")):
        text = json.dumps(pq.read_table(path).to_pylist(), default=str)
        hits = {n for n in needles if n in text}
        if hits:
            found[str(path.relative_to(root))] = hits
    return found


def files_holding(roots: list[Path], needles: set[str]) -> dict[str, set[str]]:
    """``{file: needles found in its bytes}`` (UTF-8) under ``roots``."""
    found = {}
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []:
            data = path.read_bytes()
            hits = {n for n in needles if n.encode() in data}
            if hits:
                found[str(path)] = hits
    return found


def app_rows_holding(app_db, feedback_ids: set[str]) -> dict[str, int]:
    """Rows of the pipeline-written app tables (the search index, the auto-tags) that
    name one of ``feedback_ids``."""
    from voyce_assets.text.auto_tags import ASSIGNED_BY

    out = {}
    with app_db.connect(snapshot=False) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM voyce_search.feedback_embeddings "
            "WHERE voice_feedback_id = ANY(%s::uuid[])",
            (sorted(feedback_ids),),
        )
        out["search_index"] = cur.fetchone()[0]
        cur.execute(
            "SELECT count(*) FROM feedback_tags WHERE assigned_by = %s "
            "AND voice_feedback_id = ANY(%s::uuid[])",
            (ASSIGNED_BY, sorted(feedback_ids)),
        )
        out["auto_tags"] = cur.fetchone()[0]
    return out
