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


def row_hash_sql(table: Table, shape: SourceShape | None = None) -> sql.Composable:
    """PostgreSQL's hash of one source row: the first 60 bits of the MD5 of its canonical text,
    as a bigint."""
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
    return sql.SQL("('x' || left(md5({}), 15))::bit(60)::bigint").format(row_text)


def postgres_checksums(
    conn,
    table: Table,
    dates: list[dt.date],
    shape: SourceShape | None = None,
    pg_schema: str = "public",
    exclude: sql.Composable | None = None,
) -> dict[str, tuple[int, int]]:
    """{partition date: (row count, checksum)} of the source rows, computed by PostgreSQL;
    ``exclude``: a condition the rows must also meet (the duplicate-key rule's)."""
    if table.partition_source is None:
        raise ValueError(f"{table.path}: checksums cover app tables (partitioned by a timestamp)")
    statement = sql.SQL(
        "SELECT ({src} AT TIME ZONE 'UTC')::date AS d, count(*), coalesce(sum({row}), 0) "
        "FROM {schema}.{table} WHERE {where} GROUP BY 1"
    ).format(
        src=sql.Identifier(table.partition_source),
        row=row_hash_sql(table, shape),
        schema=sql.Identifier(pg_schema),
        table=sql.Identifier(table.name),
        where=partition_filter(table, dates) + sql.SQL(" AND ") + (exclude or sql.SQL("TRUE")),
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


def _md5():
    # CPython's own MD5 costs less per call than OpenSSL's for row-sized inputs (1.2 vs 1.5 s
    # a million rows here); both give the same digest.
    try:
        from _md5 import md5
    except ImportError:  # a build without it
        return hashlib.md5
    return md5


def _offsets_and_data(array: pa.Array) -> tuple[np.ndarray, memoryview]:
    """The value offsets (int64) and data buffer of a string or binary array, no copy."""
    wide = pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64 if wide else np.int32)[
        array.offset : array.offset + len(array) + 1
    ]
    return offsets, memoryview(array.buffers()[2] or b"")


def _row_hashes(rows: pa.Array) -> np.ndarray:
    """The first 60 bits of each row text's MD5, as unsigned 64-bit integers.

    Hashes the bytes in place (slices of the array's data buffer): no Python string per row.
    """
    offsets, data = _offsets_and_data(rows)
    md5 = _md5()
    digests = b"".join(
        [
            md5(data[start:end]).digest()
            for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)
        ]
    )
    # The first 8 bytes of each 16-byte digest, big-endian, less their last 4 bits.
    return np.frombuffer(digests, dtype=">u8")[::2].astype(np.uint64) >> np.uint64(4)


FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)


def key_hashes(keys: pa.Array) -> np.ndarray:
    """A 64-bit hash of each key, for spotting repeats (a repeat is then confirmed on the keys).

    Integers are their own hash. Text keys are hashed with FNV-1a across all rows at once, a
    byte position at a time, so a key hashes the same in whichever batch it arrives.
    """
    if pa.types.is_integer(keys.type):
        return keys.to_numpy(zero_copy_only=False).astype(np.int64)
    keys = keys.cast(pa.string()) if not pa.types.is_large_string(keys.type) else keys
    offsets, data = _offsets_and_data(keys)
    buffer = np.frombuffer(data, np.uint8)
    starts, widths = offsets[:-1].astype(np.int64), np.diff(offsets)
    digest = np.full(len(keys), FNV_OFFSET, dtype=np.uint64)
    if len(keys) and (widths == widths[0]).all():
        # One width (UUID text): the keys are a byte matrix; its columns need no gather.
        width = int(widths[0])
        matrix = buffer[int(offsets[0]) : int(offsets[0]) + len(keys) * width]
        for column in matrix.reshape(len(keys), width).T:
            digest = (digest ^ column) * FNV_PRIME
        return digest.view(np.int64)
    for j in range(int(widths.max()) if len(keys) else 0):
        live = widths > j
        if live.all():
            digest = (digest ^ buffer[starts + j]) * FNV_PRIME
        else:
            digest[live] = (digest[live] ^ buffer[starts[live] + j]) * FNV_PRIME
    return digest.view(np.int64)


class RowChecksums:
    """The same checksum over Arrow batches (the Delta side), per partition date, fed one batch
    at a time: by a full sync as its rows go to the Delta writer, or by the sweep's scrub as it
    reads a partition back.

    ``keys``: also keep a 64-bit hash of every primary key (``key_hashes``), 8 bytes a row, so
    a duplicate-key check needs no second read when there is none.
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
            self.key_hashes.append(key_hashes(batch.column(table.primary_key[0])))
        texts = [pc.fill_null(_arrow_text(c, batch.column(c.name)), NULL) for c in table.columns]
        hashes = _row_hashes(pc.binary_join_element_wise(*texts, SEPARATOR))
        days = batch.column(table.partition_column)
        unique = pc.unique(days)
        for day in unique.to_pylist():
            mask = (
                None
                if len(unique) == 1
                else pc.equal(days, pa.scalar(day, days.type)).to_numpy(zero_copy_only=False)
            )
            _add(self._totals, day.isoformat(), hashes if mask is None else hashes[mask])

    def totals(self) -> dict[str, tuple[int, int]]:
        """{partition date: (rows, checksum)} of what was fed."""
        return {k: (v[0], v[1]) for k, v in self._totals.items()}


def _add(totals: dict, day: str, hashes: np.ndarray) -> None:
    entry = totals.setdefault(day, [0, 0])
    entry[0] += len(hashes)
    # Sums exceed 64 bits: add the 30-bit halves separately, exactly.
    entry[1] += (int((hashes >> np.uint64(30)).sum()) << 30) + int(
        (hashes & np.uint64((1 << 30) - 1)).sum()
    )


def arrow_checksums(
    table: Table, batches: Iterable[pa.RecordBatch], dates: list[dt.date]
) -> dict[str, tuple[int, int]]:
    """``RowChecksums`` of ``batches``."""
    checksums = RowChecksums(table, dates)
    for batch in batches:
        checksums(batch)
    return checksums.totals()
