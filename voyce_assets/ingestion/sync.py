"""One sync of one app table for a set of partitions, with the evidence the checks need.

Full sync: the partitions are replaced with the source's rows (deletes disappear too).
Incremental sync: rows changed after a CDC cursor are merged by primary key into their
partitions. Data, counts and checksums are read in one REPEATABLE READ snapshot, so the
reconciliation compares the mirror with exactly the source state that was copied.

A full sync's evidence costs no second read of either side: the rows stream on a second
connection that imports this one's snapshot, while PostgreSQL computes its checksums on this
one (two server processes, side by side); our side checksums every row as it is handed to the
Delta writer; the row counts are the commit's own (Delta log statistics). The sweep's scrub
re-reads the files at rest weekly.

A full sync's Delta commit comes before PostgreSQL's checksums are known: a checksum query
that fails after it fails the run with the new version written. That version holds the
snapshot's rows, as a successful run's would; only the evidence is missing, and the run's
retry (a new full sync) or the sweep's checksum run supplies it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass, field

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from voyce_assets.catalog import Table
from voyce_assets.ddl import cdc_column
from voyce_assets.ingestion.checksum import RowChecksums, postgres_checksums
from voyce_assets.ingestion.erased import Erased, resolve, unnamed
from voyce_assets.ingestion.placement import (
    Duplicates,
    Outside,
    find_duplicates,
    finite,
    future_stamped,
    outside_rows,
    unrepresentable_by_day,
    unrepresentable_rows,
)
from voyce_assets.ingestion.source import (
    SourceShape,
    inspect_source,
    partition_filter,
    select_statement,
    set_session,
    stream_batches,
)
from voyce_assets.lake import (
    WriteStats,
    delta_batches,
    merge_rows,
    partition_files,
    replace_partitions,
)

DUPLICATE_PREVIEW = 20


@dataclass(frozen=True)
class Cursor:
    """A CDC high-water mark: the last (timestamp, primary key) already requested."""

    ts: str  # ISO-8601 with offset
    id: str

    def condition(self, table: Table) -> sql.Composed:
        # Row comparison: rows sharing the timestamp are ordered by id, so none is skipped.
        return sql.SQL("({}, {}) > ({}::timestamptz, {})").format(
            sql.Identifier(cdc_column(table)),
            sql.Identifier(table.primary_key[0]),
            sql.Literal(self.ts),
            sql.Literal(self.id),
        )


@dataclass
class SyncResult:
    table: Table
    mode: str
    dates: list[dt.date]
    shape: SourceShape
    stats: WriteStats
    source_seconds: float
    total_seconds: float
    source_counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    mirror_counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    duplicate_ids: list[str] = field(default_factory=list)
    duplicate_count: int = 0
    # Source rows a repeated key's rule left out (placement.find_duplicates).
    duplicate_rows_dropped: int = 0
    checksummed: bool = True
    # Source rows no partition holds (placement.outside_rows); None: not looked for.
    outside: Outside | None = None
    # Rows of the partitions (or changes) with an infinite timestamp, left out.
    unrepresentable: Outside = field(default_factory=Outside)
    # Rows whose CDC stamp lies over a day ahead (placement.future_stamped).
    future: Outside = field(default_factory=Outside)
    # What read the rows: "host" (one COPY stream) or "spark" (Spark JDBC, spark_sync.py).
    engine: str = "host"
    # Partitions an incremental sync found unequal (a hard delete) and replaced.
    repaired: list[str] = field(default_factory=list)
    # {partition: source rows left out as erased (erased.py)}: every such row of the
    # partitions a full sync or a repair read; of an incremental sync, the changes skipped,
    # or every such row of a day its counts were compared without them.
    withheld: dict[str, int] = field(default_factory=dict)

    @property
    def mismatched(self) -> dict[str, dict]:
        out = {}
        for day, source in self.source_counts.items():
            mirror = self.mirror_counts.get(day, (0, 0))
            if mirror != source:
                out[day] = {
                    "source_rows": source[0],
                    "mirror_rows": mirror[0],
                    "checksum_equal": source[1] == mirror[1] if self.checksummed else None,
                }
        return out


def _may_repeat(key_hashes: list[np.ndarray]) -> bool:
    """Whether any two of the hashed keys are equal (then the keys themselves are compared)."""
    hashes = np.sort(np.concatenate(key_hashes)) if key_hashes else np.empty(0, np.int64)
    return bool((hashes[1:] == hashes[:-1]).any())


def _duplicates(
    table: Table, uri: str, dates: list[dt.date], storage_options=None
) -> tuple[int, list[str]]:
    """(how many keys occur more than once, a few of them) in ``dates`` of the Delta table:
    its key column read back, sorted, neighbours compared."""
    key = table.primary_key[0]
    chunks = [
        b.column(0) for b in delta_batches(uri, table, dates, [key], storage_options) if b.num_rows
    ]
    if not chunks:
        return 0, []
    ids = pa.chunked_array(chunks, type=table.arrow_schema().field(key).type)
    ordered = ids.take(pc.sort_indices(ids)).combine_chunks()
    repeats = pc.equal(ordered[1:], ordered[:-1])
    dup = pc.unique(ordered[1:].filter(repeats))
    return len(dup), sorted(str(v) for v in dup.to_pylist())[:DUPLICATE_PREVIEW]


def source_counts(
    conn,
    table: Table,
    dates: list[dt.date] | None = None,
    pg_schema: str = "public",
    exclude: sql.Composable | None = None,
) -> dict[str, int]:
    """{partition: rows} of the app table, counted by PostgreSQL on the created_at index:
    the partitions in ``dates`` (zero included), or every date that has rows (a row with no
    created_at has no date: ``placement.outside_rows`` counts it). ``exclude`` narrows the
    rows counted; a condition on other columns than created_at costs a read of the rows."""
    where = (
        partition_filter(table, dates)
        if dates
        else sql.SQL("{} IS NOT NULL").format(sql.Identifier(table.partition_source))
    )
    if exclude is not None:
        where = sql.SQL("{} AND {}").format(where, exclude)
    statement = sql.SQL(
        "SELECT ({src} AT TIME ZONE 'UTC')::date, count(*) FROM {schema}.{table} WHERE {where} GROUP BY 1"
    ).format(
        src=sql.Identifier(table.partition_source),
        schema=sql.Identifier(pg_schema),
        table=sql.Identifier(table.name),
        where=where,
    )
    with conn.cursor() as cur:
        set_session(cur)
        counts = {d.isoformat(): 0 for d in dates or []}
        counts.update({d.isoformat(): int(n) for d, n in cur.execute(statement).fetchall()})
    return counts


def _source_evidence(conn, table, dates, shape, pg_schema, checksums: bool, exclude):
    """{partition: (rows, checksum)} by PostgreSQL; checksum 0 where only rows are counted."""
    if checksums:
        return postgres_checksums(conn, table, dates, shape, pg_schema, exclude)
    counts = source_counts(conn, table, dates, pg_schema, exclude)
    return {day: (n, 0) for day, n in counts.items()}


def sync_table(
    conn,
    table: Table,
    uri: str,
    dates: list[dt.date],
    since: Cursor | None = None,
    pg_schema: str = "public",
    storage_options: dict[str, str] | None = None,
    verify: bool = True,
    bounds: tuple[dt.date, dt.date] | None = None,
    tombstones: frozenset[str] = frozenset(),
    reader=None,
) -> SyncResult:
    """Sync ``dates`` of ``table`` from ``conn`` (psycopg, snapshot) into the Delta table ``uri``.

    ``since`` None: full sync (replace the partitions). Otherwise incremental: merge the rows
    changed after the cursor. ``verify``: compute what the checks compare (a full sync checks
    row checksums; an incremental one row counts, so its cost follows the change, not the
    partition). ``bounds``: the first and last partition, to count the rows outside them.
    ``tombstones``: the erasure log's id hashes; rows holding an erased id are left out of
    the mirror and of the evidence, and counted (``SyncResult.withheld``). ``reader``: what
    reads a full sync's rows instead of one COPY stream (``spark_sync.SparkJdbcReader``).
    """
    started = time.perf_counter()
    if reader is not None and since is not None:
        raise ValueError("only a full sync reads through another reader")
    result = _sync(
        conn,
        table,
        uri,
        dates,
        since,
        pg_schema,
        storage_options,
        verify,
        bounds,
        tombstones,
        reader,
    )
    full = since is None
    if not full and verify:
        # Rows deleted in the app leave no trace for the cursor: a partition the merge left
        # with more rows than the source's is replaced from the same snapshot, so the
        # 15-minute sync ends equal to the source instead of failing until the sweep. (Fewer
        # rows is rows held back for a NULL key or column: a replace cannot change that.)
        _discount_unrepresentable(conn, result, pg_schema)
        extra = [d for d, m in result.mismatched.items() if m["mirror_rows"] > m["source_rows"]]
        if extra:
            _repair(conn, result, uri, pg_schema, storage_options, bounds, extra, tombstones)
    conn.rollback()  # read-only snapshot: nothing to commit
    _unname_erased(result, tombstones)
    result.total_seconds = time.perf_counter() - started
    return result


def _unname_erased(result: SyncResult, tombstones: frozenset[str]) -> None:
    """The ids the checks name (a few rows each) less the erased ones: Dagster's event log
    cannot be edited per person, so an erased subject's id never goes there."""
    if not tombstones:
        return
    result.duplicate_ids = unnamed(result.duplicate_ids, tombstones)
    for name in ("outside", "unrepresentable", "future"):
        found = getattr(result, name)
        if found is not None and found.ids:
            setattr(result, name, dataclasses.replace(found, ids=unnamed(found.ids, tombstones)))


def _discount_unrepresentable(conn, result: SyncResult, pg_schema: str) -> None:
    """An incremental sync counts on the created_at index, rows with an infinite timestamp
    included; the mirror never holds those. Where the mirror is short, take them off the
    source's count (a read of those days' rows, only then)."""
    short = [d for d, m in result.mismatched.items() if m["mirror_rows"] < m["source_rows"]]
    if not short:
        return
    days = [dt.date.fromisoformat(d) for d in short]
    odd = unrepresentable_by_day(
        conn, result.table, partition_filter(result.table, days), pg_schema
    )
    for day, n in odd.items():
        rows, checksum = result.source_counts[day]
        result.source_counts[day] = (rows - n, checksum)
    if odd:
        probed = unrepresentable_rows(
            conn, result.table, partition_filter(result.table, days), pg_schema
        )
        if probed.rows > result.unrepresentable.rows:
            result.unrepresentable = probed


def _repair(
    conn, result: SyncResult, uri, pg_schema, storage_options, bounds, keys, tombstones
) -> None:
    """Replace the partitions ``keys`` an incremental ``result`` left mismatched (full sync,
    same snapshot); the result then carries the repair's evidence for them."""
    days = sorted(dt.date.fromisoformat(d) for d in keys)
    full = _sync(
        conn, result.table, uri, days, None, pg_schema, storage_options, True, bounds, tombstones
    )
    result.repaired = [d.isoformat() for d in days]
    result.withheld.update(full.withheld)
    result.stats.rows_written += full.stats.rows_written
    result.stats.quarantined += full.stats.quarantined
    for name, count in full.stats.quarantined_columns.items():
        result.stats.quarantined_columns[name] = (
            result.stats.quarantined_columns.get(name, 0) + count
        )
    result.stats.quarantine_preview += full.stats.quarantine_preview
    for key, rows in full.stats.rows_per_partition.items():
        result.stats.rows_per_partition[key] = rows
    for (key, org), rows in full.stats.rows_per_partition_organization.items():
        result.stats.rows_per_partition_organization[(key, org)] = rows
    # The repair probed its days whole, the merge only the changes: name the longer list.
    if full.unrepresentable.rows > result.unrepresentable.rows:
        result.unrepresentable = full.unrepresentable
    result.source_counts.update(full.source_counts)
    result.mirror_counts.update(full.mirror_counts)
    if full.duplicate_count:
        result.duplicate_count, result.duplicate_ids = full.duplicate_count, full.duplicate_ids


@dataclass(frozen=True)
class _Reads:
    """What a sync reads: the conditions its statements share, and its rows' statement."""

    duplicates: Duplicates
    mirrorable: sql.Composable
    probed: sql.Composable
    erased: Erased
    exclude: sql.Composable
    statement: sql.Composable


def _reads(conn, table, dates, since, pg_schema, tombstones, shape, ordered) -> _Reads:
    """``_sync``'s reads. ``ordered``: the rows' statement in event order (a full sync's on
    the host, streamed from the created_at index: every condition in it must leave that plan
    cheapest, test_the_full_sync_streams_in_index_order_without_a_sort)."""
    # Rows a repeated key's rule leaves out are left out of everything read below.
    duplicates = find_duplicates(conn, table, pg_schema)
    # ... and so are rows with a timestamp Arrow cannot hold (named, never guessed at).
    mirrorable = sql.SQL("{} AND {}").format(duplicates.exclusion(), finite(table))
    # The rows whose timestamps are looked at: the partitions, or only the changes.
    probed = partition_filter(table, dates)
    if since is not None:
        probed = sql.SQL("{} AND {}").format(probed, since.condition(table))
    # ... and so are the rows holding an erased subject's id (no tombstones: no query, TRUE).
    erased = resolve(conn, table, tombstones, probed, pg_schema)
    streamed = sql.SQL("{} AND {}").format(mirrorable, erased.kept()) if erased else mirrorable
    where = sql.SQL("{} AND {}").format(probed, streamed)
    # What the evidence counts: a full sync's checksums read every row anyway; an incremental
    # sync counts on the created_at index alone (an infinite timestamp elsewhere in a row
    # needs the heap), so such a row shows as a difference and its day is replaced (an
    # erased row's day is counted without it first, ``_discount_erased``).
    exclude = streamed if since is None else duplicates.exclusion()
    statement = select_statement(table, where, shape, pg_schema, order_by_event=ordered)
    return _Reads(duplicates, mirrorable, probed, erased, exclude, statement)


def _sync(
    conn,
    table,
    uri,
    dates,
    since,
    pg_schema,
    storage_options,
    verify,
    bounds,
    tombstones,
    reader=None,
) -> SyncResult:
    """``sync_table``'s work, in ``conn``'s open snapshot (the caller ends it)."""
    started = time.perf_counter()
    shape = inspect_source(conn, table, pg_schema)
    full = since is None
    # Spark orders each slice itself (a subquery's ORDER BY would not survive its slicing).
    ordered = full and reader is None
    reads = _reads(conn, table, dates, since, pg_schema, tombstones, shape, ordered)
    duplicates, mirrorable, probed = reads.duplicates, reads.mirrorable, reads.probed
    erased, exclude, statement = reads.erased, reads.exclude, reads.statement
    result = SyncResult(
        table=table,
        mode="full" if full else "incremental",
        dates=dates,
        shape=shape,
        stats=WriteStats(),
        source_seconds=0.0,
        total_seconds=0.0,
        checksummed=full,
        duplicate_ids=duplicates.ids,
        duplicate_count=duplicates.keys,
        duplicate_rows_dropped=duplicates.rows_dropped,
        outside=outside_rows(conn, table, *bounds, pg_schema) if bounds else None,
        unrepresentable=unrepresentable_rows(conn, table, probed, pg_schema),
        future=future_stamped(conn, table, pg_schema) if bounds else Outside(),
        withheld=erased.withheld(conn, sql.SQL("{} AND {}").format(probed, mirrorable), pg_schema),
        engine="host" if reader is None else "spark",
    )
    ours = RowChecksums(table, dates, keys=True) if full and verify else None
    pool = ThreadPoolExecutor(1)
    theirs: Future | None = None

    def evidence() -> None:
        # PostgreSQL's side of the evidence, on this connection while the rows stream on
        # theirs: started as soon as the stream's snapshot is exported, so both server
        # processes work from the first row on.
        nonlocal theirs
        if verify and theirs is None:
            theirs = pool.submit(
                _source_evidence, conn, table, dates, shape, pg_schema, full, exclude
            )

    rows = (
        stream_batches(conn, statement, started=evidence)
        if reader is None
        else reader.batches(conn, table, statement, dates, pg_schema)
    )
    try:
        with rows as batches:
            evidence()  # another reader: once it is open
            if full:
                # The commit comes before PostgreSQL's checksums are known (module docstring).
                result.stats = replace_partitions(uri, table, batches, dates, storage_options, ours)
            else:
                result.stats = merge_rows(uri, table, batches, dates, storage_options)
            result.source_seconds = time.perf_counter() - started
            if theirs is not None:
                result.source_counts = theirs.result()
    except BaseException as error:
        failure = _stopped(conn, theirs)
        pool.shutdown()
        if failure is None or failure is error:
            raise
        raise RuntimeError(
            f"{table.path}: PostgreSQL's checksum query failed: {_first_line(failure)} "
            f"(and with it the rows' stream: {type(error).__name__}: {_first_line(error)})"
        ) from failure
    finally:
        pool.shutdown()
    if verify:
        # Rows: the commit's (Delta log); content: ours of the rows handed to the writer.
        mine = ours.totals() if ours else {}
        result.mirror_counts = {
            day: (rows, mine.get(day, (0, 0))[1])
            for day, (rows, _) in partition_files(uri, table, dates, storage_options).items()
        }
    if ours is not None and _may_repeat(ours.key_hashes or []):
        # Not expected after the rule above; said as found if it happens all the same.
        count, ids = _duplicates(table, uri, dates, storage_options)
        if count:
            result.duplicate_count, result.duplicate_ids = count, ids
    if not full and verify and tombstones:
        _discount_erased(conn, result, tombstones, mirrorable, pg_schema)
    result.total_seconds = time.perf_counter() - started
    return result


def _stopped(conn, theirs: Future | None) -> BaseException | None:
    """PostgreSQL's checksum query (``theirs``) stopped after the stream or the write failed;
    returns its own error, if it failed by itself, else None.

    It runs on ``conn``, the transaction whose snapshot the stream imports: a checksum query
    that fails aborts that transaction, and the stream's import then fails with "could not
    import the requested snapshot", which says nothing of the cause. Still running, it is
    canceled (it would hold the failure up until it ends): that cancellation is not a cause.
    """
    if theirs is None:
        return None
    canceled = False
    while not theirs.done():
        canceled = True
        with suppress(Exception):  # a connection already closed: the query ends with it
            conn.cancel_safe(timeout=5)
        wait([theirs], timeout=0.5)  # a query between statements misses a cancel: again
    failure = theirs.exception()
    if canceled and isinstance(failure, psycopg.errors.QueryCanceled):
        return None
    return failure


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0]


def _discount_erased(conn, result: SyncResult, tombstones, mirrorable, pg_schema) -> None:
    """An incremental sync counts the source on the created_at index, erased rows included;
    the mirror never holds those. Where the mirror is short, take them off the source's
    count (the erased ids of those days resolved and counted, only then)."""
    short = [d for d, m in result.mismatched.items() if m["mirror_rows"] < m["source_rows"]]
    if not short:
        return
    days = partition_filter(result.table, [dt.date.fromisoformat(d) for d in short])
    erased = resolve(conn, result.table, tombstones, days, pg_schema)
    counted = erased.withheld(conn, sql.SQL("{} AND {}").format(days, mirrorable), pg_schema)
    for day, n in counted.items():
        rows, checksum = result.source_counts[day]
        result.source_counts[day] = (rows - n, checksum)
    result.withheld.update(counted)
