"""Reading app tables out of PostgreSQL as a stream of Arrow record batches.

The rows come through ADBC's PostgreSQL driver: ``COPY (SELECT ...) TO STDOUT (FORMAT
binary)`` decoded straight into Arrow arrays in C++, no text parsed, nothing per row in
Python, so memory stays flat however large the partition. Its connection imports the
caller's snapshot (``pg_export_snapshot``), so counts and checksums computed on the caller's
psycopg connection see exactly the rows that were streamed. Each column is selected as the
value a client of the app reads (``character(n)`` padded, enums and JSON as their text,
``numeric`` as the double its text parses to) in the spec's type; ``event_date`` (the UTC
date of ``created_at``) is computed by PostgreSQL in the same statement.

The SELECT is also where schema drift is handled: the spec's columns are selected by name, so
a new source column is ignored (and reported); a nullable spec column the source lost is
selected as NULL (and reported); a changed type or a lost required column fails here, naming
the table and column.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import pyarrow as pa
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
# What ADBC decodes before handing a batch over: small batches keep the stream's memory flat.
BATCH_BYTES = 4 << 20


# What the text the server makes of values depends on, pinned whatever the role's defaults are.
SESSION = (
    "SET LOCAL TIME ZONE 'UTC'",
    "SET LOCAL DateStyle = 'ISO, YMD'",
    "SET LOCAL extra_float_digits = 3",
    "SET LOCAL client_encoding = 'UTF8'",
)


def set_session(cur) -> None:
    """Pin the session settings (``SESSION``) for this transaction."""
    cur.execute("; ".join(SESSION))


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


def _select_expr(col: Column, missing: set[str], source_type: str | None) -> sql.Composable:
    """The column as a client of the app reads it, in the type the stream carries."""
    name = sql.Identifier(col.name)
    # UUID and JSON travel as their text (what the mirror holds); the rest as the spec's type.
    wire = "TEXT" if col.type.postgres in ("UUID", "JSONB") else col.type.postgres
    if col.name in missing:
        value = sql.SQL("NULL::{}").format(sql.SQL(wire))
    elif source_type == "character":
        # character(n)::text drops the padding the app's clients see; format() keeps it.
        value = sql.SQL("CASE WHEN {0} IS NULL THEN NULL ELSE format('%s', {0}) END").format(name)
    else:
        value = sql.SQL("{}::{}").format(name, sql.SQL(wire))
    return sql.SQL("{} AS {}").format(value, name)


def select_statement(
    table: Table,
    where: sql.Composable,
    shape: SourceShape | None = None,
    pg_schema: str = "public",
    order_by_event: bool = False,
) -> sql.Composed:
    """SELECT of the spec's columns (plus the computed partition column) with a filter."""
    missing = set(shape.missing_nullable) if shape else set()
    types = shape.source_types if shape else {}
    exprs = [_select_expr(c, missing, types.get(c.name)) for c in table.source_columns]
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


def _conninfo(conn) -> str:
    """libpq key=value parameters of a psycopg connection, password included."""
    params = conn.info.get_parameters()
    if conn.info.password:
        params["password"] = conn.info.password

    def quote(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " ".join(f"{k}={quote(v)}" for k, v in params.items())


@contextmanager
def stream_batches(
    conn, statement: sql.Composable, started: Callable[[], object] | None = None
) -> Iterator[Iterator[pa.RecordBatch]]:
    """The record batches of ``statement``, read in ``conn``'s snapshot on a second connection.

    ``conn`` is a psycopg connection inside its transaction (REPEATABLE READ: every table and
    count read on it sees the same state); it stays free for other queries while the rows
    stream. Batches carry the statement's types; the caller casts them to the spec.
    ``started``: called as soon as the snapshot is exported and ``conn`` is done with, before
    the second connection opens and runs the statement, so work on ``conn`` (the source's
    checksums) starts beside it instead of after it.
    """
    with conn.cursor() as cur:
        snapshot = cur.execute("SELECT pg_export_snapshot()").fetchone()[0]
    text = statement.as_string(conn)
    conninfo = _conninfo(conn)
    if started is not None:
        started()
    import adbc_driver_postgresql.dbapi as adbc  # after: the import takes a second or so

    source = adbc.connect(conninfo, autocommit=True)
    try:
        cur = source.cursor()
        cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cur.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        for setting in SESSION:
            cur.execute(setting)
        cur.adbc_statement.set_options(
            **{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_BYTES)}
        )
        cur.execute(text)
        yield iter(cur.fetch_record_batch())
    finally:
        # A connection the server cut off is closed already.
        with suppress(Exception):
            source.close()
