"""The reconciliation sweep: every partition of every app table, source against mirror.

What the CDC cursor and the daily full sync of recent days cannot see (a hard delete, a late
commit or a missed update in an older partition, a failed run) shows here. Every day:

- **counts** of all partitions: PostgreSQL groups the table by the UTC date of ``created_at``
  (an index-only scan of its index), Delta's come from the log's file statistics (no data
  file is read);
- **content checksums** of a rolling slice, like a storage system's deep scrub: the
  partitions whose date ordinal modulo ``checksum_every_days`` is today's, so every
  partition is checksummed once every ``checksum_every_days`` days, whatever the day count.

The counts are cheap and run in the sweep's sensor tick (``count_table``); the checksums read
the partitions on both sides and run in a job the sensor requests (``checksum_partitions``,
a batch of partitions at a time, in flat memory, so the job records its progress as it goes:
``reconciliation.py``). A partition whose count or checksum differs is a finding; the sensor
requests its full sync. So are rows no partition can hold (``placement.outside_rows``):
named, never synced.

Rows holding an erased subject's id (``erased.py``) are out of the mirror for good, so the
source side is compared without them: the checksummed slice leaves them out, and a partition
whose source count exceeds the mirror's has them taken off its count (resolved for those
days only) before it counts as a finding; the checksum run resolves them for the days it
reads. An erased subject the app still holds is then no perpetual mismatch and never a full
sync's reason; a mirror still holding one shows in its partition's checksum within
``checksum_every_days``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from voyce_assets.catalog import Table
from voyce_assets.ingestion.checksum import arrow_checksums, postgres_checksums
from voyce_assets.ingestion.erased import resolve, unnamed
from voyce_assets.ingestion.placement import (
    DuplicateKeysError,
    Outside,
    find_duplicates,
    finite,
    outside_rows,
)
from voyce_assets.ingestion.source import inspect_source, partition_filter
from voyce_assets.ingestion.sync import source_counts
from voyce_assets.lake import open_dataset, partition_files
from voyce_assets.resources.lakehouse import Lakehouse

# Mirror rows checksummed together (one statement, one scan) before progress is recorded.
CHECKSUM_BATCH_ROWS = 2_000_000


@dataclass
class SweepResult:
    table: Table
    day: dt.date
    compared: int = 0  # partitions with rows in the source or the mirror
    checksummed: list[str] = field(default_factory=list)
    # {partition: {"source_rows", "mirror_rows", "checksum_equal"}}
    mismatched: dict[str, dict] = field(default_factory=dict)
    outside: Outside = field(default_factory=Outside)
    # The day's checksum slice less the partitions the counts found: the checksum run's work.
    scrub: list[str] = field(default_factory=list)
    # Why the table could not be compared (a source that repeats too many keys).
    error: str | None = None
    # Source rows left out of the comparison as erased (the days that were resolved).
    withheld: int = 0
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.mismatched and not self.outside.rows and not self.error


class OutOfTime(Exception):
    """The counts' deadline passed before they were done."""


def _bound(conn, deadline: float | None) -> None:
    """Before each step of the counts: no statement runs past ``deadline`` (a
    ``time.monotonic()`` value; None: unbounded). Raises ``OutOfTime`` once it has passed."""
    if deadline is None:
        return
    left = deadline - time.monotonic()
    if left <= 0.01:
        raise OutOfTime
    conn.execute("SELECT set_config('statement_timeout', %s, true)", [str(int(left * 1000))])


def _before(deadline: float | None, read):
    """``read()``, given up at ``deadline`` (``OutOfTime``): a log replay cannot be
    cancelled, so it reads on a thread of its own that is left to finish."""
    if deadline is None:
        return read()
    out: dict = {}

    def work() -> None:
        try:
            out["value"] = read()
        except BaseException as exc:  # handed to the caller
            out["error"] = exc

    worker = threading.Thread(target=work, name="sweep-mirror-counts", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive():
        raise OutOfTime
    if "error" in out:
        raise out["error"]
    return out["value"]


def mirror_counts(lakehouse: Lakehouse, table: Table) -> dict[str, int]:
    """{partition: rows} of the whole Delta mirror, from the log alone."""
    if not lakehouse.exists(table):
        return {}
    files = partition_files(lakehouse.table_uri(table), table, None, lakehouse.storage_options)
    return {key: rows for key, (rows, _) in files.items() if rows}


def scrub_slice(partitions: list[str], day: dt.date, every_days: int) -> list[str]:
    """The partitions whose content is checksummed on ``day``."""
    turn = day.toordinal() % every_days
    return [p for p in partitions if dt.date.fromisoformat(p).toordinal() % every_days == turn]


def count_table(
    conn,
    table: Table,
    lakehouse: Lakehouse,
    day: dt.date,
    checksum_every_days: int,
    pg_schema: str = "public",
    before: dt.date | None = None,
    bounds: tuple[dt.date, dt.date] | None = None,
    tombstones: frozenset[str] = frozenset(),
    deadline: float | None = None,
) -> SweepResult:
    """Compare the counts of every partition of ``table`` (those before ``before`` if given);
    name the rows outside ``bounds`` (first and last partition); leave ``day``'s checksum
    slice, less the partitions the counts already found, in ``result.scrub``. No data is
    read: the sensor's part of the sweep. ``conn`` is a read-only snapshot.
    ``tombstones``: the erasure log's id hashes; the source is counted without the rows
    holding an erased id. ``deadline`` (``time.monotonic()``): every statement's timeout is
    what is left of it, set before each, and the Delta log is read within it; past it,
    ``OutOfTime`` (a statement cut short: ``QueryCanceled``)."""
    started = time.perf_counter()
    result = SweepResult(table=table, day=day)
    # The rows a repeated key's rule leaves out are out of the mirror: out of the counts too.
    try:
        _bound(conn, deadline)
        exclude = find_duplicates(conn, table, pg_schema).exclusion()
    except DuplicateKeysError as exc:
        # A source this broken is a finding of its own table; the other tables are swept.
        result.error = str(exc)
        result.seconds = time.perf_counter() - started
        return result
    _bound(conn, deadline)
    source = source_counts(conn, table, pg_schema=pg_schema, exclude=exclude)
    if bounds is not None:
        _bound(conn, deadline)
        outside = outside_rows(conn, table, *bounds, pg_schema)
        result.outside = Outside(outside.rows, unnamed(outside.ids, tombstones))
        first, last = (d.isoformat() for d in bounds)
        source = {k: v for k, v in source.items() if first <= k <= last}
    mirror = _before(deadline, lambda: mirror_counts(lakehouse, table))
    if before is not None:
        cutoff = before.isoformat()
        source = {k: v for k, v in source.items() if k < cutoff}
        mirror = {k: v for k, v in mirror.items() if k < cutoff}
    partitions = sorted(set(source) | set(mirror))
    result.compared = len(partitions)
    # The erased rows of the days that are short: off their counts (no tombstones: no query).
    short = sorted(k for k in partitions if source.get(k, 0) > mirror.get(k, 0))
    if tombstones and short:
        days = partition_filter(table, [dt.date.fromisoformat(k) for k in short])
        _bound(conn, deadline)
        erased = resolve(conn, table, tombstones, days, pg_schema)
        kept = sql.SQL("{} AND {}").format(exclude, finite(table))
        _bound(conn, deadline)
        counted = erased.withheld(conn, sql.SQL("{} AND {}").format(days, kept), pg_schema)
        for key, n in counted.items():
            if key in source:
                source[key] -= n
                result.withheld += n
    for key in partitions:
        if source.get(key, 0) != mirror.get(key, 0):
            result.mismatched[key] = {
                "source_rows": source.get(key, 0),
                "mirror_rows": mirror.get(key, 0),
                "checksum_equal": None,
            }
    result.scrub = [
        p for p in scrub_slice(partitions, day, checksum_every_days) if p not in result.mismatched
    ]
    result.seconds = time.perf_counter() - started
    return result


def checksum_batches(partitions: list[str], rows: dict[str, int]) -> list[list[str]]:
    """``partitions`` in order, grouped so that each group holds at most
    ``CHECKSUM_BATCH_ROWS`` mirror rows (a bigger partition is a group of its own) and at
    most 31 partitions: one PostgreSQL statement and one Delta scan each, progress recorded
    after each."""
    out: list[list[str]] = []
    held = 0
    for key in sorted(partitions):
        n = rows.get(key, 0)
        if out and held + n <= CHECKSUM_BATCH_ROWS and len(out[-1]) < 31:
            out[-1].append(key)
            held += n
        else:
            out.append([key])
            held = n
    return out


def _lean_allocator() -> None:
    """Large buffers get their own mapping, unmapped when freed (glibc ``M_MMAP_THRESHOLD``
    fixed at its 128 kB default instead of growing after the first big free). A scan frees
    a row group's buffers after each batch; with the threshold grown, their pages stayed in
    the heap and peak RSS grew with every file of a big day."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # not glibc: its own policy
        ctypes.CDLL("libc.so.6").mallopt(-3, 128 << 10)  # M_MMAP_THRESHOLD


def _mirror_batches(
    lakehouse: Lakehouse, table: Table, dates: list[dt.date]
) -> Iterator[pa.RecordBatch]:
    """The mirror's rows of ``dates``, one file at a time, read on demand: hashing is slower
    than reading, and a scan that reads ahead on threads queues batches while the hashes
    catch up (200 MB of them for a 1M-row day, against 66 MB this way). The scan's buffers
    come from the system allocator (``_lean_allocator``), which gives them back."""
    import pyarrow.dataset as pds

    _lean_allocator()
    dataset = open_dataset(lakehouse.table_uri(table), table, lakehouse.storage_options)
    days = pc.field(table.partition_column).isin(pa.array(sorted(dates), pa.date32()))
    # Read on demand: no column chunks buffered ahead.
    options = pds.ParquetFragmentScanOptions(pre_buffer=False)
    for fragment in dataset.get_fragments(filter=days):
        yield from fragment.to_batches(
            schema=dataset.schema,
            batch_size=65_536,
            batch_readahead=0,
            fragment_readahead=0,
            use_threads=False,
            fragment_scan_options=options,
            memory_pool=pa.system_memory_pool(),
        )


def checksum_partitions(
    conn,
    table: Table,
    lakehouse: Lakehouse,
    partitions: list[str],
    pg_schema: str = "public",
    tombstones: frozenset[str] = frozenset(),
) -> Iterator[dict[str, dict]]:
    """The content checksums of ``partitions``, source against mirror, a batch of partitions
    at a time (``checksum_batches``): yields {partition: {"source_rows", "mirror_rows",
    "checksum_equal"}} after each batch, so the caller records progress as it goes.

    Memory stays flat whatever a partition's size: PostgreSQL sums its rows' hashes
    server-side (one row per day comes back), and the mirror's rows stream through
    ``RowChecksums`` in batches of 64k rows. Raises ``DuplicateKeysError`` for a source
    that repeats too many keys (the counts name it)."""
    if not partitions:
        return
    exclude = find_duplicates(conn, table, pg_schema).exclusion()
    # Rows a sync leaves out for an infinite timestamp are out of the content compared.
    kept = sql.SQL("{} AND {}").format(exclude, finite(table))
    shape = inspect_source(conn, table, pg_schema)
    mirror = mirror_counts(lakehouse, table)
    for batch in checksum_batches(partitions, mirror):
        dates = [dt.date.fromisoformat(p) for p in batch]
        where = kept
        if tombstones:
            # The erased ids of these days only: out of the checksummed source rows.
            erased = resolve(conn, table, tombstones, partition_filter(table, dates), pg_schema)
            if erased:
                where = sql.SQL("{} AND {}").format(kept, erased.kept())
        theirs = postgres_checksums(conn, table, dates, shape, pg_schema, where)
        ours = (
            arrow_checksums(table, _mirror_batches(lakehouse, table, dates), dates)
            if mirror
            else {}
        )
        found = {}
        for key in batch:
            source, target = theirs.get(key, (0, 0)), ours.get(key, (0, 0))
            found[key] = {
                "source_rows": source[0],
                "mirror_rows": target[0],
                "checksum_equal": source == target,
            }
        yield found


def evaluation_metadata(result: SweepResult, requested: list[str], repaired: list[str]) -> dict:
    """What the UI shows for one table's sweep (an observation on the mirror asset)."""
    from dagster import MetadataValue

    return {
        "passed": result.passed,
        "partitions_compared": result.compared,
        "partitions_checksummed": len(result.checksummed),
        "partitions_mismatched": len(result.mismatched),
        "mismatched": MetadataValue.json(result.mismatched),
        "rows_outside_partitions": MetadataValue.json(
            {"rows": result.outside.rows, "ids": result.outside.ids}
        ),
        "error": result.error or "",
        # Source rows holding an erased id, compared as absent (a count, never the ids).
        "erased_rows_withheld": result.withheld,
        "full_syncs_requested": MetadataValue.json(requested),
        "repaired_since_last_sweep": MetadataValue.json(repaired),
        "seconds": round(result.seconds, 3),
    }
