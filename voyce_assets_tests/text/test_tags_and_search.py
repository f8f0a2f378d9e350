"""Auto-tags go to the app's PostgreSQL and come back through the mirror; the pgvector index
answers `voyce search`. Real embedded PostgreSQL with pgvector, demo rows without audio."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import psycopg
import sqlalchemy as sa
from dagster import materialize
from deltalake import DeltaTable

from voyce_assets.catalog import table
from voyce_assets.demo.seed import DemoConfig, create_app_schema, generate, load_rows
from voyce_assets.feedback import row_id
from voyce_assets.ingestion.big_sync import LocalSparkSync
from voyce_assets.ingestion.cdc import find_changes, latest_cursor
from voyce_assets.ingestion.mirrors import MIRRORS
from voyce_assets.resources.app_db import EmbeddedAppDatabase, sqlalchemy_url
from voyce_assets.text.auto_tags import ASSIGNED_BY, CATEGORY, AutoTagger, auto_tags
from voyce_assets.text.enhanced_transcriptions import enhanced_transcriptions
from voyce_assets.text.providers.local import LocalAnalyzer
from voyce_assets.text.search import feedback_search_index, search
from voyce_assets.text.sentiment_analysis import sentiment_analysis
from voyce_assets_tests.conftest import subprocess_env
from voyce_assets_tests.text.conftest import _write, redacted_fields

END = dt.date(2026, 11, 22)
RANGE = {
    "dagster/asset_partition_range_start": "2026-11-20",
    "dagster/asset_partition_range_end": "2026-11-21",
}


def _demo(pg_database, lakehouse, text_resources, tmp_path):
    config = DemoConfig(days=2, per_day=6, seed=5, end_date=END)
    data = generate(config)
    engine = sa.create_engine(sqlalchemy_url(pg_database))
    with engine.begin() as conn:
        create_app_schema(conn)
    load_rows(engine, data)
    app_db = EmbeddedAppDatabase(source_url=pg_database, data_dir=str(tmp_path / "unused"))
    resources = {
        **text_resources,
        "app_db": app_db,
        "auto_tagger": AutoTagger(),
        "big_sync": LocalSparkSync(),
    }
    mirror = materialize([MIRRORS["raw_data/voice_feedback"]], resources=resources, tags=RANGE)
    assert mirror.success
    transcripts = []
    for f in data.rows["voice_feedback"]:
        script = json.loads(f["metadata"])["script"]
        transcripts.append(
            {
                "id": row_id(f["id"], "transcription:test"),
                "voice_feedback_id": f["id"],
                "transcription_text": script or None,
                **redacted_fields(script or None),
                "transcription_engine": "test",
                "error_message": None if script else "no speech detected",
                "created_at": f["created_at"],
                "event_date": f["created_at"].date(),
            }
        )
    _write(lakehouse, "raw_data/transcriptions", transcripts)
    return data, app_db, resources


def test_auto_tags_reach_the_app_and_come_back_through_the_mirror_and_search_finds_feedback(
    pg_database, lakehouse, text_resources, tmp_path
):
    data, app_db, resources = _demo(pg_database, lakehouse, text_resources, tmp_path)
    feedback_tags = table("raw_data/feedback_tags")
    with psycopg.connect(pg_database) as conn:
        before = latest_cursor(conn, feedback_tags)
        manual = conn.execute("SELECT count(*) FROM feedback_tags").fetchone()[0]

    assets = [sentiment_analysis, enhanced_transcriptions, auto_tags, feedback_search_index]
    assert materialize(assets, resources=resources, tags=RANGE).success
    with psycopg.connect(pg_database) as conn:
        tags = dict(conn.execute("SELECT id::text, name FROM tags WHERE category = %s", [CATEGORY]))
        links = conn.execute(
            "SELECT voice_feedback_id::text, tag_id::text FROM feedback_tags "
            "WHERE assigned_by = %s",
            [ASSIGNED_BY],
        ).fetchall()
        changes = find_changes(conn, feedback_tags, before)
    sentiment = DeltaTable(lakehouse.table_uri(table("raw_data/sentiment_analysis")))
    expected = {
        (r["voice_feedback_id"], name)
        for r in sentiment.to_pyarrow_table().to_pylist()
        for name in json.loads(r["topics"] or "[]")
    }
    assert expected and {(fid, tags[t]) for fid, t in links} == expected

    # Idempotent: a second run adds nothing.
    assert materialize([auto_tags], resources=resources, tags=RANGE).success
    with psycopg.connect(pg_database) as conn:
        total = conn.execute("SELECT count(*) FROM feedback_tags").fetchone()[0]
    assert total == manual + len(links)

    # The CDC sees them as new rows of today's partition; the mirror brings them to the lake.
    assert changes is not None and changes.rows == len(links)
    today = {
        "dagster/asset_partition_range_start": changes.dates[0].isoformat(),
        "dagster/asset_partition_range_end": changes.dates[-1].isoformat(),
    }
    assert materialize([MIRRORS["raw_data/feedback_tags"]], resources=resources, tags=today).success
    mirrored = DeltaTable(lakehouse.table_uri(feedback_tags)).to_pyarrow_table().to_pylist()
    assert {
        (r["voice_feedback_id"], r["tag_id"]) for r in mirrored if r["assigned_by"] == ASSIGNED_BY
    } == set(links)

    # Search: the nearest feedback to a payment complaint is about checkout; --org filters.
    hits = search(app_db, resources["embedder"], "paying at checkout failed with my card", k=3)
    scripts = {f["id"]: json.loads(f["metadata"]) for f in data.rows["voice_feedback"]}
    assert len(hits) == 3 and hits[0].score >= hits[1].score >= hits[2].score
    assert scripts[hits[0].voice_feedback_id]["topic"] == "checkout"
    org = next(f["organization_id"] for f in data.rows["voice_feedback"])
    only = search(app_db, resources["embedder"], "checkout", k=50, organization_id=org)
    own = {f["id"] for f in data.rows["voice_feedback"] if f["organization_id"] == org}
    assert only and {h.voice_feedback_id for h in only} <= own

    # The command prints them, best first.
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "voyce_assets.cli",
            "search",
            "paying at checkout failed with my card",
            "--k",
            "2",
        ],
        env=subprocess_env(VOYCE_SOURCE_URL=pg_database, VOYCE_HOME=str(tmp_path / "home")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2 and hits[0].voice_feedback_id in lines[0]


def test_a_new_analysis_replaces_stale_auto_tags(
    pg_database, lakehouse, text_resources, tmp_path, cache, embedder, models_dir
):
    _, _, resources = _demo(pg_database, lakehouse, text_resources, tmp_path)
    assert materialize([sentiment_analysis, auto_tags], resources=resources, tags=RANGE).success
    # Another taxonomy: the analyses change (a new cache key), and so must the auto-tags.
    taxonomy = {
        "money": "prices, fees, charges, refunds, paying",
        "service": "people, support, delivery, waiting, help",
    }
    other = LocalAnalyzer(embedder=embedder, models_dir=models_dir, cache=cache, topics=taxonomy)
    again = materialize(
        [sentiment_analysis, auto_tags],
        resources={
            **resources,
            "sentiment_analyzer": other,
            "auto_tagger": AutoTagger(topics=list(taxonomy)),
        },
        tags=RANGE,
    )
    assert again.success
    rows = DeltaTable(lakehouse.table_uri(table("raw_data/sentiment_analysis")))
    expected = {
        (r["voice_feedback_id"], name)
        for r in rows.to_pyarrow_table().to_pylist()
        for name in json.loads(r["topics"] or "[]")
    }
    assert {name for _, name in expected} <= {"money", "service"}
    with psycopg.connect(pg_database) as conn:
        links = conn.execute(
            "SELECT ft.voice_feedback_id::text, t.name FROM feedback_tags ft "
            "JOIN tags t ON t.id = ft.tag_id WHERE ft.assigned_by = %s",
            [ASSIGNED_BY],
        ).fetchall()
    assert set(links) == expected
    removed = [
        e.materialization.metadata["feedback_tags_removed"].value
        for e in again.get_asset_materialization_events()
        if e.materialization.asset_key.path == ["app_db", "auto_tags"]
        and "feedback_tags_removed" in e.materialization.metadata
    ]
    assert removed and removed[0] > 0


def test_search_within_a_small_organization_still_finds_k(pg_database, embedder, tmp_path):
    """An HNSW scan filters after it reads its candidates (ef_search of them): without
    iterative scans a small organization among many nearer rows would get none."""
    import numpy as np

    from voyce_assets.text.search import replace_index_partitions

    big, small = "00000000-0000-4000-8000-0000000000aa", "00000000-0000-4000-8000-0000000000bb"
    query = "my parcel arrived late and damaged"
    near = embedder.embed([query])[0][0]
    rng = np.random.default_rng(0)
    # 3,000 rows of the big organization close to the query, 300 of the small one far away.
    close = near + rng.normal(0, 0.02, (3000, near.size))
    far = rng.normal(0, 1, (300, near.size))
    vectors = np.vstack([close, far])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    day = dt.date(2026, 11, 25)
    rows = [
        {
            "voice_feedback_id": f"00000000-0000-4000-8000-{n:012d}",
            "organization_id": small if n >= 3000 else big,
            "event_date": day,
            "sentiment_label": None,
            "cleaned_text": f"text {n}",
            "text_embedding": vector,
        }
        for n, vector in enumerate(vectors)
    ]
    app_db = EmbeddedAppDatabase(source_url=pg_database, data_dir=str(tmp_path / "unused"))
    replace_index_partitions(app_db, rows, [day])
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("ANALYZE voyce_search.feedback_embeddings")
        # The index path, whatever the planner would pick for a table this small (it may
        # prefer an exact scan and sort; with millions of rows it takes the index).
        database = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute(f'ALTER DATABASE "{database}" SET enable_seqscan = off')
    hits = search(app_db, embedder, query, 5, small)
    assert len(hits) == 5 and all(int(h.text.split()[1]) >= 3000 for h in hits)
    exact = np.argsort(-(vectors[3000:] @ near))[:5] + 3000
    assert [h.text for h in hits] == [f"text {n}" for n in exact]
    assert len(search(app_db, embedder, query, 5)) == 5
