"""One sync of one app table for a set of partitions, with the evidence the checks need.

Full sync: the partitions are replaced with the source's rows (deletes disappear too).
Incremental sync: rows changed after a CDC cursor are merged by primary key into their
partitions. Data, counts and checksums are read in one REPEATABLE READ snapshot, so the
reconciliation compares the mirror with exactly the source state that was copied.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from voyce_assets.catalog import Table
from voyce_assets.ddl import cdc_column
from voyce_assets.ingestion.checksum import arrow_checksums, postgres_checksums
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
    checksummed: bool = True

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


def _duplicates(table: Table, keys: list[pa.Array]) -> tuple[int, list[str]]:
    """(how many keys occur more than once, a few of them) among ``keys``' chunks."""
    key = table.primary_key[0]
    field = table.arrow_schema().field(key)
    ids = pa.table({key: pa.chunked_array(keys, type=field.type)})
    counts = ids.group_by(key).aggregate([([], "count_all")])
    dup = counts.filter(pc.greater(counts["count_all"], 1))
    return dup.num_rows, sorted(str(v) for v in dup[key].to_pylist())[:DUPLICATE_PREVIEW]


def source_counts(
    conn, table: Table, dates: list[dt.date] | None = None, pg_schema: str = "public"
) -> dict[str, int]:
    """{partition: rows} of the app table, counted by PostgreSQL on the created_at index:
    the partitions in ``dates`` (zero included), or every partition that has rows."""
    where = partition_filter(table, dates) if dates else sql.SQL("TRUE")
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


def sync_table(
    conn,
    table: Table,
    uri: str,
    dates: list[dt.date],
    since: Cursor | None = None,
    pg_schema: str = "public",
    storage_options: dict[str, str] | None = None,
    verify: bool = True,
) -> SyncResult:
    """Sync ``dates`` of ``table`` from ``conn`` (psycopg, snapshot) into the Delta table ``uri``.

    ``since`` None: full sync (replace the partitions). Otherwise incremental: merge the rows
    changed after the cursor. ``verify``: compute what the checks compare (a full sync checks
    row checksums; an incremental one row counts, so its cost follows the change, not the
    partition).
    """
    started = time.perf_counter()
    shape = inspect_source(conn, table, pg_schema)
    where = partition_filter(table, dates)
    if since is not None:
        where = sql.SQL("{} AND {}").format(where, since.condition(table))
    statement = select_statement(table, where, shape, pg_schema, order_by_event=since is None)
    batches = stream_batches(conn, statement, table)
    if since is None:
        stats = replace_partitions(uri, table, batches, dates, storage_options)
    else:
        stats = merge_rows(uri, table, batches, dates, storage_options)
    source_seconds = time.perf_counter() - started
    result = SyncResult(
        table=table,
        mode="incremental" if since else "full",
        dates=dates,
        shape=shape,
        stats=stats,
        source_seconds=source_seconds,
        total_seconds=0.0,
        checksummed=since is None,
    )
    if verify:
        if since is None:
            result.source_counts = postgres_checksums(conn, table, dates, shape, pg_schema)
            keys: list[pa.Array] = []
            result.mirror_counts = arrow_checksums(
                table,
                delta_batches(uri, table, dates, storage_options=storage_options),
                dates,
                keys,
            )
            result.duplicate_count, result.duplicate_ids = _duplicates(table, keys)
        else:
            result.source_counts = {
                day: (n, 0) for day, n in source_counts(conn, table, dates, pg_schema).items()
            }
            files = partition_files(uri, table, dates, storage_options)
            result.mirror_counts = {day: (rows, 0) for day, (rows, _) in files.items()}
    conn.rollback()  # read-only snapshot: nothing to commit
    result.total_seconds = time.perf_counter() - started
    return result
