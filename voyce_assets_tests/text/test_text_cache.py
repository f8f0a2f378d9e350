"""The text cache's durable copy is shared by overlapping steps: persisting and restoring
merge rows, so neither step's analyses or submitted batches are lost to the other's copy."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time

import numpy as np
import pytest

from voyce_assets.text.analysis import FeedbackAnalysis, Result, Tokens
from voyce_assets.text.cache import TextCache

ANALYSIS = FeedbackAnalysis(
    sentiment_label="negative",
    sentiment_score=-0.5,
    confidence=0.8,
    emotions=["frustration"],
    key_phrases=["late"],
    topics=["delivery"],
    named_entities=[],
    urgency=3,
    summary="Late.",
    action_items=[],
)


def _cache(tmp_path, name: str) -> TextCache:
    return TextCache(
        path=str(tmp_path / name / "cache.sqlite"), persist_to=str(tmp_path / "volume" / "c.db")
    )


def _analysis(cache: TextCache, key: str) -> None:
    cache.put_analyses({key: Result(analysis=ANALYSIS, input_tokens=10)})


def test_two_overlapping_steps_lose_nothing(tmp_path):
    first, second = _cache(tmp_path, "step-1"), _cache(tmp_path, "step-2")
    first.restore()
    second.restore()  # both started from the same (empty) durable copy
    _analysis(first, "a1")
    first.remember_batch(["r1"], "msgbatch_1", "2026-12-01T10:00:00.000000+00:00")
    _analysis(second, "a2")
    second.remember_batch(["r2"], "msgbatch_2", "2026-12-01T10:00:01.000000+00:00")
    second.put_embeddings({"e2": np.ones(3)})
    first.persist()  # the first step ends after the second persisted its batch
    second.persist()

    fresh = _cache(tmp_path, "step-3")
    fresh.restore()
    assert set(fresh.get_analyses(["a1", "a2"])) == {"a1", "a2"}
    assert fresh.pending_batches(["r1", "r2"]) == {"r1": "msgbatch_1", "r2": "msgbatch_2"}
    assert list(fresh.get_embeddings(["e2"])["e2"]) == [1.0, 1.0, 1.0]


def test_restore_merges_into_what_is_here(tmp_path):
    durable, local = _cache(tmp_path, "elsewhere"), _cache(tmp_path, "here")
    _analysis(durable, "theirs")
    durable.persist()
    _analysis(local, "ours")  # newer than the durable copy: it used to win whole
    local.restore()
    assert set(local.get_analyses(["theirs", "ours"])) == {"theirs", "ours"}


def test_a_request_done_with_is_not_brought_back_by_an_older_copy(tmp_path):
    first, second = _cache(tmp_path, "step-1"), _cache(tmp_path, "step-2")
    first.remember_batch(["r1"], "msgbatch_1", "2026-12-01T10:00:00.000000+00:00")
    second.restore()  # holds r1 as waiting
    first.forget_batch_items(["r1"])  # answered and cached
    first.persist()
    second.persist()  # its older row of r1 does not revive it
    second.restore()
    assert second.pending_batches(["r1"]) == {}
    fresh = _cache(tmp_path, "step-3")
    fresh.restore()
    assert fresh.pending_batches(["r1"]) == {} and fresh.batch_ids() == set()
    # Sent again later (a new batch of the same request): waiting again, everywhere.
    second.remember_batch(["r1"], "msgbatch_9", "2099-01-01T00:00:00.000000+00:00")
    fresh.restore()
    assert fresh.pending_batches(["r1"]) == {"r1": "msgbatch_9"}


def test_concurrent_persists_keep_every_row(tmp_path):
    caches = [_cache(tmp_path, f"step-{i}") for i in range(4)]
    for i, cache in enumerate(caches):
        for j in range(20):
            _analysis(cache, f"{i}-{j}")

    def persist_often(cache: TextCache) -> None:
        for _ in range(5):
            cache.persist()

    threads = [threading.Thread(target=persist_often, args=(c,)) for c in caches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fresh = _cache(tmp_path, "fresh")
    fresh.restore()
    keys = [f"{i}-{j}" for i in range(4) for j in range(20)]
    assert set(fresh.get_analyses(keys)) == set(keys)


def test_a_lock_left_by_a_dead_step_is_broken(tmp_path):
    cache = _cache(tmp_path, "step-1")
    _analysis(cache, "a1")
    lock = tmp_path / "volume" / "c.db.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("a step that died while persisting")
    old = time.time() - 3600
    os.utime(lock, (old, old))
    cache.persist()
    assert not lock.exists()
    fresh = _cache(tmp_path, "step-2")
    fresh.restore()
    assert set(fresh.get_analyses(["a1"])) == {"a1"}


def test_an_analysis_cached_before_a_bound_was_tightened_is_not_served(tmp_path):
    cache = _cache(tmp_path, "step-1")
    _analysis(cache, "ok")
    stored = Result(analysis=ANALYSIS).to_json().replace('"Late."', json.dumps("x" * 9000))
    with sqlite3.connect(cache.path) as db:
        db.execute("INSERT INTO analyses VALUES (?, ?)", ("old", stored))
    assert set(cache.get_analyses(["ok", "old"])) == {"ok"}


def _rows(path, table: str = "analyses") -> set[str]:
    with sqlite3.connect(path) as db:
        return {k for (k,) in db.execute(f"SELECT key FROM {table}")}


def test_each_persist_writes_only_what_is_new_and_the_copy_holds_the_union(tmp_path):
    durable = tmp_path / "volume" / "c.db"
    segments = tmp_path / "volume" / "c.db.d"
    first = _cache(tmp_path, "run-1")
    for n in range(300):
        _analysis(first, f"old-{n}")
    first.persist()
    [one] = segments.iterdir()
    assert len(_rows(one)) == 300

    second = _cache(tmp_path, "run-2")  # a fresh cluster: everything read once
    second.restore()
    _analysis(second, "new-1")
    second.put_embeddings({"vector-1": np.ones(3)})
    second.persist()
    [two] = set(segments.iterdir()) - {one}
    # The second copy wrote the two new rows, not the 300 it found: its cost follows them.
    assert _rows(two) == {"new-1"} and _rows(two, "embeddings") == {"vector-1"}
    assert two.stat().st_size < one.stat().st_size / 4
    assert not durable.exists()  # nothing rewrote the rest
    # Nothing new: nothing written at all.
    second.persist()
    first.persist()
    assert set(segments.iterdir()) == {one, two}

    fresh = _cache(tmp_path, "run-3")
    fresh.restore()
    keys = [f"old-{n}" for n in range(300)] + ["new-1"]
    assert set(fresh.get_analyses(keys)) == set(keys) and set(fresh.get_embeddings(["vector-1"]))
    # A restore reads only what it has not merged before: the first run now gets one file.
    _analysis(fresh, "newer")
    fresh.persist()
    first.restore()
    assert set(first.get_analyses(["new-1", "newer"])) == {"new-1", "newer"}


def test_segments_are_compacted_into_the_base_and_nothing_is_lost(tmp_path, monkeypatch):
    from voyce_assets.text import cache as module

    monkeypatch.setattr(module, "_COMPACT_SEGMENTS", 3)
    writer, reader = _cache(tmp_path, "writer"), _cache(tmp_path, "reader")
    for n in range(7):
        _analysis(writer, f"k{n}")
        writer.persist()
        if n == 1:
            reader.restore()  # has read the base-less copy's first two segments
    durable = tmp_path / "volume" / "c.db"
    segments = list((tmp_path / "volume" / "c.db.d").iterdir())
    assert durable.exists() and len(segments) < 3
    assert _rows(durable) | set().union(*(_rows(s) for s in segments)) == {
        f"k{n}" for n in range(7)
    }
    reader.restore()  # the files it had merged are gone: the new base is read instead
    assert set(reader.get_analyses([f"k{n}" for n in range(7)])) == {f"k{n}" for n in range(7)}


def test_a_copy_written_before_the_billed_ledger_restores_with_its_rows(tmp_path):
    # The durable copy main wrote: one file, three tables, no ``billed`` ledger.
    durable = tmp_path / "volume" / "c.db"
    durable.parent.mkdir(parents=True)
    stored = Result(analysis=ANALYSIS, input_tokens=10).to_json()
    with sqlite3.connect(durable) as db:
        db.executescript(
            """
            CREATE TABLE analyses (key TEXT PRIMARY KEY, result TEXT NOT NULL);
            CREATE TABLE embeddings (key TEXT PRIMARY KEY, vector BLOB NOT NULL);
            CREATE TABLE batch_items (
                request_key TEXT PRIMARY KEY, batch_id TEXT NOT NULL, created_at TEXT NOT NULL
            );
            """
        )
        db.execute("INSERT INTO analyses VALUES (?, ?)", ("old", stored))
        db.execute(
            "INSERT INTO batch_items VALUES (?, ?, ?)",
            ("r1", "msgbatch_1", "2026-12-01T10:00:00.000000+00:00"),
        )
    db.close()
    cache = _cache(tmp_path, "step-1")
    cache.restore()
    assert set(cache.get_analyses(["old"])) == {"old"}
    assert cache.pending_batches(["r1"]) == {"r1": "msgbatch_1"}
    # And it is compacted with the new segments like any base.
    _analysis(cache, "new")
    cache.bill([("msg_1", "new", Tokens(input_tokens=5))])
    cache.persist()
    cache.forget(["nobody"])
    fresh = _cache(tmp_path, "step-2")
    fresh.restore()
    assert set(fresh.get_analyses(["old", "new"])) == {"old", "new"}
    assert fresh.unrecorded(["new"]) == {"new": Tokens(input_tokens=5)}


def _durable_with_segments(tmp_path, monkeypatch, n: int = 5):
    """A durable copy of a base and segments (``n`` rows): ``(durable, segments)``."""
    from voyce_assets.text import cache as module

    monkeypatch.setattr(module, "_COMPACT_SEGMENTS", 3)
    writer = _cache(tmp_path, "writer")
    for k in range(n):
        _analysis(writer, f"k{k}")
        writer.persist()
    durable = tmp_path / "volume" / "c.db"
    segments = sorted((tmp_path / "volume" / "c.db.d").glob("*.sqlite"))
    assert durable.exists() and segments
    return durable, segments


def test_a_compaction_that_lost_its_lock_replaces_nothing(tmp_path, monkeypatch):
    """A compaction (or an erasure's) that ran past the lock's stale_after: another holder
    may have replaced the base since (its rows would be lost) or erased rows (they would come
    back). It replaces nothing and deletes no segment."""
    from voyce_assets.text.cache import LockLost, _compact

    durable, segments = _durable_with_segments(tmp_path, monkeypatch)
    base = durable.read_bytes()
    work = tmp_path / "work.sqlite"
    with pytest.raises(LockLost):
        _compact(durable, work, still_ours=lambda: False)
    assert durable.read_bytes() == base and all(s.exists() for s in segments)
    assert not list(durable.parent.glob("*.tmp"))
    # Lost while merging (refreshed between the files): the same.
    answers = iter([True, False])
    with pytest.raises(LockLost):
        _compact(durable, work, still_ours=lambda: next(answers, False))
    assert durable.read_bytes() == base and all(s.exists() for s in segments)


def test_a_segment_deleted_meanwhile_is_never_made_again_empty(tmp_path, monkeypatch):
    """Another compaction deleted a segment between the listing and its merge (ours had lost
    the lock): attaching it must not create an empty file where it was (a later restore
    would read that), and nothing is replaced."""
    from voyce_assets.text.cache import LockLost, _compact

    durable, segments = _durable_with_segments(tmp_path, monkeypatch)
    base = durable.read_bytes()
    gone = segments[-1]

    def another_compaction_ran() -> bool:
        gone.unlink(missing_ok=True)
        return True

    with pytest.raises(LockLost):
        _compact(durable, tmp_path / "work.sqlite", still_ours=another_compaction_ran)
    assert not gone.exists() and durable.read_bytes() == base
    fresh = _cache(tmp_path, "fresh")
    fresh.restore()  # no empty file to trip on
    assert fresh.get_analyses(["k0"])


def test_a_row_written_during_a_persist_is_numbered_above_what_it_read(tmp_path):
    """A persist sends the rows up to the number it read first, then clears them: a row
    written meanwhile must get a higher number, or it is cleared without ever being sent.
    SQLite reuses rowids once the highest rows are gone (another persist of the same file,
    from a batch's thread, cleared them meanwhile)."""
    cache = _cache(tmp_path, "step-1")
    _analysis(cache, "a1")
    _analysis(cache, "a2")
    with sqlite3.connect(cache.path) as db:  # what a first persist read
        [(read,)] = db.execute("SELECT max(seq) FROM outbox")
    cache.persist()  # a second one, sent and cleared everything
    _analysis(cache, "a3")
    with sqlite3.connect(cache.path) as db:
        [(number,)] = db.execute("SELECT seq FROM outbox WHERE key = 'a3'")
    assert number > read  # the first persist leaves it for the next one


def test_rows_marked_in_a_file_written_before_the_outbox_are_still_sent(tmp_path):
    cache = _cache(tmp_path, "step-1")
    path = tmp_path / "step-1" / "cache.sqlite"
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE analyses (key TEXT PRIMARY KEY, result TEXT NOT NULL);
            CREATE TABLE unsent (tbl TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (tbl, key));
            """
        )
        db.execute(
            "INSERT INTO analyses VALUES (?, ?)", ("old", Result(analysis=ANALYSIS).to_json())
        )
        db.execute("INSERT INTO unsent VALUES ('analyses', 'old')")
    db.close()
    _analysis(cache, "new")
    cache.persist()
    fresh = _cache(tmp_path, "step-2")
    fresh.restore()
    assert set(fresh.get_analyses(["old", "new"])) == {"old", "new"}


def test_the_durable_ledger_forgets_recorded_entries_a_while_after(tmp_path):
    """Recorded entries of the billed ledger are kept 30 days (so a merge of an older copy
    does not revive them), then pruned: locally once the durable copy knows they are
    recorded, and from the durable copy when it is compacted."""
    old = "2020-01-01T00:00:00.000000+00:00"
    cache = _cache(tmp_path, "step-1")
    cache.bill([(f"msg_{k}", k, Tokens(input_tokens=5)) for k in ("paid", "unpaid", "recent")])
    with sqlite3.connect(cache.path) as db:  # billed long ago
        db.execute("UPDATE billed SET created_at = ? WHERE key != 'recent'", (old,))
    db.close()
    cache.persist()  # the durable copy knows them, none recorded
    cache.recorded(["paid", "recent"])
    cache.persist()
    fresh = _cache(tmp_path, "step-2")
    fresh.restore()  # an old entry recorded is not counted again anywhere
    assert fresh.unrecorded(["paid", "unpaid", "recent"]) == {"unpaid": Tokens(input_tokens=5)}
    cache.forget(["nobody"])  # compacts every file into the base
    durable = tmp_path / "volume" / "c.db"
    assert _rows(durable, "billed") == {"unpaid", "recent"}
    assert set(fresh.unrecorded(["paid", "unpaid", "recent"])) == {"unpaid"}
    cache.recorded([])
    assert _rows(cache.path, "billed") == {"unpaid", "recent"}
