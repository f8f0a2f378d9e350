"""The parts of an erasure on small stores of their own: the rows found by the spec's column
types (ids in JSON too, and rows naming a removed row), the text cache's two files, MLflow
input examples, and the analytics partitions to recompute."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from voyce_assets.analytics.erasure import recompute_partitions
from voyce_assets.catalog import TABLES, table, volume
from voyce_assets.feedback import row_id
from voyce_assets.privacy.erasure import (
    ErasedFeedback,
    Plan,
    Subject,
    delete_rows,
    find_by_hash,
    find_by_hashes,
    id_columns,
    log_row,
    resolve,
    tombstone_row,
    vanished_ids,
)
from voyce_assets.privacy.tombstones import subject_hash
from voyce_assets.resources import Lakehouse
from voyce_assets.text.cache import TextCache
from voyce_assets.training.erasure import forget as forget_examples
from voyce_assets.voice.erasure import forget as forget_audio
from voyce_assets_tests.text.conftest import DAYS, ORGS, feedback_id, seed_lake

D = DAYS[0]


@pytest.fixture
def lakehouse(tmp_path) -> Lakehouse:
    return Lakehouse(catalog="c", root_uri=str(tmp_path / "lake"), volumes_root=str(tmp_path / "v"))


def _sentiment(fid: str, day: dt.date) -> dict:
    created = dt.datetime.combine(day, dt.time(10), dt.UTC)
    return {
        "id": row_id(fid, "sentiment"),
        # Names the transcription, not the feedback: found through the removed row's key.
        "transcription_id": row_id(fid, "transcription:faster-whisper/tiny.en"),
        "voice_feedback_id": fid,
        "model_used": "local/x",
        "provider": "local",
        "api_mode": "local",
        "cached": False,
        "text_sha256": "x",
        "created_at": created,
        "event_date": day,
    }


def test_every_column_that_can_hold_an_id_comes_from_the_spec():
    assert id_columns(table("raw_data/voice_feedback"))["metadata"] == "contains"
    assert id_columns(table("raw_data/feedback_tags"))["assigned_by"] == "equal"
    assert id_columns(table("raw_data/erasure_log"))["erased_id_hashes"] == "lists"
    # Only aggregates of the whole platform hold no id-bearing column.
    assert {t.path for t in TABLES if not id_columns(t)} <= {
        "analytics/platform_summary",
        "analytics/pipeline_health",
    }


def test_a_feedback_and_every_row_naming_it_or_its_rows_go(lakehouse):
    texts = seed_lake(lakehouse)
    gone, kept = feedback_id(D, 0), feedback_id(D, 1)
    spec = table("raw_data/sentiment_analysis")
    lakehouse.write_partitions(
        spec,
        pa.Table.from_pylist(
            [_sentiment(gone, D), {**_sentiment(kept, D), "transcription_id": row_id(gone, "x")}],
            schema=pa.schema([f.with_nullable(True) for f in spec.arrow_schema()]),
        ),
        [D],
    )
    # An id inside a JSON column counts too.
    mirror = table("raw_data/voice_feedback")
    rows = lakehouse.read(mirror).to_pylist()
    other = next(r for r in rows if r["id"] not in (gone, kept))
    other["metadata"] = json.dumps({"reply_to": gone})
    lakehouse.write_partitions(
        mirror,
        pa.Table.from_pylist(
            [r for r in rows if r["event_date"] == other["event_date"] and r["id"] != other["id"]]
            + [other],
            schema=pa.schema([f.with_nullable(True) for f in mirror.arrow_schema()]),
        ),
        [other["event_date"]],
    )

    plan = resolve(lakehouse, Subject("feedback", gone))
    assert plan.feedback_ids == {gone} and plan.feedback_days == [D]
    deleted = delete_rows(lakehouse, plan)
    assert deleted.rows == {
        "raw_data/transcriptions": 1,
        "raw_data/sentiment_analysis": 1,
        "raw_data/voice_feedback": 1,
    }
    # The feedback that only mentions it keeps its row, without the id.
    assert deleted.scrubbed == {"raw_data/voice_feedback": 1}
    after = {r["id"]: r for r in lakehouse.read(mirror).to_pylist()}
    assert json.loads(after[other["id"]]["metadata"]) == {"reply_to": "[erased]"}
    assert row_id(gone, "transcription:faster-whisper/tiny.en") in deleted.ids
    left = json.dumps([lakehouse.read(table(p)).to_pylist() for p in deleted.rows], default=str)
    assert gone not in left and texts[gone] not in left and kept in left
    # The kept feedback's sentiment row named another (made-up) transcription id: it stays.
    assert lakehouse.read(spec).num_rows == 1
    # Again: nothing found, nothing written.
    version = lakehouse.read(mirror).num_rows
    assert delete_rows(lakehouse, resolve(lakehouse, Subject("feedback", gone))).rows == {}
    assert lakehouse.read(mirror).num_rows == version


def test_the_log_row_holds_hashes_only():
    user = "11111111-1111-1111-1111-111111111111"
    fid = "22222222-2222-2222-2222-222222222222"
    plan = Plan(Subject("user", user.upper()), users={user}, feedback=[ErasedFeedback(fid, D)])
    now = dt.datetime(2026, 3, 5, 12, tzinfo=dt.UTC)
    row = log_row(plan, now, {"rows:raw_data/users": 1}, False, True, completed_at=now)
    text = json.dumps(row, default=str)
    assert user not in text and fid not in text and user.upper() not in text
    assert len(row["erased_id_hashes"]) == 2 and row["event_date"] == now.date()
    assert row["vacuum_after"] == now + dt.timedelta(days=7)
    purged = log_row(plan, now, {}, True, None, completed_at=now)
    assert purged["vacuum_after"] is None and purged["purged"]


def test_the_cache_forgets_in_both_files_and_leaves_no_bytes(tmp_path):
    cache = TextCache(
        path=str(tmp_path / "local" / "c.sqlite"), persist_to=str(tmp_path / "vol" / "c.sqlite")
    )
    marker = np.full(8, 1234.5678, np.float32)
    key = TextCache.embedding_key("m", "the subject's words")
    other = TextCache.embedding_key("m", "someone else's")
    cache.put_embeddings({key: marker, other: np.zeros(8, np.float32)})
    cache.persist()
    assert cache.forget([key]) == 2  # one row in each file
    for path in (cache.path, cache.persist_to):
        with sqlite3.connect(path) as db:
            keys = {k for (k,) in db.execute("SELECT key FROM embeddings")}
        assert keys == {other}
        assert marker.tobytes() not in Path(path).read_bytes()
    # Nor any other file of the durable copy (the segments each persist adds).
    files = [p for p in (tmp_path / "vol").rglob("*") if p.is_file()]
    assert all(marker.tobytes() not in p.read_bytes() for p in files)
    cache.restore()  # a merge brings nothing back
    assert set(cache.get_embeddings([key, other])) == {other}


def test_an_input_example_of_the_subject_is_zeroed(tmp_path, lakehouse):
    fid = feedback_id(D, 0)
    spec = table("processed_data/training_dataset")
    vector = [0.25, 3.0, -1.5]
    created = dt.datetime.combine(D, dt.time(9), dt.UTC)
    lakehouse.write_partitions(
        spec,
        pa.Table.from_pylist(
            [
                {
                    "id": row_id(fid, "training"),
                    "voice_feedback_id": fid,
                    "organization_id": fid,
                    "features": vector,
                    "label": "positive",
                    "split": "train",
                    "created_at": created,
                    "event_date": D,
                }
            ],
            schema=pa.schema([f.with_nullable(True) for f in spec.arrow_schema()]),
        ),
        [D],
    )
    root = tmp_path / "mlflow"
    theirs = root / "models" / "m-1" / "artifacts" / "input_example.json"
    mine = root / "models" / "m-2" / "artifacts" / "input_example.json"
    for path, values in ((theirs, vector), (mine, [9.0, 9.0, 9.0])):
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps([values]))
    resources = SimpleNamespace(
        lakehouse=lakehouse, mlflow=SimpleNamespace(artifact_root=str(root))
    )
    plan = Plan(Subject("feedback", fid), feedback=[ErasedFeedback(fid, D)])
    assert forget_examples(plan, resources) == {"mlflow_input_examples": 1}
    assert json.loads(theirs.read_text()) == [[0.0, 0.0, 0.0]]
    assert json.loads(mine.read_text()) == [[9.0, 9.0, 9.0]]


def test_recompute_per_day_tables_on_the_days_and_windowed_views_from_the_first(lakehouse):
    plan = recompute_partitions(lakehouse, [D])
    assert list(plan) == [D.isoformat()]
    keys = {k.to_user_string() for k in plan[D.isoformat()]}
    assert "analytics/daily_feedback_summary" in keys and "analytics/platform_summary" in keys
    # Windowed views are recomputed where they have partitions: none yet.
    assert "analytics/most_active_users" not in keys


def test_a_subject_is_found_by_its_hash_wherever_its_id_is_left(lakehouse):
    seed_lake(lakehouse)
    fid = feedback_id(D, 0)
    assert find_by_hash(lakehouse, "feedback", subject_hash(fid)) == Subject("feedback", fid)
    # The user (named only by voice_feedback.user_id in this lake) and an organization.
    user = lakehouse.read(table("raw_data/voice_feedback")).column("user_id")[0].as_py()
    assert find_by_hash(lakehouse, "user", subject_hash(user)) == Subject("user", user)
    assert find_by_hash(lakehouse, "organization", subject_hash(fid)) is None
    # A feedback gone from the mirror is still found in the pipeline's tables ...
    plan = Plan(Subject("feedback", fid), feedback=[])
    delete_rows(lakehouse, plan, [table("raw_data/voice_feedback")])
    assert find_by_hash(lakehouse, "feedback", subject_hash(fid)) == Subject("feedback", fid)
    # ... until it is gone from them too.
    delete_rows(lakehouse, plan)
    spec = table("raw_data/transcriptions")
    assert fid not in set(lakehouse.read(spec).column("voice_feedback_id").to_pylist())
    assert find_by_hash(lakehouse, "feedback", subject_hash(fid)) is None
    row = tombstone_row("feedback", subject_hash(fid), "request", dt.datetime.now(dt.UTC), True)
    assert row["erased_id_hashes"] == [subject_hash(fid)] and row["vacuum_after"] is None


def test_an_organization_resolves_to_its_users_and_their_feedback(lakehouse):
    seed_lake(lakehouse)
    org, other = ORGS
    spec = table("raw_data/users")
    created = dt.datetime.combine(D, dt.time(8), dt.UTC)
    users = [
        {
            "id": feedback_id(D, 100 + n),
            "organization_id": o,
            "email": f"u{n}@example.com",
            "role": "member",
            "created_at": created,
            "updated_at": created,
            "is_active": True,
            "event_date": D,
        }
        for n, o in enumerate((org, org, other))
    ]
    lakehouse.write_partitions(
        spec,
        pa.Table.from_pylist(
            users, schema=pa.schema([f.with_nullable(True) for f in spec.arrow_schema()])
        ),
        [D],
    )
    plan = resolve(lakehouse, Subject("organization", org))
    assert plan.organizations == {org}
    assert plan.users == {users[0]["id"], users[1]["id"]}
    mirror = lakehouse.read(table("raw_data/voice_feedback")).to_pylist()
    assert plan.feedback_ids == {r["id"] for r in mirror if r["organization_id"] == org}
    assert plan.ids == {org} | plan.users | plan.feedback_ids


def test_a_feedback_moved_to_another_day_has_not_vanished(lakehouse):
    seed_lake(lakehouse)
    mirror = table("raw_data/voice_feedback")
    rows = lakehouse.read(mirror).to_pylist()
    moved, gone = feedback_id(D, 0), feedback_id(D, 1)
    other_day = DAYS[1]
    kept = [r for r in rows if r["event_date"] == D and r["id"] not in (moved, gone)]
    schema = pa.schema([f.with_nullable(True) for f in mirror.arrow_schema()])
    lakehouse.write_partitions(mirror, pa.Table.from_pylist(kept, schema=schema), [D])
    later = [r for r in rows if r["event_date"] == other_day]
    later.append({**next(r for r in rows if r["id"] == moved), "event_date": other_day})
    lakehouse.write_partitions(mirror, pa.Table.from_pylist(later, schema=schema), [other_day])
    assert vanished_ids(lakehouse, [D]) == {gone}


def test_a_users_feedback_the_app_deleted_before_goes_with_the_user(lakehouse):
    """The app deleted one of the user's feedback, a sync took it out of the mirror, and the
    pipeline's rows of it name no user: the user's erasure finds it in the mirror's history."""
    seed_lake(lakehouse)
    gone = feedback_id(D, 0)
    spec = table("raw_data/sentiment_analysis")
    schema = pa.schema([f.with_nullable(True) for f in spec.arrow_schema()])
    lakehouse.write_partitions(spec, pa.Table.from_pylist([_sentiment(gone, D)], schema), [D])
    mirror = table("raw_data/voice_feedback")
    rows = lakehouse.read(mirror).to_pylist()
    user = next(r["user_id"] for r in rows if r["id"] == gone)
    kept = [r for r in rows if r["event_date"] == D and r["id"] != gone]
    schema = pa.schema([f.with_nullable(True) for f in mirror.arrow_schema()])
    lakehouse.write_partitions(mirror, pa.Table.from_pylist(kept, schema=schema), [D])
    assert gone not in set(lakehouse.read(mirror).column("id").to_pylist())

    plan = resolve(lakehouse, Subject("user", user))
    (found,) = [f for f in plan.feedback if f.id == gone]
    assert found.event_date == D and found.audio_file_path == f"{gone}.wav"
    assert found.organization_id == ORGS[0]
    delete_rows(lakehouse, plan)
    for path in ("raw_data/transcriptions", "raw_data/sentiment_analysis"):
        held = set(lakehouse.read(table(path)).column("voice_feedback_id").to_pylist())
        assert gone not in held, path


def test_a_volume_not_mounted_is_reported_unchecked_not_as_nothing_found(tmp_path):
    from voyce_assets.cli import removed_lines

    fid = feedback_id(D, 0)
    org = ORGS[0]
    plan = Plan(
        Subject("feedback", fid),
        feedback=[ErasedFeedback(fid, D, org, None, f"{org}/{fid}.wav")],
    )
    lakehouse = Lakehouse(catalog="c", root_uri=str(tmp_path / "lake"), volumes_root="/nowhere")
    counts = forget_audio(plan, SimpleNamespace(lakehouse=lakehouse))
    assert counts == {"audio_files_unchecked": 1, "processed_audio_unchecked": 1}
    assert "audio_files: NOT CHECKED" in "\n".join(removed_lines(counts))
    # Mounted: a missing file is a 0, a file there is removed.
    lakehouse = Lakehouse(catalog="c", root_uri=str(tmp_path / "lake"), volumes_root=str(tmp_path))
    upload = lakehouse.volume_path(volume("raw_data/audio_files")) / org / f"{fid}.wav"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"RIFF")
    lakehouse.volume_path(volume("processed_data/processed_audio")).mkdir(parents=True)
    counts = forget_audio(plan, SimpleNamespace(lakehouse=lakehouse))
    assert counts == {"audio_files": 1, "processed_audio": 0, "voice_staged_chunks": 0}
    assert not upload.exists()
    # The text cache's durable copy on a volume not mounted here.
    cache = TextCache(path=str(tmp_path / "c.sqlite"), persist_to="/nowhere/cache/c.sqlite")
    assert cache.durable_unreachable()
    assert not TextCache(
        path=str(tmp_path / "c.sqlite"), persist_to=str(tmp_path / "d.sqlite")
    ).durable_unreachable()


def test_an_analysis_keyed_by_the_text_redacted_again_is_forgotten(tmp_path):
    """A remote analyzer redacts what it is handed once more and keys its cache by that; a
    text whose second redaction differs from the stored one (stored by an older redactor,
    which kept a PIN) is forgotten under both keys."""
    from voyce_assets.privacy import pii
    from voyce_assets.text.embedder import Embedder
    from voyce_assets.text.erasure import cache_keys
    from voyce_assets.text.providers.anthropic import AnthropicAnalyzer
    from voyce_assets_tests.fakes.llm import FakeAnthropic

    stored = "my name is [PERSON] and my pin is 4821"  # as pii/1 left it
    assert pii.redact(stored).text != stored  # what the stage stored, as the analyzer keys it
    cache = TextCache(path=str(tmp_path / "c.sqlite"))
    key = "sk-test-secret-0123456789"
    with FakeAnthropic(api_key=key) as fake:
        analyzer = AnthropicAnalyzer(
            api_key=key, base_url=fake.base_url, cache=cache, timeout_seconds=5
        )
        assert analyzer.analyze([stored])[0].ok
    with sqlite3.connect(cache.path) as db:
        assert db.execute("SELECT count(*) FROM analyses").fetchone()[0] == 1
    assert cache.forget(cache_keys({stored}, Embedder(cache=cache), analyzer)) == 1
    with sqlite3.connect(cache.path) as db:
        assert db.execute("SELECT count(*) FROM analyses").fetchone()[0] == 0


def test_many_subjects_are_found_by_their_hashes_in_one_pass(lakehouse):
    seed_lake(lakehouse)
    ids = [feedback_id(D, n) for n in range(3)] + [feedback_id(DAYS[1], 0)]
    unknown = subject_hash("00000000-0000-4000-8000-0000000000ff")
    found = find_by_hashes(lakehouse, "feedback", [*map(subject_hash, ids), unknown])
    assert found == {subject_hash(i): Subject("feedback", i) for i in ids}
