"""Right to erasure on a small materialized demo (``voyce demo run``: every stage, the app
database, the volumes, the caches, the search index, MLflow): after ``voyce erase`` nothing
of the subject is left anywhere the pipeline writes, and an app-side delete cascades."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    AssetsDefinition,
    DagsterInstance,
    SkipReason,
    build_sensor_context,
    materialize,
)

from voyce_assets.catalog import TABLES, table
from voyce_assets.privacy.erasure import LOG, retention
from voyce_assets.privacy.tombstones import erased_hashes, subject_hash
from voyce_assets_tests.privacy.traces import app_rows_holding, files_holding, parquet_holding
from voyce_assets_tests.test_cli import voyce

END = "2026-03-02"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A 2-day demo (18 recordings a day: enough to train) in its own VOYCE_HOME."""
    home = tmp_path_factory.mktemp("erasure") / "voyce"
    home.mkdir()
    env = {"VOYCE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    try:
        run = voyce(
            "demo", "run", "--days", "2", "--per-day", "18", "--end-date", END, timeout=900, **env
        )
        assert run.returncode == 0, run.stdout + run.stderr
        yield home, env
    finally:
        voyce("db", "stop", **env)


@pytest.fixture
def in_demo(demo, monkeypatch):
    """This process pointed at the demo: its resources, its Dagster instance."""
    home, env = demo
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from voyce_assets.environments import resources_for

    resources = resources_for("local")
    app_db = resources["app_db"]
    with app_db.process_config_and_initialize_cm() as db:
        yield home, resources, db


def _rows(lakehouse, path: str) -> list[dict]:
    return lakehouse.read(table(path)).to_pylist()


def _needles(lakehouse, user_id: str) -> tuple[set[str], set[str]]:
    """(the user's feedback ids, every id and text of theirs the pipeline holds)."""
    feedback = {
        r["id"] for r in _rows(lakehouse, "raw_data/voice_feedback") if r["user_id"] == user_id
    }
    texts = {
        r[c]
        for r in _rows(lakehouse, "raw_data/transcriptions")
        if r["voice_feedback_id"] in feedback
        for c in ("transcription_text", "redacted_text")
        if r.get(c)
    }
    texts |= {
        r["cleaned_text"]
        for r in _rows(lakehouse, "processed_data/enhanced_transcriptions")
        if r["voice_feedback_id"] in feedback and r["cleaned_text"]
    }
    return feedback, {user_id, *feedback, *texts}


def _current_holding(lakehouse, needles: set[str]) -> dict[str, int]:
    out = {}
    for spec in TABLES:
        text = json.dumps(_rows(lakehouse, spec.path), default=str)
        hits = sum(n in text for n in needles)
        if hits:
            out[spec.path] = hits
    return out


def _paths_naming(roots: list[Path], ids: set[str]) -> list[str]:
    return [
        str(p)
        for root in roots
        if root.exists()
        for p in root.rglob("*")
        if any(i in str(p) for i in ids)
    ]


def test_erase_a_user_then_purge_then_again(in_demo):
    home, resources, app_db = in_demo
    lakehouse = resources["lakehouse"]
    users = Counter(r["user_id"] for r in _rows(lakehouse, "raw_data/voice_feedback"))
    user_id = users.most_common(1)[0][0]
    feedback, needles = _needles(lakehouse, user_id)
    assert len(feedback) >= 2 and len(needles) > len(feedback) + 1
    assert app_rows_holding(app_db, feedback)["search_index"] == len(feedback)
    stores = [home / "volumes", home / "cache", home / "mlflow"]
    assert _paths_naming([home / "volumes"], feedback)  # the uploads are named by feedback id
    env = {"VOYCE_HOME": os.environ["VOYCE_HOME"], "DAGSTER_HOME": os.environ["DAGSTER_HOME"]}

    # Without --purge: the current state of every table holds nothing; superseded files do.
    first = voyce("erase", "--user", user_id, timeout=600, **env)
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert f"rows:raw_data/voice_feedback: {len(feedback)}" in out
    assert f"rows:raw_data/transcriptions: {len(feedback)}" in out
    assert "rows:raw_data/users: 1" in out
    assert f"search_index: {len(feedback)}" in out and "text_cache: " in out
    assert "analytics 2026-02-28: recomputed" in out or "analytics 2026-03-01: recomputed" in out
    assert _current_holding(lakehouse, needles) == {}
    assert parquet_holding(home / "lakehouse", needles)  # time travel still reaches them
    assert files_holding(stores, needles) == {}
    assert _paths_naming(stores, feedback) == []
    assert app_rows_holding(app_db, feedback) == {"search_index": 0, "auto_tags": 0}
    (row,) = _rows(lakehouse, LOG.path)
    assert row["subject_hash"] == subject_hash(user_id) and row["subject_type"] == "user"
    assert user_id not in json.dumps(row, default=str)
    assert not row["purged"] and row["app_still_holds"] is True
    assert row["vacuum_after"] - row["completed_at"] == retention() == dt.timedelta(days=7)
    assert {subject_hash(i) for i in {user_id, *feedback}} <= erased_hashes(lakehouse)
    removed = json.loads(row["removed"])
    assert removed["audio_files"] == removed["processed_audio"] // 2 > 0

    # --purge (a second request for the same user): nothing left to delete in the tables,
    # the superseded files, the change feed's files and the old log entries go now.
    second = voyce("erase", "--user", user_id, "--purge", timeout=600, **env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "rows:" not in second.stdout and "superseded_files_vacuumed" in second.stdout
    assert parquet_holding(home / "lakehouse", needles) == {}
    assert files_holding([home / "lakehouse", *stores], needles) == {}
    rows = sorted(_rows(lakehouse, LOG.path), key=lambda r: r["requested_at"])
    assert [r["purged"] for r in rows] == [False, True] and rows[1]["vacuum_after"] is None

    # Again: harmless, nothing changes.
    counts = {s.path: lakehouse.read(s).num_rows for s in TABLES if s.path != LOG.path}
    third = voyce("erase", "--user", user_id, timeout=600, **env)
    assert third.returncode == 0 and "nothing left to remove" in third.stdout, third.stdout
    assert counts == {s.path: lakehouse.read(s).num_rows for s in TABLES if s.path != LOG.path}
    # Dagster's run storage, which cannot be edited per person, kept no id of the subject.
    configs = [
        json.dumps(r.run_config)
        for r in DagsterInstance.get().get_runs()
        if "raw_data__erasure_log" in json.dumps(r.run_config)
    ]
    assert len(configs) == 3 and not [
        c for c in configs if any(i in c for i in feedback | {user_id})
    ]
    # An id that is not one is refused before anything runs.
    bad = voyce("erase", "--user", "not-a-uuid", **env)
    assert bad.returncode == 2 and "UUID" in bad.stderr


def test_an_app_delete_cascades_on_the_next_sync(in_demo):
    from voyce_assets.analytics.erasure import erasure_recompute
    from voyce_assets.definitions import defs
    from voyce_assets.operations.erasure import erasure_cascade, erasure_log

    home, resources, app_db = in_demo
    lakehouse = resources["lakehouse"]
    transcribed = {r["voice_feedback_id"]: r for r in _rows(lakehouse, "raw_data/transcriptions")}
    gone = next(r for r in _rows(lakehouse, "raw_data/voice_feedback") if r["id"] in transcribed)
    day = gone["event_date"].isoformat()
    with app_db.connect(snapshot=False) as conn, conn.cursor() as cur:
        for child in ("feedback_tags", "action_items"):
            cur.execute(f"DELETE FROM {child} WHERE voice_feedback_id = %s", (gone["id"],))
        cur.execute("DELETE FROM voice_feedback WHERE id = %s", (gone["id"],))
        conn.commit()
    processed = list((home / "volumes").rglob(f"*{Path(gone['audio_file_path']).name}*"))
    assert processed

    instance = DagsterInstance.get()
    assets = [a for a in defs.assets if isinstance(a, AssetsDefinition) and a.is_executable]
    sync = materialize(
        assets,
        selection=[AssetKey(list(table("raw_data/voice_feedback").key))],
        partition_key=day,
        instance=instance,
        resources=resources,
    )
    assert sync.success
    assert gone["id"] not in {r["id"] for r in _rows(lakehouse, "raw_data/voice_feedback")}
    assert gone["id"] in {
        r["voice_feedback_id"] for r in _rows(lakehouse, "raw_data/transcriptions")
    }

    sensor_resources = {"lakehouse": lakehouse, "app_db": resources["app_db"]}
    with build_sensor_context(instance=instance, resources=sensor_resources) as context:
        request = erasure_cascade(context)
        # Nothing more to cascade until the next sync.
        assert isinstance(erasure_cascade(context), SkipReason)
    config = request.run_config["ops"]["raw_data__erasure_log"]["config"]
    # By hash: the run's config, kept in Dagster's run storage, names no feedback.
    assert config == {
        "subject_type": "feedback",
        "subject_hashes": [subject_hash(gone["id"])],
        "reason": "app_delete",
        "purge": False,
    }
    run = materialize(
        [erasure_log],
        partition_key=request.partition_key,
        run_config=request.run_config,
        instance=instance,
        resources=resources,
    )
    assert run.success
    for spec in TABLES:
        if "voice_feedback_id" in spec.column_names:
            held = {r["voice_feedback_id"] for r in _rows(lakehouse, spec.path)}
            assert gone["id"] not in held, spec.path
    assert not [p for p in processed if p.exists()]
    assert app_rows_holding(app_db, {gone["id"]}) == {"search_index": 0, "auto_tags": 0}
    row = next(
        r for r in _rows(lakehouse, LOG.path) if r["subject_hash"] == subject_hash(gone["id"])
    )
    assert row["reason"] == "app_delete" and row["app_still_holds"] is False

    # The analytics days that counted it are asked for again.
    with build_sensor_context(instance=instance, resources={"lakehouse": lakehouse}) as context:
        requests = list(erasure_recompute(context))
    assert day in {r.partition_key for r in requests}
    keys = {k.to_user_string() for r in requests for k in r.asset_selection}
    assert "analytics/daily_feedback_summary" in keys
