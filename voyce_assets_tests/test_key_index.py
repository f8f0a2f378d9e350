"""The incremental MERGE with the key index (``voyce_assets/key_index.py``): rows whose
created_at moved are found and moved in the MERGE's one commit, whatever wrote the mirror in
between and whatever the index holds; and finding them reads what changed, not the table.

Every check is against a model of the source (one row per key, on the day of its created_at).
"""

import datetime as dt
import itertools
import random
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from voyce_assets import key_index
from voyce_assets.catalog import table
from voyce_assets.lake import merge_rows, replace_partitions
from voyce_assets.privacy.erasure import Plan, Subject, delete_rows, purge
from voyce_assets.resources.lakehouse import Lakehouse

SPEC = table("raw_data/voice_feedback")
START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
DAYS = [(START + dt.timedelta(days=k)).date() for k in range(6)]
ORG = str(uuid.UUID(int=1))


def _row(ident: str, at: dt.datetime, status: str = "pending") -> dict:
    return {
        "id": ident,
        "organization_id": ORG,
        "user_id": None,
        "audio_file_path": f"{ident}.wav",
        "audio_duration_seconds": 1.0,
        "audio_format": "wav",
        "file_size_bytes": 1,
        "upload_source": "web",
        "metadata": "{}",
        "status": status,
        "created_at": at,
        "updated_at": at,
        "event_date": at.date(),
    }


def _arrow(rows) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=SPEC.arrow_schema())


class Model:
    """The source of truth: one row per key."""

    def __init__(self, rng: random.Random, per_day: int) -> None:
        self.rng = rng
        self.rows: dict[str, dict] = {}
        for day in range(len(DAYS)):
            for _ in range(per_day):
                self.new(day)

    def stamp(self, day: int) -> dt.datetime:
        return START + dt.timedelta(days=day, seconds=self.rng.randrange(86_400))

    def new(self, day: int) -> dict:
        ident = str(uuid.UUID(int=self.rng.getrandbits(128)))
        self.rows[ident] = _row(ident, self.stamp(day))
        return self.rows[ident]

    def move(self, ident: str, day: int) -> dict:
        at = self.stamp(day)
        self.rows[ident] |= {"created_at": at, "updated_at": at, "event_date": at.date()}
        return self.rows[ident]

    def day(self, day: dt.date) -> list[dict]:
        return [r for r in self.rows.values() if r["event_date"] == day]


def _mirror(uri: str) -> list[dict]:
    return DeltaTable(uri).to_pyarrow_table().to_pylist()


def _assert_equal(uri: str, model: Model) -> None:
    """One copy per key, on its day, with the source's columns."""
    rows = _mirror(uri)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "a key is mirrored twice"
    assert {r["id"]: r for r in rows} == model.rows


def _full_sync(uri: str, model: Model, days) -> None:
    replace_partitions(uri, SPEC, _arrow(r for d in days for r in model.day(d)).to_batches(), days)


def _merge(uri: str, changed: list[dict]):
    """An incremental run: the changed rows, merged into the partitions they now belong to."""
    version = DeltaTable(uri).version()
    stats = merge_rows(
        uri, SPEC, _arrow(changed).to_batches(), sorted({r["event_date"] for r in changed})
    )
    assert DeltaTable(uri).version() == version + 1, "the MERGE is one commit"
    return stats


def _create(tmp_path) -> str:
    """The mirror as catalog_setup creates it: empty, partitioned by day."""
    return Lakehouse(catalog="c", root_uri=str(tmp_path), volumes_root=str(tmp_path)).ensure_table(
        SPEC
    )


@pytest.fixture
def mirror(tmp_path):
    uri = _create(tmp_path)
    model = Model(random.Random(7), per_day=40)
    _full_sync(uri, model, DAYS)
    return uri, model


def test_a_moved_row_is_found_through_the_index_and_moved_in_the_same_commit(mirror):
    uri, model = mirror
    first = _merge(uri, [model.move(next(iter(model.day(DAYS[0])))["id"], 0)])
    assert first.key_index["built"]  # the first lookup builds it, once
    moved = model.day(DAYS[1])[0]["id"]
    stats = _merge(uri, [model.move(moved, 4)])
    assert not stats.key_index["built"]
    assert stats.moved_from == [DAYS[1].isoformat()]
    _assert_equal(uri, model)
    # Moved twice: out of the day the index learned it in from the MERGE's own files.
    stats = _merge(uri, [model.move(moved, 2)])
    _assert_equal(uri, model)
    assert stats.moved_from == [DAYS[4].isoformat()]
    assert stats.key_index["files_caught_up"] >= 1


def test_a_row_moved_within_its_day_is_updated_not_copied(mirror):
    """Same day, another time: the usual MERGE's created_at bounds would miss the old copy."""
    uri, model = mirror
    row = model.day(DAYS[3])[5]
    at = row["created_at"].replace(hour=(row["created_at"].hour + 12) % 24)
    model.rows[row["id"]] |= {"created_at": at, "updated_at": at}
    _merge(uri, [model.rows[row["id"]]])
    _assert_equal(uri, model)


def test_a_move_whose_old_day_was_full_synced_in_between(mirror):
    """The full sync of the new day wrote it there (two copies), or of the old day took it
    out of there: either way the next change leaves one copy, on its day."""
    uri, model = mirror
    _merge(uri, [model.new(5)])  # the index exists before the full syncs
    left, taken = model.day(DAYS[0])[:2]
    model.move(left["id"], 3)
    _full_sync(uri, model, [DAYS[3]])  # left: in days 0 and 3
    model.move(taken["id"], 4)
    _full_sync(uri, model, [DAYS[0]])  # taken: out of day 0, not yet in day 4; left: day 3
    model.rows[left["id"]]["status"] = "completed"
    _merge(uri, [model.rows[left["id"]], model.rows[taken["id"]]])
    _assert_equal(uri, model)


def test_a_missing_index_is_built_again(mirror):
    uri, model = mirror
    _merge(uri, [model.new(1)])
    assert key_index.drop(uri)
    row = model.day(DAYS[2])[0]
    stats = _merge(uri, [model.move(row["id"], 5)])
    assert stats.key_index["built"] and stats.moved_from == [DAYS[2].isoformat()]
    _assert_equal(uri, model)


def test_an_index_behind_writes_it_never_saw_catches_up(mirror):
    """A writer that knows nothing of the index (``write_deltalake`` by hand) adds a row: a
    later move of that row is found all the same."""
    uri, model = mirror
    _merge(uri, [model.new(1)])
    hand = model.new(2)
    write_deltalake(uri, _arrow([hand]), mode="append")
    stats = _merge(uri, [model.move(hand["id"], 0)])
    _assert_equal(uri, model)
    assert stats.moved_from == [DAYS[2].isoformat()]
    assert stats.key_index["files_caught_up"] >= 1


def test_randomized_merges_full_syncs_and_stale_entries_keep_one_copy_per_key(tmp_path):
    """Random rounds of inserts, updates, moves (and moves back: stale entries), full syncs
    of random days, hand writes and dropped indexes; after every round the mirror equals the
    model."""
    rng = random.Random(20261207)
    uri = _create(tmp_path)
    model = Model(rng, per_day=15)
    _full_sync(uri, model, DAYS)
    for round_ in range(40):
        changed: dict[str, dict] = {}
        for _ in range(rng.randint(1, 3)):
            kind = rng.choice(["insert", "update", "move", "move"])
            if kind == "insert":
                row = model.new(rng.randrange(len(DAYS)))
            else:
                ident = rng.choice(sorted(model.rows))
                if kind == "update":
                    model.rows[ident]["status"] = rng.choice(["processing", "completed"])
                    row = model.rows[ident]
                else:
                    row = model.move(ident, rng.randrange(len(DAYS)))
            changed[row["id"]] = row
        if rng.random() < 0.2:  # a full sync of a day catches some of the changes first
            _full_sync(uri, model, [rng.choice(DAYS)])
        if rng.random() < 0.1:
            key_index.drop(uri)
        _merge(uri, list(changed.values()))
        rows = _mirror(uri)
        assert len(rows) == len({r["id"] for r in rows}), f"round {round_}: a key twice"
        # A full sync of a day may hold rows the merge has not reached yet; each key once,
        # and every key the merge carried is on its day with its columns.
        mirrored = {r["id"]: r for r in rows}
        for ident, row in changed.items():
            assert mirrored[ident] == row, f"round {round_}"
    _full_sync(uri, model, DAYS)
    _assert_equal(uri, model)


def test_a_merge_of_few_changes_reads_neither_the_other_partitions_nor_the_whole_index(tmp_path):
    """The files of every partition the changes do not touch are deleted from disk after the
    index is built: the MERGE (with a moved row) succeeds, so it read none of them; and the
    index lookup read about one small row group per changed key."""
    uri = _create(tmp_path)
    model = Model(random.Random(3), per_day=4000)
    _full_sync(uri, model, DAYS)
    _merge(uri, [model.new(5)])  # builds the index
    moved = model.day(DAYS[1])[0]
    updated = model.day(DAYS[5])[:3]
    for row in updated:
        row["status"] = "completed"
    changed = [model.move(moved["id"], 5), *updated, model.new(5)]
    gone = [
        p
        for p in Path(uri).glob("event_date=*/*.parquet")
        if p.parent.name not in (f"event_date={DAYS[1]}", f"event_date={DAYS[5]}")
    ]
    assert len(gone) >= 4
    for path in gone:
        path.unlink()
    stats = _merge(uri, changed)
    assert stats.moved_from == [DAYS[1].isoformat()]
    assert stats.key_index["row_groups_read"] <= len(changed)
    assert stats.key_index["partitions_read"] == 2
    rows = (
        DeltaTable(uri)
        .to_pyarrow_dataset()
        .to_table(filter=pa.compute.field("event_date").isin(pa.array([DAYS[1], DAYS[5]])))
    )
    ids = rows.column("id").to_pylist()
    assert len(ids) == len(set(ids)) and len(ids) == len(model.day(DAYS[1])) + len(
        model.day(DAYS[5])
    )
    assert {r["id"]: r for r in rows.to_pylist() if r["id"] in {c["id"] for c in changed}} == {
        c["id"]: c for c in changed
    }


def test_an_erasure_drops_the_index_of_a_mirror_it_rewrote(tmp_path):
    """The index holds ids: an erasure that removes rows from a mirror leaves none of them
    in it (the next MERGE builds it again from the mirror, which no longer holds them)."""
    lakehouse = Lakehouse(catalog="c", root_uri=str(tmp_path), volumes_root=str(tmp_path))
    model = Model(random.Random(5), per_day=5)
    rows = _arrow(model.rows.values())
    lakehouse.write_partitions(SPEC, rows, DAYS)
    uri = lakehouse.table_uri(SPEC)
    _merge(uri, [model.new(2)])
    erased = model.day(DAYS[1])[0]["id"]
    assert erased in DeltaTable(key_index.location(uri)).to_pyarrow_table()["id"].to_pylist()
    plan = Plan(Subject("feedback", erased))
    delete_rows(lakehouse, plan, [SPEC])
    assert not list(Path(key_index.location(uri)).rglob("*.*"))
    del model.rows[erased]
    stats = _merge(uri, [model.new(3)])
    assert stats.key_index["built"]
    assert erased not in DeltaTable(key_index.location(uri)).to_pyarrow_table()["id"].to_pylist()
    purge(lakehouse, {erased}, paths=[SPEC.path])
    assert not list(Path(key_index.location(uri)).rglob("*.*"))
    _assert_equal(uri, model)


@pytest.mark.parametrize("sort_rows", [10**9, 50])
def test_the_index_built_in_memory_or_bucket_by_bucket_is_the_mirror_sorted(mirror, sort_rows):
    """Sorted as a whole (a lookup skips by min/max), one entry per mirrored row, and the
    mirror version it covers; spilled by id prefix when larger than ``sort_rows``."""
    uri, model = mirror
    target = DeltaTable(uri)
    key_index.build(uri, SPEC, target, sort_rows=sort_rows)
    # Built again over itself: replaced, not added to.
    assert key_index.build(uri, SPEC, target, sort_rows=sort_rows) == len(model.rows)
    index = DeltaTable(key_index.location(uri))
    rows = index.to_pyarrow_table()
    ids = [i for i in rows["id"].to_pylist() if i is not None]
    assert sorted(ids) == sorted(model.rows)  # once each
    for uri_ in index.file_uris():
        own = [i for i in pq.read_table(uri_, columns=["id"])["id"].to_pylist() if i is not None]
        assert own == sorted(own)
    held = {(r["id"], r["day"], r["at"]) for r in rows.to_pylist() if r["id"] is not None}
    assert held == {(r["id"], r["event_date"], r["created_at"]) for r in model.rows.values()}
    assert set(rows["v"].to_pylist()) == {target.version()}
    # Each file's ids lie past the previous file's: sorted across files, not only within.
    actions = pa.table(index.get_add_actions(flatten=True)).to_pylist()
    ranges = sorted((a["min.id"], a["max.id"]) for a in actions if a["min.id"] is not None)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges))


def test_many_catch_ups_are_merged_into_one_segment_and_still_find_moved_rows(mirror):
    """Each MERGE adds a segment; past ``MAX_SEGMENT_FILES`` they become one, and moves are
    still found through it."""
    uri, model = mirror
    rng = random.Random(11)
    merged = False
    for _ in range(key_index.MAX_SEGMENT_FILES + 4):
        ident = rng.choice(sorted(model.rows))
        stats = _merge(uri, [model.move(ident, rng.randrange(len(DAYS)))])
        merged |= bool(stats.key_index.get("segments_merged"))
        _assert_equal(uri, model)
    assert merged
    files = DeltaTable(key_index.location(uri)).get_add_actions(flatten=True)
    assert pa.table(files).num_rows <= key_index.MAX_SEGMENT_FILES + 2


def test_an_index_of_a_mirror_created_again_is_not_trusted(tmp_path):
    """The mirror dropped and created again restarts its versions: its old index would look
    current and know none of the new rows; it is built again instead."""
    import shutil

    uri = _create(tmp_path)
    old = Model(random.Random(1), per_day=10)
    _full_sync(uri, old, DAYS)
    for _ in range(3):  # the old index covers a version the new table has not reached
        _merge(uri, [old.new(0)])
    shutil.rmtree(uri)
    uri = _create(tmp_path)
    model = Model(random.Random(2), per_day=10)
    _full_sync(uri, model, DAYS)
    row = model.day(DAYS[3])[0]
    stats = _merge(uri, [model.move(row["id"], 1)])
    _assert_equal(uri, model)
    assert stats.key_index["built"]


def test_a_catch_up_that_finds_the_index_dropped_never_starts_a_partial_one(mirror):
    """A lookup's catch-up reads the files added since the index's version; the index is
    dropped meanwhile (an erasure, a lost cache). Its segment must not become an index of its
    own: that index would know only the new files and hide every older row from the next
    MERGE's search (a moved row would be mirrored twice)."""
    uri, model = mirror
    _merge(uri, [model.new(1)])  # the index exists
    covered = DeltaTable(key_index.location(uri)).version()
    assert covered >= 0
    fresh = model.new(3)
    write_deltalake(uri, _arrow([fresh]), mode="append")  # a commit the index has not seen
    assert key_index.drop(uri)
    snapshot = DeltaTable(uri)
    found = key_index.Found()
    wanted = pa.array([fresh["id"]], pa.string())
    # The index covered the version before the hand-written commit.
    assert key_index._catch_up(uri, SPEC, snapshot, snapshot.version() - 1, wanted, None, found)
    assert not DeltaTable.is_deltatable(key_index.location(uri))
    leftovers = list(Path(key_index.location(uri)).glob("*.parquet"))
    assert not leftovers, "a discarded segment's files (ids) were left behind"
    # The next MERGE builds a whole index and moves an old row once.
    old = model.day(DAYS[0])[3]
    stats = _merge(uri, [model.move(old["id"], 5)])
    assert stats.key_index["built"] and stats.moved_from == [DAYS[0].isoformat()]
    _assert_equal(uri, model)


def test_a_build_that_read_an_older_mirror_reads_the_newest_instead(mirror):
    """A commit lands while the index is built from an older snapshot (an erasure's rewrite,
    whose rows must not come back through the index): the build reads the newest one."""
    uri, model = mirror
    old = DeltaTable(uri)
    gone = model.day(DAYS[2])[0]
    del model.rows[gone["id"]]
    _full_sync(uri, model, [DAYS[2]])  # the rewrite, after the snapshot was taken
    key_index.build(uri, SPEC, old)
    assert old.version() == DeltaTable(uri).version()  # moved to the newest
    held = pa.table(DeltaTable(key_index.location(uri)).to_pyarrow_table())["id"].to_pylist()
    assert gone["id"] not in held
    assert set(model.rows) <= set(held)
