"""Erased subjects stay erased: every read of the app database leaves their rows out.

The app's tables belong to the app: an erased user, feedback or organization may still be
there. The erasure log keeps no id, only ``privacy.tombstones.subject_hash`` of each id an
erasure removed; a full sync, a CDC merge and the sweep's counts and checksums all leave out
a source row when its key or any other id column hashes into them, so a source that still
holds the subject never brings it back.

How, at little cost: the tombstones are loaded once per run (``tombstones.erased_hashes``,
a read of the small erasure log); with none, nothing
here queries anything and the conditions are ``TRUE``, so every statement is what it was.
Otherwise ``resolve`` turns them, once per read scope, into the erased ids the app table
still holds: PostgreSQL hashes the key of each row in scope and each distinct value of the
other id columns (a user id repeats over their feedback: hashed once), and returns the few
that match. From there every read leaves those rows out by a condition on plain ids
(``Erased.kept``), and ``Erased.withheld`` counts them through the key and foreign-key
indexes: a run says how many rows it withheld as erased, never which.

The id columns of a table (``id_columns``) come from the catalog: its UUID columns (the key,
the references to organizations, users, feedback, tags, ``assigned_to``), and the text
columns that hold a user id (``feedback_tags.assigned_by``: 'auto' or the user's id).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import sql

from voyce_assets.catalog import UUID, Column, Table
from voyce_assets.privacy.tombstones import subject_hash, subject_hash_sql

# Text columns holding an id without being a foreign key, per table path.
TEXT_ID_COLUMNS: dict[str, tuple[str, ...]] = {"raw_data/feedback_tags": ("assigned_by",)}


def id_columns(table: Table) -> tuple[Column, ...]:
    """The columns of ``table`` whose value can be an erased subject's id."""
    text_ids = TEXT_ID_COLUMNS.get(table.path, ())
    return tuple(
        c for c in table.source_columns if c.type is UUID or c.references or c.name in text_ids
    )


def unnamed(ids: list[str], tombstones: frozenset[str]) -> list[str]:
    """``ids`` (a check's or a log's few named rows) less the erased ones."""
    if not tombstones:
        return ids
    return [i for i in ids if subject_hash(i) not in tombstones]


@dataclass(frozen=True)
class Erased:
    """The erased ids one scope of an app table holds, per id column (none: nothing erased)."""

    table: Table
    ids: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(self.ids.values())

    def matches(self) -> sql.Composable:
        """Rows holding an erased id: ``col = ANY(ids)`` per column, ORed (each column's
        index answers its part); FALSE when nothing is erased."""
        parts = [
            sql.SQL("{} = ANY({}::{}[])").format(
                sql.Identifier(name),
                sql.Literal(list(values)),
                sql.SQL(self.table.column(name).type.postgres),
            )
            for name, values in sorted(self.ids.items())
            if values
        ]
        if not parts:
            return sql.SQL("FALSE")
        return sql.SQL("({})").format(sql.SQL(" OR ").join(parts))

    def kept(self) -> sql.Composable:
        """Rows holding no erased id (a NULL id column keeps its row); TRUE when none."""
        if not self:
            return sql.SQL("TRUE")
        return sql.SQL("{} IS NOT TRUE").format(self.matches())

    def withheld(self, conn, where: sql.Composable, pg_schema: str = "public") -> dict[str, int]:
        """{partition: rows meeting ``where`` that hold an erased id}; no query when none."""
        if not self:
            return {}
        rows = conn.execute(
            sql.SQL(
                "SELECT ({c} AT TIME ZONE 'UTC')::date, count(*) FROM {s}.{t} "
                "WHERE ({where}) AND {matches} GROUP BY 1"
            ).format(
                c=sql.Identifier(self.table.partition_source),
                s=sql.Identifier(pg_schema),
                t=sql.Identifier(self.table.name),
                where=where,
                matches=self.matches(),
            )
        ).fetchall()
        return {day.isoformat(): int(n) for day, n in rows if day is not None}


def resolve(
    conn,
    table: Table,
    tombstones: frozenset[str],
    where: sql.Composable,
    pg_schema: str = "public",
) -> Erased:
    """The erased ids among the rows of ``table`` meeting ``where``: one statement, each key
    and each distinct other id value hashed once by PostgreSQL; none without tombstones."""
    if not tombstones:
        return Erased(table)
    digests = sql.Literal([bytes.fromhex(h) for h in sorted(tombstones)])
    key = table.primary_key[0] if len(table.primary_key) == 1 else None
    names = {
        "s": sql.Identifier(pg_schema),
        "t": sql.Identifier(table.name),
        "where": where,
        "erased": sql.SQL("IN (SELECT unnest({}::bytea[]))").format(digests),
    }
    parts = []
    for col in id_columns(table):
        value = sql.SQL("{}::text").format(sql.Identifier(col.name))
        # A uuid's text is lowercase already.
        cased = col.type is not UUID
        if col.name == key:
            # One value per row: hashed as the rows are read.
            statement = "SELECT {name}, {value} FROM {s}.{t} WHERE ({where}) AND {digest} {erased}"
            digest = subject_hash_sql(value, cased)
        else:
            # Few distinct values (a user's id repeats over their feedback): each hashed once.
            statement = (
                "SELECT {name}, v::text FROM (SELECT DISTINCT {col} AS v FROM {s}.{t} "
                "WHERE ({where}) AND {col} IS NOT NULL) d WHERE {digest} {erased}"
            )
            digest = subject_hash_sql(sql.SQL("v::text"), cased)
        parts.append(
            sql.SQL(statement).format(
                name=sql.Literal(col.name),
                value=value,
                col=sql.Identifier(col.name),
                digest=digest,
                **names,
            )
        )
    found: dict[str, set[str]] = {}
    for name, value in conn.execute(sql.SQL(" UNION ALL ").join(parts)).fetchall():
        found.setdefault(name, set()).add(value)
    return Erased(table, {name: tuple(sorted(values)) for name, values in found.items()})
