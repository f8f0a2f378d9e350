"""Source rows the mirror cannot hold as they are, found in the sync's own snapshot.

- **Rows outside the partitions**: a ``created_at`` that is NULL, infinite, before the first
  partition or after the last one (a clock far ahead, 2100). They belong to no partition, so
  no sync writes them; ``outside_rows`` counts and names them for the ``rows_placed`` check
  and the sweep. A row that merely runs a little ahead is mirrored once its day's partition
  exists (the daily full sync covers today).
- **Timestamps Delta cannot hold**: PostgreSQL allows ``infinity`` in any timestamptz
  column; Arrow and Delta have no such value. The row is left out of the sync (no guess at a
  stand-in value) and named (``unrepresentable_rows``).
- **A repeated primary key** (a source table that lost its constraint): the stated rule
  keeps, per key, the row changed last (``updated_at``, then ``created_at``, then the
  physical row order), and every sync, count and checksum reads the source without the
  others (``Duplicates.exclusion``), so the mirror never holds a key twice and reconciliation
  compares like with like. Looked for only where the source has no unique index on the key.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from psycopg import sql

from voyce_assets.catalog import Table

PREVIEW_IDS = 20
# More repeated rows than this is no defect to route around but a broken source: fail.
MAX_DUPLICATE_ROWS = 10_000


class DuplicateKeysError(Exception):
    """Too many repeated primary keys to resolve row by row."""


def partition_bounds() -> tuple[dt.date, dt.date]:
    """The first and the last daily partition that exist now (today's included)."""
    from voyce_assets.partitions import daily_partitions

    keys = daily_partitions.get_partition_keys()
    return dt.date.fromisoformat(keys[0]), dt.date.fromisoformat(keys[-1])


@dataclass(frozen=True)
class Outside:
    rows: int = 0
    ids: list[str] = field(default_factory=list)  # the first few, by id


def outside_rows(
    conn, table: Table, first: dt.date, last: dt.date, pg_schema: str = "public"
) -> Outside:
    """Rows whose ``created_at`` places them in no partition from ``first`` to ``last``.

    Probes of the ``created_at`` index (NULLs, and both ends of the range: ``infinity``
    lies beyond any end), whatever the table's size.
    """
    if table.partition_source is None:
        return Outside()
    where = sql.SQL("{c} IS NULL OR {c} < {lo} OR {c} >= {hi}").format(
        c=sql.Identifier(table.partition_source),
        lo=sql.Literal(f"{first.isoformat()} 00:00:00+00"),
        hi=sql.Literal(f"{(last + dt.timedelta(days=1)).isoformat()} 00:00:00+00"),
    )
    return _named(conn, table, where, pg_schema)


def _named(conn, table: Table, where: sql.Composable, pg_schema: str) -> Outside:
    """How many rows meet ``where``, and the first few of their ids."""
    names = {
        "s": sql.Identifier(pg_schema),
        "t": sql.Identifier(table.name),
        "pk": sql.Identifier(table.primary_key[0]),
        "where": where,
    }
    row = conn.execute(
        sql.SQL(
            "SELECT count(*), (array_agg({pk}::text ORDER BY {pk}))[1:{n}] "
            "FROM {s}.{t} WHERE {where}"
        ).format(n=sql.Literal(PREVIEW_IDS), **names)
    ).fetchone()
    return Outside(rows=int(row[0]), ids=list(row[1] or []))


def finite(table: Table) -> sql.Composable:
    """Rows whose every timestamp and date column is NULL or finite (what Arrow can hold).

    Spelled as comparisons, not ``isfinite(...) IS NOT FALSE``: PostgreSQL estimates those
    from the columns' statistics (nearly every row), where a function call gets a fixed
    guess (a third of the rows each). That guess made a full sync's ordered stream a
    parallel scan and sort that sends no row before it has read them all, instead of the
    created_at index scan that streams from the first row."""
    from voyce_assets.catalog import DATE, TIMESTAMP

    parts = [
        sql.SQL("({0} IS NULL OR {0} NOT IN ('infinity', '-infinity'))").format(
            sql.Identifier(c.name)
        )
        for c in table.source_columns
        if c.type is TIMESTAMP or c.type is DATE
    ]
    return sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")


def infinite(table: Table) -> sql.Composable:
    """Rows with an infinite timestamp or date: ``NOT finite(table)`` spelled as equalities,
    so PostgreSQL can answer it from the indexes of the columns that have one (created_at,
    the CDC column) instead of reading every row of the partitions."""
    from voyce_assets.catalog import DATE, TIMESTAMP

    parts = [
        sql.SQL("{} IN ('infinity', '-infinity')").format(sql.Identifier(c.name))
        for c in table.source_columns
        if c.type is TIMESTAMP or c.type is DATE
    ]
    return sql.SQL("({})").format(sql.SQL(" OR ").join(parts)) if parts else sql.SQL("FALSE")


def unrepresentable_rows(
    conn, table: Table, where: sql.Composable, pg_schema: str = "public"
) -> Outside:
    """Rows meeting ``where`` (a sync's partitions) with an infinite timestamp."""
    return _named(conn, table, sql.SQL("({}) AND {}").format(where, infinite(table)), pg_schema)


# A change stamped further ahead than this is no clock skew: the CDC cannot see it until then.
FUTURE_MARGIN = "1 day"


def future_stamped(conn, table: Table, pg_schema: str = "public") -> Outside:
    """Rows whose change stamp (the CDC column) lies over a day ahead of the database's
    clock: the CDC cursor never passes ``now()``, so their later edits stay unseen until
    then (the full syncs and the sweep still copy them). One probe of the CDC index."""
    from voyce_assets.ddl import cdc_column

    ahead = sql.SQL("{} > now() + {}::interval").format(
        sql.Identifier(cdc_column(table)), sql.Literal(FUTURE_MARGIN)
    )
    return _named(conn, table, ahead, pg_schema)


def unrepresentable_by_day(
    conn, table: Table, where: sql.Composable, pg_schema: str = "public"
) -> dict[str, int]:
    """{partition: rows with an infinite timestamp} among the rows meeting ``where``."""
    rows = conn.execute(
        sql.SQL(
            "SELECT ({c} AT TIME ZONE 'UTC')::date, count(*) FROM {s}.{t} "
            "WHERE ({where}) AND {infinite} GROUP BY 1"
        ).format(
            c=sql.Identifier(table.partition_source),
            s=sql.Identifier(pg_schema),
            t=sql.Identifier(table.name),
            where=where,
            infinite=infinite(table),
        )
    ).fetchall()
    return {day.isoformat(): int(n) for day, n in rows}


def has_unique_key(conn, table: Table, pg_schema: str = "public") -> bool:
    """Whether a valid unique index (a primary key, a unique constraint) has exactly the key
    as its key columns (INCLUDE columns aside)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND i.indisunique AND i.indisvalid "
        "AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnkeyatts = %s "
        "AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a "
        "     WHERE a.attrelid = c.oid "
        "     AND a.attnum = ANY((i.indkey::int2[])[0:i.indnkeyatts - 1])) = %s)",
        (pg_schema, table.name, len(table.primary_key), sorted(table.primary_key)),
    ).fetchone()
    return bool(row[0])


@dataclass(frozen=True)
class Duplicates:
    """Keys the source holds more than once, and the rows the rule leaves out."""

    keys: int = 0
    ids: list[str] = field(default_factory=list)  # the first few keys
    # (tableoid, ctid) of the rows left out: a ctid alone repeats across the children of a
    # partitioned or inherited table.
    dropped: list[tuple[int, str]] = field(default_factory=list)

    @property
    def rows_dropped(self) -> int:
        return len(self.dropped)

    def exclusion(self) -> sql.Composable:
        """A WHERE condition leaving out the dropped rows (TRUE when there are none). The
        ctids hold in the snapshot they were found in, which every reader of a sync shares."""
        if not self.dropped:
            return sql.SQL("TRUE")
        rows = sql.SQL(", ").join(
            sql.SQL("({}::oid, {}::tid)").format(sql.Literal(oid), sql.Literal(tid))
            for oid, tid in self.dropped
        )
        return sql.SQL("(tableoid, ctid) NOT IN (VALUES {})").format(rows)


RULE = "kept per key: the row with the newest updated_at, then created_at, then the last stored"


def find_duplicates(conn, table: Table, pg_schema: str = "public") -> Duplicates:
    """The repeated keys of the whole table and the rows the rule drops (one scan of the
    key column, only for a source without a unique index on its key)."""
    if len(table.primary_key) != 1 or has_unique_key(conn, table, pg_schema):
        return Duplicates()
    pk = sql.Identifier(table.primary_key[0])
    order = [sql.SQL("{} DESC NULLS LAST").format(sql.Identifier("updated_at"))]
    if not table.has_updated_at:
        order = []
    if table.partition_source:
        order.append(sql.SQL("{} DESC NULLS LAST").format(sql.Identifier(table.partition_source)))
    order.append(sql.SQL("tableoid DESC, ctid DESC"))
    rows = conn.execute(
        sql.SQL(
            "SELECT {pk}::text, tableoid::int8, ctid::text, "
            "row_number() OVER (PARTITION BY {pk} ORDER BY {order}) "
            "FROM {s}.{t} WHERE {pk} IN (SELECT {pk} FROM {s}.{t} GROUP BY {pk} "
            "HAVING count(*) > 1) ORDER BY 1, 4 LIMIT {cap}"
        ).format(
            pk=pk,
            order=sql.SQL(", ").join(order),
            s=sql.Identifier(pg_schema),
            t=sql.Identifier(table.name),
            cap=sql.Literal(MAX_DUPLICATE_ROWS + 1),
        )
    ).fetchall()
    if len(rows) > MAX_DUPLICATE_ROWS:
        raise DuplicateKeysError(
            f"{table.path}: more than {MAX_DUPLICATE_ROWS} rows repeat a primary key in the "
            f"app DB; restore its primary key constraint"
        )
    keys = sorted({r[0] for r in rows})
    return Duplicates(
        keys=len(keys), ids=keys[:PREVIEW_IDS], dropped=[(r[1], r[2]) for r in rows if r[3] > 1]
    )
