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
        bits = np.asarray(
            array.fill_null(0.0).to_numpy(zero_copy_only=False), dtype=np.float64
        ).view(np.uint64)
        text = pa.array([format(int(b), "016x") for b in bits], pa.string())
        return pc.if_else(pc.is_null(array), pa.scalar(None, pa.string()), text)
    if col.type is TIMESTAMP:
        return pc.cast(pc.cast(array, pa.int64()), pa.string())
    if col.type is BOOLEAN or col.type is DATE:
        return pc.cast(array, pa.string())
    return pc.cast(array, pa.string())


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


def arrow_checksums(
    table: Table,
    batches: Iterable[pa.RecordBatch],
    dates: list[dt.date],
    keys: list[pa.Array] | None = None,
) -> dict[str, tuple[int, int]]:
    """The same checksum over Arrow data (the Delta side), per partition date.

    ``keys``: a list the primary-key column of every batch is appended to (for the
    duplicate-key check), so the rows are read once.
    """
    totals = {d.isoformat(): [0, 0] for d in dates}
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if keys is not None:
            keys.append(batch.column(table.primary_key[0]))
        texts = [pc.fill_null(_arrow_text(c, batch.column(c.name)), NULL) for c in table.columns]
        hashes = _row_hashes(pc.binary_join_element_wise(*texts, SEPARATOR))
        days = batch.column(table.partition_column)
        for day in pc.unique(days).to_pylist():
            mine = hashes[pc.equal(days, pa.scalar(day, days.type)).to_numpy(zero_copy_only=False)]
            entry = totals.setdefault(day.isoformat(), [0, 0])
            entry[0] += len(mine)
            # Sums exceed 64 bits: add the 30-bit halves separately, exactly.
            entry[1] += (int((mine >> np.uint64(30)).sum()) << 30) + int(
                (mine & np.uint64((1 << 30) - 1)).sum()
            )
    return {k: (v[0], v[1]) for k, v in totals.items()}
