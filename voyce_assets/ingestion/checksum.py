"""Order-independent row checksums, computed the same way in PostgreSQL and over Arrow.

Each row becomes a canonical text (integers and text as is, doubles as their IEEE-754 bits,
timestamps as epoch microseconds, NULL as ``\\N``, fields joined by U+001F); the checksum of a
set of rows is the sum of the first 60 bits of each row's MD5. PostgreSQL computes it in SQL,
independently of our reader, so equal checksums prove the mirror holds the source's rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from voyce_assets.catalog import BOOLEAN, DATE, DOUBLE, TIMESTAMP, Column, Table
from voyce_assets.ingestion.source import SourceShape, partition_filter, set_session

SEPARATOR = "\x1f"
NULL = "\\N"


def _pg_expr(col: Column, name: sql.Composable, source_type: str | None) -> sql.Composable:
    """The column as the canonical text, from the value COPY sends (what the mirror holds)."""
    if col.type is DOUBLE:
        # numeric too: COPY's text parses to the same double as numeric::float8.
        return sql.SQL("encode(float8send({}::float8), 'hex')").format(name)
    if col.type is TIMESTAMP:
        return sql.SQL("(extract(epoch FROM {}) * 1000000)::bigint::text").format(name)
    if source_type == "character":
        # character(n)::text drops the padding COPY keeps; format() uses the type's own
        # output, padding included (and gives '' for NULL, hence the CASE).
        return sql.SQL("CASE WHEN {0} IS NULL THEN NULL ELSE format('%s', {0}) END").format(name)
    return sql.SQL("{}::text").format(name)


def postgres_checksums(
    conn,
    table: Table,
    dates: list[dt.date],
    shape: SourceShape | None = None,
    pg_schema: str = "public",
) -> dict[str, tuple[int, int]]:
    """{partition date: (row count, checksum)} of the source rows, computed by PostgreSQL."""
    missing = set(shape.missing_nullable) if shape else set()
    types = shape.source_types if shape else {}
    parts = []
    for col in table.columns:
        if col.name == table.partition_column and table.partition_source:
            expr = sql.SQL("(({} AT TIME ZONE 'UTC')::date)::text").format(
                sql.Identifier(table.partition_source)
            )
        elif col.name in missing:
            expr = sql.Literal(NULL)
        else:
            expr = sql.SQL("coalesce({}, {})").format(
                _pg_expr(col, sql.Identifier(col.name), types.get(col.name)), sql.Literal(NULL)
            )
        parts.append(expr)
    row_text = sql.SQL("concat_ws({}, {})").format(
        sql.Literal(SEPARATOR), sql.SQL(", ").join(parts)
    )
    if table.partition_source is None:
        raise ValueError(f"{table.path}: checksums cover app tables (partitioned by a timestamp)")
    source = sql.Identifier(table.partition_source)
    statement = sql.SQL(
        "SELECT ({src} AT TIME ZONE 'UTC')::date AS d, count(*), "
        "coalesce(sum(('x' || left(md5({row}), 15))::bit(60)::bigint), 0) "
        "FROM {schema}.{table} WHERE {where} GROUP BY 1"
    ).format(
        src=source,
        row=row_text,
        schema=sql.Identifier(pg_schema),
        table=sql.Identifier(table.name),
        where=partition_filter(table, dates),
    )
    with conn.cursor() as cur:
        set_session(cur)
        rows = cur.execute(statement).fetchall()
    out = {d.isoformat(): (0, 0) for d in dates}
    out.update({d.isoformat(): (int(n), int(s)) for d, n, s in rows})
    return out


def _arrow_text(col: Column, array: pa.Array) -> pa.Array:
    if col.type is DOUBLE:
        values = np.asarray(array.fill_null(0.0).to_numpy(zero_copy_only=False), np.float64)
        text = _hex16(values.astype(">f8").view(np.uint8).reshape(-1, 8))
        return pc.if_else(pc.is_null(array), pa.scalar(None, pa.string()), text)
    if col.type is TIMESTAMP:
        return pc.cast(pc.cast(array, pa.int64()), pa.string())
    if col.type is BOOLEAN or col.type is DATE:
        return pc.cast(array, pa.string())
    return pc.cast(array, pa.string())


_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


def _hex16(big_endian: np.ndarray) -> pa.Array:
    """Lower-case hex of each row of an (n, 8) byte matrix, as 16-character strings: what
    PostgreSQL's ``encode(float8send(x), 'hex')`` gives, without a Python string per value."""
    n = len(big_endian)
    chars = np.empty((n, 16), np.uint8)
    chars[:, 0::2] = _HEX[big_endian >> 4]
    chars[:, 1::2] = _HEX[big_endian & 15]
    offsets = np.arange(0, 16 * (n + 1), 16, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars)])


def _row_hashes(rows: pa.Array) -> np.ndarray:
    """The first 60 bits of each row text's MD5, as unsigned 64-bit integers.

    Hashes the bytes in place (slices of the array's data buffer): no Python string per row.
    """
    rows = rows.cast(pa.large_binary())
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64)[
        rows.offset : rows.offset + len(rows) + 1
    ]
    data = memoryview(rows.buffers()[2] or b"")
    md5, take = hashlib.md5, int.from_bytes
    out = np.fromiter(
        (
            take(md5(data[start:end]).digest()[:8], "big") >> 4
            for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)
        ),
        dtype=np.uint64,
        count=len(rows),
    )
    return out


class RowChecksums:
    """The same checksum over Arrow batches (the Delta side), per partition date, fed one batch
    at a time: by a full sync as its rows go to the Delta writer, or by the sweep's scrub as it
    reads a partition back.

    ``keys``: also keep a 64-bit hash of every primary key (Python's ``hash``, fixed for the
    process), 8 bytes a row, so a duplicate-key check needs no second read when there is none.
    """

    def __init__(self, table: Table, dates: list[dt.date], keys: bool = False) -> None:
        self.table = table
        self.key_hashes: list[np.ndarray] | None = [] if keys else None
        self._totals = {d.isoformat(): [0, 0] for d in dates}

    def __call__(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        table = self.table
        if self.key_hashes is not None:
            ids = batch.column(table.primary_key[0]).to_pylist()
            self.key_hashes.append(np.fromiter(map(hash, ids), dtype=np.int64, count=len(ids)))
        texts = [pc.fill_null(_arrow_text(c, batch.column(c.name)), NULL) for c in table.columns]
        hashes = _row_hashes(pc.binary_join_element_wise(*texts, SEPARATOR))
        days = batch.column(table.partition_column)
        unique = pc.unique(days)
        for day in unique.to_pylist():
            mine = (
                hashes
                if len(unique) == 1
                else hashes[
                    pc.equal(days, pa.scalar(day, days.type)).to_numpy(zero_copy_only=False)
                ]
            )
            entry = self._totals.setdefault(day.isoformat(), [0, 0])
            entry[0] += len(mine)
            # Sums exceed 64 bits: add the 30-bit halves separately, exactly.
            entry[1] += (int((mine >> np.uint64(30)).sum()) << 30) + int(
                (mine & np.uint64((1 << 30) - 1)).sum()
            )

    def totals(self) -> dict[str, tuple[int, int]]:
        """{partition date: (rows, checksum)} of what was fed."""
        return {k: (v[0], v[1]) for k, v in self._totals.items()}


def arrow_checksums(
    table: Table, batches: Iterable[pa.RecordBatch], dates: list[dt.date]
) -> dict[str, tuple[int, int]]:
    """``RowChecksums`` of ``batches``."""
    checksums = RowChecksums(table, dates)
    for batch in batches:
        checksums(batch)
    return checksums.totals()
