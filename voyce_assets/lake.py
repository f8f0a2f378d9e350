"""Reading and writing the catalog's Delta tables by partition, for every stage.

Reads: a partition's record batches (streamed), and its rows and bytes from the Delta log
alone. Writes: replace whole partitions, or MERGE changed rows by primary key. Both writes
are single Delta commits: a crash before the commit leaves the table exactly as it was (the
files already written are unreferenced and VACUUM removes them). Rows that break the spec's
NOT NULL columns are held back and counted, never written.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from voyce_assets import key_index
from voyce_assets.catalog import Table

# Parquet files of a partition stay small enough that a MERGE of recent changes (rows are
# written in created_at order) rewrites one file, not the whole partition.
TARGET_FILE_BYTES = 8 << 20
MAX_ROWS_PER_GROUP = 128_000
QUARANTINE_PREVIEW = 20

log = logging.getLogger(__name__)


@dataclass
class WriteStats:
    rows_written: int = 0
    rows_per_partition: dict[str, int] = field(default_factory=dict)
    # Rows per (partition key, organization id): cost rows are recorded per partition.
    rows_per_partition_organization: dict[tuple[str, str | None], int] = field(default_factory=dict)
    quarantined: int = 0
    # Columns that were NULL against the spec, and a few of the rows, for the checks.
    quarantined_columns: dict[str, int] = field(default_factory=dict)
    quarantine_preview: list[dict] = field(default_factory=list)
    merge_metrics: dict = field(default_factory=dict)
    # Partitions an incremental MERGE moved rows out of (their created_at changed).
    moved_from: list[str] = field(default_factory=list)
    # What finding the moved rows cost (``key_index.lookup``'s metrics).
    key_index: dict = field(default_factory=dict)


def open_dataset(uri: str, table: Table, storage_options=None, dates=None, snapshot=None):
    """The Delta table as a pyarrow dataset in the spec's schema, whatever each writer chose.

    Files of one table disagree on text types: ``write_deltalake`` writes ``string``, delta-rs'
    MERGE ``string_view``. Scanned batches come out in the spec's types, but pyarrow cannot
    compare a ``string`` filter with a ``string_view`` file's statistics. Filter a dataset from
    here on its partition column only (which lives in the paths, not the files); filter other
    columns on the batches (``scan``).

    ``dates``: made of those partitions' files alone (a dataset of every file costs
    milliseconds a file to make, filtered or not). ``snapshot``: a ``DeltaTable`` already
    loaded (its log not read again).
    """
    from deltalake import DeltaTable

    pruning = None
    if dates is not None:
        pruning = [(table.partition_column, "in", sorted({d.isoformat() for d in dates}))]
    snapshot = snapshot or DeltaTable(uri, storage_options=storage_options or None)
    return snapshot.to_pyarrow_dataset(
        schema=pa.schema([f.with_nullable(True) for f in table.arrow_schema()]),
        file_pruning_predicate=pruning,
    )


def delta_batches(
    uri: str,
    table: Table,
    dates: list[dt.date] | None,
    columns=None,
    storage_options=None,
    fragments_ahead: int = 1,
    snapshot=None,
) -> Iterator[pa.RecordBatch]:
    """The rows of ``dates`` (every partition when None) as record batches in the spec's
    types, streamed with little read-ahead (``fragments_ahead`` files at once: more for a
    narrow scan of many files on cloud storage)."""
    dataset = open_dataset(uri, table, storage_options, dates, snapshot)
    flt = None
    if dates is not None:
        flt = pc.field(table.partition_column).isin(pa.array(sorted(set(dates)), pa.date32()))
    # Little read-ahead: verifying a large partition must not hold it in memory.
    return dataset.to_batches(
        filter=flt,
        columns=columns,
        batch_size=65_536,
        batch_readahead=2,
        fragment_readahead=fragments_ahead,
    )


def partition_files(
    uri, table: Table, dates=None, storage_options=None
) -> dict[str, tuple[int, int]]:
    """{partition date: (rows, bytes)} from the Delta log alone: no data file is read.

    ``dates``: those partitions (zeros where empty); None: every partition holding files.
    """
    from deltalake import DeltaTable

    actions = pa.table(
        DeltaTable(uri, storage_options=storage_options or None).get_add_actions(flatten=True)
    )
    out: dict[str, tuple[int, int]] = {}
    for day, rows, size in zip(
        actions[f"partition.{table.partition_column}"].to_pylist(),
        actions["num_records"].to_pylist(),
        actions["size_bytes"].to_pylist(),
        strict=True,
    ):
        key = day.isoformat() if hasattr(day, "isoformat") else str(day)
        total = out.get(key, (0, 0))
        out[key] = (total[0] + rows, total[1] + size)
    if dates is None:
        return out
    return {d.isoformat(): out.get(d.isoformat(), (0, 0)) for d in dates}


def partition_predicate(table: Table, dates: Iterable[dt.date], alias: str = "") -> str:
    col = f"{alias}.{table.partition_column}" if alias else table.partition_column
    values = ", ".join(f"'{d.isoformat()}'" for d in sorted(set(dates)))
    return f"{col} IN ({values})"


def held_back_when_null(table: Table) -> list[str]:
    """The columns a NULL in which holds a row back from a write: the spec's NOT NULL
    columns other than the partition column (``_Filter``, ``writable``)."""
    return [c for c in table.required_columns if c != table.partition_column]


def writable(table: Table, data: pa.Table) -> pa.Table:
    """The rows of ``data`` a write keeps: those ``_Filter`` does not hold back."""
    keep = None
    for name in held_back_when_null(table):
        valid = pc.is_valid(data.column(name))
        keep = valid if keep is None else pc.and_(keep, valid)
    return data if keep is None else data.filter(keep)


class _Filter:
    """Counts rows and holds back those that break the spec's NOT NULL columns."""

    def __init__(self, table: Table, stats: WriteStats, tap=None) -> None:
        self.table = table
        self.stats = stats
        self.tap = tap
        self.schema = table.arrow_schema()
        self.required = held_back_when_null(table)
        self.org_column = _organization_column(table)

    def __call__(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            bad = None
            for name in self.required:
                nulls = pc.is_null(batch.column(name))
                count = pc.sum(nulls).as_py() or 0
                if count:
                    self.stats.quarantined_columns[name] = (
                        self.stats.quarantined_columns.get(name, 0) + count
                    )
                    bad = nulls if bad is None else pc.or_(bad, nulls)
            if bad is not None:
                held = batch.filter(bad)
                self.stats.quarantined += held.num_rows
                room = QUARANTINE_PREVIEW - len(self.stats.quarantine_preview)
                if room > 0:
                    rows = [self.table.mask(r) for r in held.slice(0, room).to_pylist()]
                    self.stats.quarantine_preview += _jsonable(rows)
                batch = batch.filter(pc.invert(bad))
            if batch.num_rows == 0:
                continue
            self._count(batch)
            batch = batch.cast(self.schema)
            if self.tap is not None:
                self.tap(batch)
            yield batch

    def _count(self, batch: pa.RecordBatch) -> None:
        self.stats.rows_written += batch.num_rows
        part = batch.column(self.table.partition_column)
        for value in pc.value_counts(part).to_pylist():
            key = value["values"].isoformat()
            self.stats.rows_per_partition[key] = (
                self.stats.rows_per_partition.get(key, 0) + value["counts"]
            )
        if self.org_column:
            # value_counts per day, not a group_by: Acero's hash aggregation holds ~75 MB per
            # sync for what is a few hundred (day, organization) pairs.
            days = pc.unique(part)
            for day in days.to_pylist():
                orgs = batch.column(self.org_column)
                if len(days) > 1:
                    orgs = orgs.filter(pc.equal(part, pa.scalar(day, part.type)))
                for value in pc.value_counts(orgs).to_pylist():
                    key = (day.isoformat(), value["values"])
                    self.stats.rows_per_partition_organization[key] = (
                        self.stats.rows_per_partition_organization.get(key, 0) + value["counts"]
                    )


class _ReadAhead:
    """``batches`` produced on a thread of their own, ``depth`` ahead of the consumer.

    The Delta writer encodes one batch (in Rust, without the GIL) while the next is read,
    checked and checksummed: the two overlap instead of taking turns. ``stop()`` may be called
    from any thread, even while the writer's own thread is inside ``__iter__``: it ends the
    producer, joins it and wakes a consumer still waiting.
    """

    _DONE = object()

    def __init__(self, batches: Iterator[pa.RecordBatch], depth: int = 2) -> None:
        self._batches = batches
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="voyce-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for batch in self._batches:
                if not self._put(batch):
                    return
            self._put(self._DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        while (item := self._queue.get()) is not self._DONE:
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        # Drop what is still queued, so the end marker always fits and a waiting consumer ends.
        with suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._queue.put_nowait(self._DONE)


class _OnThread:
    """Calls ``fn`` with each batch on a thread of its own (``depth`` batches may wait), so a
    tap that holds the GIL (per-row hashing) runs beside the reader and the writer."""

    def __init__(self, fn, depth: int = 4) -> None:
        self._fn = fn
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="voyce-tap", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._fn(batch)
                except BaseException as exc:  # raised by close(), in the caller's thread
                    self._error = exc

    def __call__(self, batch: pa.RecordBatch) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(batch)  # only the read-ahead thread calls this, stopped before close()

    def close(self, raise_error: bool = True) -> None:
        """Wait until every batch went through ``fn``; raise what it raised."""
        self._queue.put(None)
        self._thread.join()
        if raise_error and self._error is not None:
            raise self._error


def _organization_column(table: Table) -> str | None:
    if table.name == "organizations":
        return "id"
    return "organization_id" if "organization_id" in table.column_names else None


def _jsonable(rows: list[dict]) -> list[dict]:
    return json.loads(json.dumps(rows, default=str))


def replace_partitions(
    uri: str,
    table: Table,
    batches: Iterable[pa.RecordBatch],
    dates: list[dt.date],
    storage_options: dict[str, str] | None = None,
    tap=None,
) -> WriteStats:
    """Make ``dates`` of the Delta table hold exactly ``batches`` (one overwrite commit).

    ``tap``: called with every batch handed to the writer (held-back rows excluded), e.g. to
    checksum exactly what is written without reading it back. It runs on its own thread.
    """
    stats = WriteStats()
    side = _OnThread(tap) if tap is not None else None
    ahead = None
    written = False
    try:
        ahead = _ReadAhead(_Filter(table, stats, side)(batches))
        reader = pa.RecordBatchReader.from_batches(table.arrow_schema(), iter(ahead))
        _write(uri, reader, dates, table, storage_options)
        written = True
    finally:
        if ahead is not None:
            ahead.stop()  # the reader's thread first: nothing reaches the tap after it is closed
        if side is not None:
            side.close(raise_error=written)
    for day in dates:
        stats.rows_per_partition.setdefault(day.isoformat(), 0)
    return stats


def add_columns(delta, fields: Iterable[pa.Field]) -> None:
    """Add ``fields`` to the Delta table ``delta`` (columns the spec gained since it was
    created), as nullable: the rows written before hold NULL in them."""
    from deltalake import Field as DeltaField
    from deltalake import Schema as DeltaSchema

    delta_fields = DeltaSchema.from_arrow(pa.schema(list(fields))).fields
    delta.alter.add_columns([DeltaField(f.name, f.type, nullable=True) for f in delta_fields])


def evolved(uri: str, table: Table, storage_options=None):
    """The Delta table at ``uri`` (``uri`` itself when there is none yet), holding every
    column of its spec: those the spec gained since the table was created are added first (an
    overwrite or MERGE of rows with columns the table lacks is refused), so a stage's write
    works on a table made before them, with or without a ``catalog_setup`` in between."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        delta = DeltaTable(uri, storage_options=storage_options or None)
    except TableNotFoundError:
        return uri  # not made yet: the write creates it, with every column
    held = {f.name for f in delta.schema().fields}
    missing = [f for f in table.arrow_schema() if f.name not in held]
    if missing:
        add_columns(delta, missing)
    return delta


def _write(uri, reader, dates, table: Table, storage_options) -> None:
    from deltalake import WriterProperties, write_deltalake

    write_deltalake(
        evolved(uri, table, storage_options),
        reader,
        mode="overwrite",
        predicate=partition_predicate(table, dates),
        storage_options=storage_options or None,
        writer_properties=WriterProperties(
            compression="ZSTD", max_row_group_size=MAX_ROWS_PER_GROUP
        ),
        target_file_size=TARGET_FILE_BYTES,
    )


def _copies(
    uri, table: Table, source: pa.Table, storage_options, days=None, snapshot=None
) -> list[tuple]:
    """(key, event timestamp, partition) of every row of the table, in ``days`` (every
    partition when None), whose primary key is among ``source``'s: one narrow scan of the key
    column (no statistic skips a random UUID), the keys matched on each batch
    (``open_dataset`` says why not in the scan's filter)."""
    key, when = table.primary_key[0], table.partition_source
    wanted = source[key].combine_chunks()
    found: list[tuple] = []
    # Three narrow columns of every file: several files in flight (each is one small read).
    columns = [key, when, table.partition_column]
    for batch in delta_batches(uri, table, days, columns, storage_options, 8, snapshot):
        hits = batch.filter(pc.is_in(batch.column(key), value_set=wanted))
        found += zip(*(hits.column(c).to_pylist() for c in (0, 1, 2)), strict=True)
    return found


def _located(uri, table: Table, source: pa.Table, target, storage_options, stats) -> list[tuple]:
    """``_copies`` of ``source``'s keys at the cost of the change, not of the table.

    The key index (``key_index``) names every (day, created_at) each key may have. When each
    key's only entries are its new row's own day and created_at, or it has none (a new row),
    no copy can be elsewhere nor edited: nothing to read. Otherwise the copies are read from
    the partitions the index names (and the run's), which hold every real copy. An index
    that cannot be read is a cache lost: the whole table is scanned, as before it existed,
    and the index is dropped (the next MERGE builds it again).
    """
    key, when, part = table.primary_key[0], table.partition_source, table.partition_column
    ids = source[key].to_pylist()
    try:
        found = key_index.lookup(uri, table, ids, target, storage_options)
    except Exception as exc:
        log.warning("%s: key index unusable (%s); scanning the table's keys", table.path, exc)
        stats.key_index = {"unusable": True}
        with suppress(Exception):  # built again by the next MERGE
            key_index.drop(uri, storage_options)
        return _copies(uri, table, source, storage_options)
    stats.key_index = dict(found.metrics)
    days, stamps = source[part].to_pylist(), source[when].cast(pa.int64()).to_pylist()
    new = {i: (d, t) for i, d, t in zip(ids, days, stamps, strict=True)}
    if all(places <= {new[i]} for i, places in found.where.items()):
        # Each key is where its new row goes, with the same created_at, or nowhere yet.
        at = dict(zip(ids, source[when].to_pylist(), strict=True))
        return [(i, at[i], new[i][0]) for i in found.where]
    wider = {d for places in found.where.values() for d, _ in places} | set(days)
    stats.key_index["partitions_read"] = len(wider)
    return _copies(uri, table, source, storage_options, sorted(wider), target)


def merge_rows(
    uri: str,
    table: Table,
    batches: Iterable[pa.RecordBatch],
    dates: list[dt.date],
    storage_options: dict[str, str] | None = None,
) -> WriteStats:
    """Upsert changed rows by primary key, touching only the partitions in ``dates`` (and,
    for a row whose created_at the app edited, the partitions still holding it)."""
    from deltalake import DeltaTable

    stats = WriteStats()
    rows = list(_Filter(table, stats)(batches))
    if not rows:
        return stats
    source = pa.Table.from_batches(rows, schema=table.arrow_schema())
    target = evolved(uri, table, storage_options)
    if isinstance(target, str):  # no table to merge into: say so as delta-rs does
        target = DeltaTable(uri, storage_options=storage_options or None)
    keys = " AND ".join(f"t.{k} = s.{k}" for k in table.primary_key)
    inside = set(dates)
    traced = len(table.primary_key) == 1 and table.partition_source is not None
    copies = _located(uri, table, source, target, storage_options, stats) if traced else []
    stamps = (
        dict(
            zip(
                source[table.primary_key[0]].to_pylist(),
                source[table.partition_source].to_pylist(),
                strict=True,
            )
        )
        if copies
        else {}
    )
    elsewhere = sorted({day for _, _, day in copies if day not in inside})
    edited = any(stamp != stamps[ident] for ident, stamp, _ in copies)
    if not elsewhere and not edited:
        # The usual case: every changed row is where it was. The partition column lets Delta
        # skip every other partition's files; the created_at range of the changes (the order
        # rows were written in) skips the partition's files holding none, so a MERGE of
        # recent changes reads one file.
        predicate = (
            f"{keys} AND t.{table.partition_column} = s.{table.partition_column} AND "
            + partition_predicate(table, dates, alias="t")
        )
        if table.partition_source:
            bounds = pc.min_max(source[table.partition_source]).as_py()
            predicate += (
                f" AND t.{table.partition_source} >= '{bounds['min'].isoformat()}'"
                f" AND t.{table.partition_source} <= '{bounds['max'].isoformat()}'"
            )
        merger = target.merge(
            source=source, predicate=predicate, source_alias="s", target_alias="t"
        )
        stats.merge_metrics = (
            merger.when_matched_update_all().when_not_matched_insert_all().execute()
        )
        return stats
    # created_at was edited in the app: the row is still where it was, perhaps in another
    # partition. The MERGE reaches those partitions too, in one commit, and keeps one copy of
    # each row: the one already in its new partition (a full sync wrote it there), else the
    # one in the latest partition holding it, updated (so moved); any other copy is deleted.
    # Never two copies, even when the old partition is one of the run's own.
    key, part = table.primary_key[0], table.partition_column
    new_day = dict(zip(source[key].to_pylist(), source[part].to_pylist(), strict=True))
    keep: dict = {}
    for ident, _, day in copies:
        if keep.get(ident) != new_day[ident]:
            keep[ident] = day if day == new_day[ident] else max(day, keep.get(ident, day))
    source = source.append_column(
        "_keep", pa.array([keep.get(i) for i in new_day], source.schema.field(part).type)
    )
    columns = {c: f"s.{c}" for c in table.column_names}
    stats.moved_from = sorted({d.isoformat() for i, _, d in copies if d != new_day[i]})
    stats.merge_metrics = (
        target.merge(
            source=source,
            predicate=f"{keys} AND " + partition_predicate(table, [*dates, *elsewhere], alias="t"),
            source_alias="s",
            target_alias="t",
        )
        .when_matched_delete(predicate=f"t.{part} <> s._keep")
        .when_matched_update(updates=columns)
        .when_not_matched_insert(updates=columns)
        .execute()
    )
    return stats


def table_filesystem(uri: str):
    """(pyarrow filesystem, path) of a Delta table's URI: a local folder, s3://, gs:// ...
    (credentials from the environment)."""
    from pyarrow import fs

    if "://" not in uri:
        return fs.LocalFileSystem(), uri
    return fs.FileSystem.from_uri(uri)


def change_data_files(uri: str) -> tuple[object, list]:
    """(filesystem, file infos) of the table's change-data files (``_change_data/``: the
    change feed's rows of updates and deletes). delta-rs' VACUUM never deletes them."""
    from pyarrow import fs

    filesystem, root = table_filesystem(uri)
    selector = fs.FileSelector(
        f"{root.rstrip('/')}/_change_data", recursive=True, allow_not_found=True
    )
    files = [i for i in filesystem.get_file_info(selector) if i.type == fs.FileType.File]
    return filesystem, files


def expire_change_data(uri: str, retain_hours: float) -> int:
    """Delete the change-data files older than ``retain_hours`` (what VACUUM does to them on
    Databricks); how many."""
    filesystem, files = change_data_files(uri)
    limit = dt.datetime.now(dt.UTC) - dt.timedelta(hours=retain_hours)
    old = [f for f in files if f.mtime is not None and f.mtime.replace(tzinfo=dt.UTC) < limit]
    for info in old:
        filesystem.delete_file(info.path)
    return len(old)
