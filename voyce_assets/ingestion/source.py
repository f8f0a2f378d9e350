"""Reading app tables out of PostgreSQL as a stream of Arrow record batches.

``COPY (SELECT ...) TO STDOUT (FORMAT csv)`` is the fastest way out of PostgreSQL; Arrow's
multi-threaded CSV reader parses the stream block by block into the catalog spec's types (never
inferred ones), so memory stays flat however large the partition. ``event_date`` (the UTC date
of ``created_at``) is computed by PostgreSQL in the same statement.

The SELECT is also where schema drift is handled: the spec's columns are selected by name, so
a new source column is ignored (and reported); a nullable spec column the source lost is
selected as NULL (and reported); a changed type or a lost required column fails here, naming
the table and column.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql

from voyce_assets.catalog import Column, Table

# information_schema.columns.data_type for each spec type we mirror from the app DB.
PG_INFORMATION_SCHEMA_TYPES = {
    # USER-DEFINED: an app enum (status, role ...) arrives as its label, like text.
    "TEXT": {"text", "character varying", "character", "USER-DEFINED"},
    "UUID": {"uuid"},
    "JSONB": {"jsonb", "json"},
    "INTEGER": {"integer", "smallint"},
    "BIGINT": {"bigint", "integer", "smallint"},
    # Not real: its text would parse to a different double than float8(real) checksums.
    "DOUBLE PRECISION": {"double precision", "numeric"},
    "BOOLEAN": {"boolean"},
    "TIMESTAMPTZ": {"timestamp with time zone"},
    "DATE": {"date"},
}
CSV_BLOCK_BYTES = 8 << 20


def set_session(cur) -> None:
    """Pin what the text the server sends depends on, whatever the role's defaults are."""
    cur.execute(
        "SET LOCAL TIME ZONE 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; "
        "SET LOCAL extra_float_digits = 3; SET LOCAL client_encoding = 'UTF8'"
    )


class SchemaDriftError(Exception):
    """The source table changed in a way the mirror cannot absorb."""


@dataclass(frozen=True)
class SourceShape:
    """How the app table differs from the spec (empty lists: no drift)."""

    table: str
    extra_columns: list[str] = field(default_factory=list)  # in the source, not in the spec
    missing_nullable: list[str] = field(default_factory=list)  # spec columns the source lost
    # information_schema data_type of each source column the spec has (checksums follow it).
    source_types: dict[str, str] = field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        return bool(self.extra_columns or self.missing_nullable)


def inspect_source(conn, table: Table, pg_schema: str = "public") -> SourceShape:
    """Compare the app table's columns with the spec; raise on incompatible drift."""
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s",
        (pg_schema, table.name),
    ).fetchall()
    if not rows:
        raise SchemaDriftError(
            f"{table.path}: table {pg_schema}.{table.name} not found in the app DB"
        )
    source = dict(rows)
    extra = sorted(set(source) - set(table.column_names))
    missing = []
    for col in table.source_columns:
        if col.name not in source:
            if not col.nullable:
                raise SchemaDriftError(
                    f"{table.path}: required column {col.name} is missing in the app DB"
                )
            missing.append(col.name)
        elif source[col.name] not in PG_INFORMATION_SCHEMA_TYPES[col.type.postgres]:
            raise SchemaDriftError(
                f"{table.path}: column {col.name} changed type to {source[col.name]} "
                f"in the app DB (spec: {col.type.postgres})"
            )
    return SourceShape(
        table=table.path,
        extra_columns=extra,
        missing_nullable=missing,
        source_types={c: t for c, t in source.items() if c in table.column_names},
    )


def _select_expr(col: Column, missing: set[str]) -> sql.Composable:
    if col.name in missing:
        return sql.SQL("NULL::{} AS {}").format(
            sql.SQL(col.type.postgres), sql.Identifier(col.name)
        )
    return sql.Identifier(col.name)


def select_statement(
    table: Table,
    where: sql.Composable,
    shape: SourceShape | None = None,
    pg_schema: str = "public",
    order_by_event: bool = False,
) -> sql.Composed:
    """SELECT of the spec's columns (plus the computed partition column) with a filter."""
    missing = set(shape.missing_nullable) if shape else set()
    exprs = [_select_expr(c, missing) for c in table.source_columns]
    if table.partition_source:
        exprs.append(
            sql.SQL("({} AT TIME ZONE 'UTC')::date AS {}").format(
                sql.Identifier(table.partition_source), sql.Identifier(table.partition_column)
            )
        )
    statement = sql.SQL("SELECT {} FROM {}.{} WHERE {}").format(
        sql.SQL(", ").join(exprs), sql.Identifier(pg_schema), sql.Identifier(table.name), where
    )
    if order_by_event and table.partition_source:
        # Files written in event order keep later MERGEs of recent rows to few files.
        statement += sql.SQL(" ORDER BY {}").format(sql.Identifier(table.partition_source))
    return statement


def partition_filter(table: Table, dates: list[dt.date]) -> sql.Composed:
    """Rows whose event date is one of ``dates``, written so an index on the column applies."""
    column = sql.Identifier(table.partition_source or table.partition_column)
    ranges = []
    for start, end in _contiguous(dates):
        ranges.append(
            sql.SQL("({col} >= {lo} AND {col} < {hi})").format(
                col=column,
                lo=sql.Literal(f"{start.isoformat()} 00:00:00+00"),
                hi=sql.Literal(f"{(end + dt.timedelta(days=1)).isoformat()} 00:00:00+00"),
            )
        )
    return sql.SQL("(") + sql.SQL(" OR ").join(ranges) + sql.SQL(")")


def _contiguous(dates: list[dt.date]) -> Iterator[tuple[dt.date, dt.date]]:
    ordered = sorted(set(dates))
    start = prev = ordered[0]
    for day in ordered[1:]:
        if day != prev + dt.timedelta(days=1):
            yield start, prev
            start = day
        prev = day
    yield start, prev


class _CopyReader(io.RawIOBase):
    """A file object over ``cursor.copy()``: PostgreSQL sends one message per row."""

    def __init__(self, copy, first: bytes = b"") -> None:
        self._copy = copy
        self._pending = memoryview(first)
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        out = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(out):
            if not self._pending:
                chunk = self._copy.read()
                if not chunk:
                    break
                self._pending = memoryview(chunk)
            take = min(len(out) - filled, len(self._pending))
            out[filled : filled + take] = self._pending[:take]
            self._pending = self._pending[take:]
            filled += take
        self.bytes_read += filled
        return filled


def stream_batches(
    conn, statement: sql.Composable, table: Table, block_bytes: int = CSV_BLOCK_BYTES
) -> Iterator[pa.RecordBatch]:
    """Run ``statement`` through COPY and yield record batches typed by the spec.

    ``conn`` is a psycopg connection; the caller owns its transaction (a REPEATABLE READ
    snapshot makes reads of several tables consistent with each other).
    """
    # Every field nullable here: rows breaking the spec's NOT NULL are quarantined by the
    # caller (and reported by the checks), not rejected by the parser.
    schema = pa.schema([f.with_nullable(True) for f in table.arrow_schema()])
    copy_sql = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(statement)
    with conn.cursor() as cur:
        set_session(cur)
        with cur.copy(copy_sql) as copy:
            first = copy.read()
            if not first:
                return  # no rows: Arrow's CSV reader refuses an empty stream
            reader = pa_csv.open_csv(
                io.BufferedReader(_CopyReader(copy, first), buffer_size=1 << 20),
                read_options=pa_csv.ReadOptions(column_names=schema.names, block_size=block_bytes),
                parse_options=pa_csv.ParseOptions(newlines_in_values=True),
                convert_options=pa_csv.ConvertOptions(
                    column_types={f.name: f.type for f in schema},
                    # PostgreSQL writes NULL as an empty unquoted field and '' quoted; nothing
                    # else is NULL ('NA', 'null', NaN are values).
                    null_values=[""],
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                    true_values=["t"],
                    false_values=["f"],
                ),
            )
            yield from reader
