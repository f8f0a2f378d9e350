"""Where a mirror's rows live: a key -> (day, event time) index kept beside each mirror.

An incremental MERGE must find the rows whose created_at the app edited: they sit in another
partition, and move in the same commit. Scanning the mirror's keys for them costs the whole
table on every run (500M UUIDs: ~18 GB decoded). This index answers from the few row groups
that hold the changed keys.

It is a cache of the mirror's Delta log, never the truth: the (id, day, created_at) of every
row of every file the mirror's log added, and the mirror version it covers (``v``, a column:
its maximum comes from the index's own add-action statistics, in the same commit as the rows).
A superset of where the rows are: a row since deleted or moved leaves a stale entry, which
only sends a MERGE to read a partition that holds nothing of it (the MERGE matches what is
really there). So no writer of the mirror (host sync, Spark, erasure, a hand-run
``write_deltalake``) has to keep it: before a lookup it catches up on the files the mirror's
log added since ``v``, which is what the recent writes wrote, whoever wrote them. A crash
anywhere leaves it behind at worst (the next catch-up reads more), never wrong.

Layout: a Delta table at ``location(uri)``, beside the mirror's folder, not inside it (the
erasure reads every Parquet file in a mirror's folder as the mirror's history). Segments
(one per catch-up) sorted by id, in small row groups, so that the files' and row groups' min/
max statistics of ``id`` skip everything but the row groups that may hold a key. The first
lookup on a table builds it from one scan of the mirror (spilling to local disk by id prefix,
so that memory holds one bucket); catch-up segments are merged into one when there are many;
when the index holds far more rows than the mirror it is built again. An erasure that
removes rows from a mirror drops its index (``drop``): it holds ids.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from voyce_assets.catalog import Table

log = logging.getLogger(__name__)

SUFFIX = ".keys"
# Small row groups: a lookup reads about one group per changed key, whatever the table's size.
ROWS_PER_GROUP = 1024
# Files of 512 groups: each file read costs a few ms (open, footer, reads) whatever it
# reads, so fewer files beat smaller footers (measured at 1M and 10M entries).
ROWS_PER_FILE = 512 * ROWS_PER_GROUP
# Catch-up segments merged into one past this many files.
MAX_SEGMENT_FILES = 16
# Built again when it holds this many times the mirror's rows (stale entries, duplicates).
MAX_GROWTH = 2
# A build sorts this many rows at once: more are spilled to local disk by id prefix first.
SORT_ROWS = 2_000_000


def location(uri: str) -> str:
    """The index's Delta table: a sibling of the mirror's folder."""
    return uri.rstrip("/") + SUFFIX


@dataclass
class Found:
    """Every (day, event time) the index holds for each key looked up (keys it never saw are
    absent; times in microseconds since the epoch), and what the lookup cost."""

    where: dict[str, set[tuple]] = field(default_factory=dict)
    metrics: dict[str, int | bool] = field(default_factory=dict)


def _schema(table: Table) -> pa.Schema:
    spec = table.arrow_schema()
    return pa.schema(
        [
            pa.field("id", pa.string()),
            pa.field("day", spec.field(table.partition_column).type),
            pa.field("at", spec.field(table.partition_source).type),
            pa.field("v", pa.int64()),
        ]
    )


def _filesystem(index_uri: str, storage_options):
    """The index's folder: a local one as itself, else through delta-rs' object store (the
    mirror's credentials)."""
    from pyarrow import fs

    if "://" not in index_uri:  # a local folder must exist first (object stores have none)
        os.makedirs(index_uri, exist_ok=True)
        return fs.SubTreeFileSystem(index_uri, fs.LocalFileSystem())
    from deltalake.fs import DeltaStorageHandler

    return fs.PyFileSystem(DeltaStorageHandler(index_uri, storage_options or None))


def _triples(batch: pa.RecordBatch) -> pa.Table:
    """(id, day, at) of a scanned batch of (key, event time, day)."""
    return pa.table(
        [batch.column(0).cast(pa.string()), batch.column(2), batch.column(1)],
        names=["id", "day", "at"],
    )


def _scan(mirror, table: Table, paths: dict[str, object] | None = None):
    """Record batches of (key, event time, day) of the mirror's snapshot ``mirror``: every
    file, or only ``paths`` ({add-action path: its day}). The dataset is made of those days'
    files alone: one made of every file costs milliseconds a file."""
    import pyarrow.dataset as ds

    pruning = None
    if paths is not None:
        days = sorted({d.isoformat() for d in paths.values()})
        pruning = [(table.partition_column, "in", days)]
    dataset = mirror.to_pyarrow_dataset(
        schema=pa.schema([f.with_nullable(True) for f in table.arrow_schema()]),
        file_pruning_predicate=pruning,
    )
    if paths is not None:
        fragments = [f for f in dataset.get_fragments() if f.path in paths]
        dataset = ds.FileSystemDataset(
            fragments, dataset.schema, dataset.format, dataset.filesystem
        )
    columns = [table.primary_key[0], table.partition_source, table.partition_column]
    return dataset.to_batches(
        columns=columns, batch_size=65_536, batch_readahead=2, fragment_readahead=8
    )


def _rows(actions: pa.Table) -> list[int]:
    """Rows of each file from the log; a file a writer left without statistics counts as
    ``SORT_ROWS`` (so that a build spills rather than sort in memory what it cannot count)."""
    if not actions.num_rows:
        return []
    return [SORT_ROWS if n is None else n for n in actions["num_records"].to_pylist()]


def _in_order(batches, total: int, sort_rows: int, schema: pa.Schema):
    """Tables of (id, day, at) of ``batches``, sorted by id as a whole: sorted at once up to
    ``sort_rows`` rows; beyond, spilled to local disk by id prefix, then bucket by bucket (ids
    are UUIDs: their first hex digits split them evenly, and in order)."""
    import pyarrow.dataset as ds

    if total <= sort_rows:
        parts = [_triples(b) for b in batches if b.num_rows]
        if parts:
            yield pa.concat_tables(parts).sort_by("id")
        return
    digits = 1
    while total / 16**digits > sort_rows:
        digits += 1
    spilled_schema = schema.append(pa.field("b", pa.string()))
    with tempfile.TemporaryDirectory(prefix="voyce-keys-") as spill:

        def bucketed():
            for batch in batches:
                rows = _triples(batch).cast(schema)
                prefix = pc.utf8_slice_codeunits(rows.column("id"), 0, digits)
                yield from rows.append_column("b", prefix).to_batches()

        ds.write_dataset(
            bucketed(),
            spill,
            schema=spilled_schema,
            format="parquet",
            partitioning=ds.partitioning(pa.schema([("b", pa.string())]), flavor="hive"),
            existing_data_behavior="overwrite_or_ignore",
            # Every bucket may get rows from one batch (4,096 past 512M rows: pyarrow's
            # default stops at 1,024 and the build would fail on the tables that need it most).
            max_partitions=16**digits,
            max_open_files=max(1024, 16**digits),
        )
        spilled = ds.dataset(
            spill,
            format="parquet",
            schema=spilled_schema,
            partitioning=ds.partitioning(pa.schema([("b", pa.string())]), flavor="hive"),
        )
        buckets = sorted(pc.unique(spilled.to_table(columns=["b"]).column(0)).to_pylist())
        for bucket in buckets:
            rows = spilled.to_table(columns=["id", "day", "at"], filter=pc.field("b") == bucket)
            yield rows.sort_by("id")


class _Writer:
    """Parquet files of one segment, written in the order given (sorted: delta-rs' writer
    reorders the batches of a stream), in small row groups, with their add actions' statistics;
    committed as one transaction. The last row has no id and carries ``v`` even when nothing
    else does."""

    def __init__(self, index_uri: str, table: Table, mirror, version: int, storage_options):
        self.uri = index_uri
        self.of = _identity(mirror)
        self.schema = _schema(table)
        self.version = version
        self.storage_options = storage_options
        self.fs = _filesystem(index_uri, storage_options)
        self.adds: list = []
        self.rows = 0
        self._file = None

    def write(self, rows: pa.Table) -> None:
        rows = rows.select(["id", "day", "at"]).cast(self.schema.remove(3))
        rows = rows.append_column("v", pa.array([self.version] * rows.num_rows, pa.int64()))
        rows = rows.combine_chunks()
        for start in range(0, rows.num_rows, ROWS_PER_GROUP):
            self._group(rows.slice(start, ROWS_PER_GROUP))

    def _group(self, rows: pa.Table) -> None:
        import pyarrow.parquet as pq

        if self._file is None:
            name = f"part-{uuid.uuid4()}.zstd.parquet"
            sink = self.fs.open_output_stream(name)
            writer = pq.ParquetWriter(sink, self.schema, compression="zstd")
            self._file = {"name": name, "sink": sink, "writer": writer, "rows": 0, "ids": []}
        self._file["writer"].write_table(rows, row_group_size=ROWS_PER_GROUP)
        self._file["rows"] += rows.num_rows
        ids = rows.column("id").drop_null()
        if len(ids):
            self._file["ids"] += [ids[0].as_py(), ids[-1].as_py()]
        self.rows += rows.num_rows
        if self._file["rows"] >= ROWS_PER_FILE:
            self._close()

    def _close(self) -> None:
        from deltalake.transaction import AddAction

        done, self._file = self._file, None
        done["writer"].close()
        done["sink"].close()
        ids = done["ids"]
        stats = {
            "numRecords": done["rows"],
            "minValues": {"v": self.version, **({"id": ids[0]} if ids else {})},
            "maxValues": {"v": self.version, **({"id": ids[-1]} if ids else {})},
        }
        self.adds.append(
            AddAction(
                path=done["name"],
                size=self.fs.get_file_info(done["name"]).size,
                partition_values={},
                modification_time=int(time.time() * 1000),
                data_change=True,
                stats=json.dumps(stats),
            )
        )

    def commit(self, mode: str, removes=()) -> None:
        """The segment (its last row, with no id, included) as one commit; ``removes``: files
        it replaces (``mode`` append). Only a build (``overwrite``) creates the index: a
        catch-up or a merge of segments that finds it dropped (an erasure, a lost cache) or
        already past what it read is discarded, never the start of a partial index."""
        from deltalake import DeltaTable, Schema
        from deltalake.transaction import create_table_with_add_actions

        self._group(
            pa.table(
                {
                    n: pa.array([None], f.type)
                    for n, f in zip(self.schema.names, self.schema, strict=True)
                }
            ).set_column(3, "v", pa.array([self.version], pa.int64()))
        )
        self._close()
        so = self.storage_options or None
        exists = DeltaTable.is_deltatable(self.uri, storage_options=so)
        if mode == "overwrite" and not exists:
            create_table_with_add_actions(
                self.uri,
                Schema.from_arrow(self.schema),
                self.adds,
                mode="overwrite",
                description=self.of,
                storage_options=so,
            )
            return
        if not exists:
            self.discard()
            return
        index = DeltaTable(self.uri, storage_options=so)
        if mode != "overwrite":
            files = pa.table(index.get_add_actions(flatten=True))
            held = set(files["path"].to_pylist())
            covered = max(files["max.v"].to_pylist()) if files.num_rows else -1
            # A merge whose segments are gone (a rebuild since), or a catch-up the index
            # already covers (rebuilt from a newer mirror, e.g. after an erasure): it would
            # only bring back what the index no longer holds.
            if (removes and not {r.path for r in removes} <= held) or (
                not removes and covered >= self.version
            ):
                self.discard()
                return
        index.create_write_transaction([*self.adds, *removes], mode=mode, schema=self.schema)

    def discard(self) -> None:
        """Delete the files written and not committed (they hold ids)."""
        if self._file is not None:
            self._close()
        for add in self.adds:
            with suppress(Exception):
                self.fs.delete_file(add.path)
        self.adds = []


def _identity(mirror) -> str:
    """What the index says it indexes: the mirror's Delta table id (a table dropped and
    created again restarts its versions: an index of the old one would look current)."""
    return f"key index of Delta table {mirror.metadata().id}"


def build(uri: str, table: Table, mirror, storage_options=None, sort_rows=SORT_ROWS) -> int:
    """Write the index afresh from the mirror's snapshot ``mirror`` (a ``DeltaTable``), as one
    commit; the entries written. If the mirror gained a commit while it was read (an erasure
    among them, perhaps: its rows must not come back through the index), it reads the newest
    snapshot instead (``mirror`` is moved to it)."""
    from deltalake import DeltaTable

    so = storage_options or None
    for _ in range(3):
        actions = pa.table(mirror.get_add_actions(flatten=True))
        total = sum(_rows(actions))
        writer = _Writer(location(uri), table, mirror, mirror.version(), storage_options)
        for rows in _in_order(_scan(mirror, table), total, sort_rows, writer.schema.remove(3)):
            writer.write(rows)
        if DeltaTable(uri, storage_options=so).version() == mirror.version():
            entries = writer.rows
            writer.commit("overwrite")
            return entries
        writer.discard()
        mirror.update_incremental()
    raise RuntimeError(f"{table.path}: the mirror kept changing while its key index was built")


def drop(uri: str, storage_options=None) -> bool:
    """Delete the index of the mirror at ``uri``, log and files (the next lookup builds it
    again); whether there was anything."""
    from pyarrow import fs

    index_uri = location(uri)
    if "://" not in index_uri and not os.path.isdir(index_uri):
        return False
    filesystem = _filesystem(index_uri, storage_options)
    infos = [
        i
        for i in filesystem.get_file_info(fs.FileSelector("", recursive=True))
        if i.type == fs.FileType.File
    ]
    # The log first: a drop cut short leaves no table (the next lookup builds it again over
    # what is left, and the next drop deletes that too), never a table missing files.
    infos.sort(key=lambda i: "_delta_log" not in i.path)
    for info in infos:
        filesystem.delete_file(info.path)
    return bool(infos)


def lookup(uri: str, table: Table, keys: list[str], mirror, storage_options=None) -> Found:
    """Every (day, event time) the mirror's rows of ``keys`` may have in the snapshot
    ``mirror`` (a ``DeltaTable``, moved to a newer version when the index already covers
    one) or had before it: the index caught up to that snapshot first (built when missing)."""
    from deltalake import DeltaTable

    found = Found(metrics={"built": False, "files_caught_up": 0, "row_groups_read": 0})
    index_uri = location(uri)
    so = storage_options or None
    if not DeltaTable.is_deltatable(index_uri, storage_options=so):
        found.metrics["index_entries"] = build(uri, table, mirror, storage_options)
        found.metrics["built"] = True
        log.info("%s: key index built from a scan of the mirror", table.path)
    index = DeltaTable(index_uri, storage_options=so)
    if index.metadata().description != _identity(mirror):
        log.info("%s: key index of another table (created again?): built again", table.path)
        drop(uri, storage_options)
        return lookup(uri, table, keys, mirror, storage_options)
    files = pa.table(index.get_add_actions(flatten=True))
    covered = max(files["max.v"].to_pylist()) if files.num_rows else -1
    if covered > mirror.version():
        # Another lookup caught up past this snapshot: the MERGE runs on the newer one.
        mirror.update_incremental()
    wanted = pa.array(sorted(set(keys)), pa.string())
    if covered < mirror.version() and not _catch_up(
        uri, table, mirror, covered, wanted, storage_options, found
    ):
        # The log of the version it covers is gone (cleaned up): built again instead.
        return lookup(uri, table, keys, mirror, storage_options)
    _search(index_uri, files, wanted, found, storage_options)
    _maintain(uri, table, mirror, index, files, storage_options, found)
    return found


def _catch_up(uri, table, mirror, covered: int, wanted, storage_options, found: Found) -> bool:
    """Append the (id, day, at) of the files the mirror's log added after version
    ``covered``, up to the snapshot ``mirror``; those of ``wanted`` go into ``found``.
    False when the log no longer has that version (the index is built again)."""
    from deltalake import DeltaTable

    actions = pa.table(mirror.get_add_actions(flatten=True))
    try:
        before = DeltaTable(uri, version=covered, storage_options=storage_options or None)
    except Exception:
        log.info("%s: mirror version %s gone from its log; key index rebuilt", table.path, covered)
        build(uri, table, mirror, storage_options)
        return False
    known = set(pa.table(before.get_add_actions(flatten=True))["path"].to_pylist())
    added = {
        p: (n, d)
        for p, n, d in zip(
            actions["path"].to_pylist(),
            _rows(actions),
            actions[f"partition.{table.partition_column}"].to_pylist(),
            strict=True,
        )
        if p not in known
    }
    writer = _Writer(location(uri), table, mirror, mirror.version(), storage_options)
    hits = []

    def tapped():
        days = {p: d for p, (_, d) in added.items()}
        for batch in _scan(mirror, table, days) if added else []:
            ids = batch.column(0).cast(pa.string())
            hits.append(_triples(batch.filter(pc.is_in(ids, value_set=wanted))))
            yield batch

    total = sum(n for n, _ in added.values())
    for rows in _in_order(tapped(), total, SORT_ROWS, writer.schema.remove(3)):
        writer.write(rows)
    for rows in hits:
        _collect(found, rows)
    found.metrics["files_caught_up"] = len(added)
    found.metrics["entries_caught_up"] = writer.rows
    try:
        writer.commit("append")
    except Exception as exc:  # lost a race (a rebuild): this lookup has what it read anyway
        log.warning("%s: key index segment not committed (%s)", table.path, exc)
    return True


def _collect(found: Found, hits: pa.Table) -> None:
    # Times as integers (microseconds): a tz-aware datetime costs ~10x more to make.
    for ident, day, at in zip(
        hits.column("id").to_pylist(),
        hits.column("day").to_pylist(),
        hits.column("at").cast(pa.int64()).to_pylist(),
        strict=True,
    ):
        found.where.setdefault(ident, set()).add((day, at))


def _search(index_uri, files: pa.Table, wanted: pa.Array, found: Found, storage_options) -> None:
    """The index's entries of ``wanted`` (sorted): the files, then the row groups, whose id
    range holds one of them (min/max statistics), read alone. pyarrow's own ``is_in`` filter
    skips nothing beyond a few dozen keys: the ranges are tested here."""
    import bisect

    keys = wanted.to_pylist()
    if not keys or not files.num_rows:
        return

    def holds(low, high) -> bool:
        if low is None or high is None:  # no id: a segment's last row only
            return False
        at = bisect.bisect_left(keys, low)
        return at < len(keys) and keys[at] <= high

    paths = {
        p
        for p, low, high in zip(
            files["path"].to_pylist(),
            files["min.id"].to_pylist(),
            files["max.id"].to_pylist(),
            strict=True,
        )
        if holds(low, high)
    }
    import pyarrow.parquet as pq

    filesystem = _filesystem(index_uri, storage_options)
    read = 0
    for path in sorted(paths):
        # The footer's statistics of the id column only (all columns' cost 10x more).
        # pre_buffer: the row groups read are coalesced into few reads.
        parquet = pq.ParquetFile(filesystem.open_input_file(path), pre_buffer=True)
        meta = parquet.metadata
        groups = []
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(0).statistics
            if stats is not None and stats.has_min_max and holds(stats.min, stats.max):
                groups.append(g)
        if not groups:
            continue
        read += len(groups)
        rows = parquet.read_row_groups(groups, columns=["id", "day", "at"])
        _collect(found, rows.filter(pc.is_in(rows.column("id"), value_set=wanted)))
    found.metrics["row_groups_read"] += read


def _maintain(uri, table, mirror, index, files: pa.Table, storage_options, found) -> None:
    """Merge the catch-up segments into one when there are many; build the index again when
    it holds far more entries than the mirror has rows. Best effort: losing a race to another
    writer leaves the index as it was, a superset all the same."""
    from deltalake.transaction import RemoveAction

    if not files.num_rows:
        return
    versions = files["min.v"].to_pylist()
    base = min(versions)
    segments = [
        (p, n)
        for p, n, v in zip(
            files["path"].to_pylist(), files["size_bytes"].to_pylist(), versions, strict=True
        )
        if v > base
    ]
    held = sum(files["num_records"].to_pylist())
    rows = sum(_rows(pa.table(mirror.get_add_actions(flatten=True))))
    try:
        if held > MAX_GROWTH * rows + SORT_ROWS // 2:
            build(uri, table, mirror, storage_options)
            found.metrics["rebuilt"] = True
        elif len(segments) > MAX_SEGMENT_FILES:
            import pyarrow.dataset as ds

            picked = {p for p, _ in segments}
            dataset = index.to_pyarrow_dataset()
            fragments = [f for f in dataset.get_fragments() if f.path in picked]
            entries = ds.FileSystemDataset(
                fragments, dataset.schema, dataset.format, dataset.filesystem
            ).to_table(columns=["id", "day", "at", "v"])
            top = pc.max(entries.column("v")).as_py()
            entries = entries.filter(pc.is_valid(entries.column("id")))
            unique = entries.select(["id", "day", "at"]).group_by(["id", "day", "at"]).aggregate([])
            writer = _Writer(location(uri), table, mirror, top, storage_options)
            writer.write(unique.sort_by("id"))
            now = int(time.time() * 1000)
            writer.commit("append", [RemoveAction(p, True, now, size=n) for p, n in segments])
            found.metrics["segments_merged"] = len(segments)
        else:
            return
        index.update_incremental()
        index.vacuum(retention_hours=1, enforce_retention_duration=False, dry_run=False)
    except Exception as exc:
        log.warning("%s: key index not compacted (%s)", table.path, exc)
