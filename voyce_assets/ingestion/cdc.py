"""Change detection for the CDC sensor: which partitions of which tables changed since a cursor.

The cursor of a table is the (timestamp, id) of the last change already requested, where the
timestamp is ``updated_at`` (``created_at`` for tables whose rows never change). Each tick
seeks past it on the ``(cdc column, id)`` index, so a tick with no change costs one index probe
per table however large the table is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from psycopg import sql

from voyce_assets.catalog import Table
from voyce_assets.ddl import cdc_column
from voyce_assets.ingestion.sync import Cursor


@dataclass(frozen=True)
class TableChanges:
    table: Table
    dates: tuple[dt.date, ...]  # partitions (UTC event dates) holding changed rows
    rows: int
    high_water: Cursor  # the newest change seen: the cursor after this tick
    # Changed rows with no date to place them by (created_at NULL or infinite): first ids.
    undated: tuple[str, ...] = ()


# Before every row: the cursor of an empty table, so its first rows are changes too.
START = Cursor("-infinity", "00000000-0000-0000-0000-000000000000")


def _lagging(col: sql.Composable, lag_seconds: float) -> sql.Composable:
    """Rows old enough to request: stamped at least ``lag_seconds`` ago, and never later
    than now. A stamp in the future (a wrong clock, 2100) would carry the cursor past every
    change to come: such a row waits until its time (the sweep and the rows_placed check
    name it meanwhile).

    Finite is spelled as a range (``> '-infinity'``; the upper bound leaves out 'infinity'
    and NULL), not ``isfinite()``: PostgreSQL estimates a range from the column's statistics
    and reads it from the index, where a function call gets a fixed guess (a third of the
    rows) and is a filter on every row."""
    return sql.SQL("{0} > '-infinity' AND {0} <= now() - make_interval(secs => {1})").format(
        col, sql.Literal(max(0.0, float(lag_seconds)))
    )


def latest_cursor(
    conn, table: Table, pg_schema: str = "public", lag_seconds: float = 0.0
) -> Cursor:
    """The newest (timestamp, id) stamped at least ``lag_seconds`` ago; ``START`` if none.

    The first tick's cursor obeys the lag like every later one: rows stamped a moment ago
    (whose transaction may still be open, with more rows to come) stay ahead of it.
    """
    col, pk = cdc_column(table), table.primary_key[0]
    row = conn.execute(
        sql.SQL(
            "SELECT {col}, {pk}::text FROM {s}.{t} WHERE {lag} "
            "ORDER BY {col} DESC, {pk} DESC LIMIT 1"
        ).format(
            col=sql.Identifier(col),
            pk=sql.Identifier(pk),
            s=sql.Identifier(pg_schema),
            t=sql.Identifier(table.name),
            lag=_lagging(sql.Identifier(col), lag_seconds),
        )
    ).fetchone()
    return Cursor(row[0].isoformat(), row[1]) if row else START


def find_changes(
    conn, table: Table, since: Cursor, pg_schema: str = "public", lag_seconds: float = 0.0
) -> TableChanges | None:
    """Partitions with rows changed after ``since``; None when nothing changed.

    Rows stamped in the last ``lag_seconds`` are left to a later tick: an app transaction
    that stamped its rows a moment ago but commits after this snapshot is then still ahead of
    the cursor when it becomes visible.
    """
    col = sql.Identifier(cdc_column(table))
    condition = sql.SQL("{} AND {}").format(since.condition(table), _lagging(col, lag_seconds))
    names = {"s": sql.Identifier(pg_schema), "t": sql.Identifier(table.name), "cond": condition}
    created = sql.Identifier(table.partition_source)
    rows = conn.execute(
        sql.SQL(
            "SELECT CASE WHEN isfinite({created}) THEN ({created} AT TIME ZONE 'UTC')::date END, "
            "count(*), (array_agg({pk}::text ORDER BY {pk}) "
            "FILTER (WHERE isfinite({created}) IS NOT TRUE))[1:{n}] "
            "FROM {s}.{t} WHERE {cond} GROUP BY 1"
        ).format(
            created=created, pk=sql.Identifier(table.primary_key[0]), n=sql.Literal(20), **names
        )
    ).fetchall()
    if not rows:
        return None
    high = conn.execute(
        sql.SQL(
            "SELECT {col}, {pk}::text FROM {s}.{t} WHERE {cond} ORDER BY {col} DESC, {pk} DESC LIMIT 1"
        ).format(col=col, pk=sql.Identifier(table.primary_key[0]), **names)
    ).fetchone()
    return TableChanges(
        table=table,
        dates=tuple(sorted(d for d, _, _ in rows if d is not None)),
        rows=sum(n for _, n, _ in rows),
        high_water=Cursor(high[0].isoformat(), high[1]),
        undated=tuple(next((ids for d, _, ids in rows if d is None), [])),
    )
