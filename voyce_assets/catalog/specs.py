"""The catalog's vocabulary: what a table and a volume spec are, and how one is declared.

``Table``, ``Column``, ``Volume``, ``Owner`` and the column types (``LogicalType``: each
spelled for Arrow, PostgreSQL and Databricks); the pipeline's ``STAGES`` (every table names
the one that writes it); the closed vocabularies columns share (``SENTIMENT_LABELS``,
``FEEDBACK_STATUSES``); and the helpers the schema modules declare their tables with
(``_table``, ``_id``, ``_org_ref`` ...: private to the catalog package). No table is
declared here: each schema's tables are in its own module (``raw_data.py`` ...).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import pyarrow as pa
from dagster import TableColumn, TableColumnConstraints, TableConstraints, TableSchema

# The pipeline's stages, in the order data flows (the notebooks 01-06 and their jobs), plus
# operations. Each is a package of voyce_assets and the group of its assets in the UI; every
# table names the one stage that writes it.
STAGES: tuple[str, ...] = (
    "ingestion",
    "voice",
    "text",
    "training",
    "inference",
    "analytics",
    "operations",
)


class Owner(enum.StrEnum):
    """Who writes a table: the Voyce app (mirrored from PostgreSQL) or a pipeline asset."""

    APP = "app"
    PIPELINE = "pipeline"


@dataclass(frozen=True)
class LogicalType:
    """One column type and its spelling in each system we target."""

    name: str
    arrow: pa.DataType
    postgres: str
    databricks: str


STRING = LogicalType("string", pa.string(), "TEXT", "STRING")
UUID = LogicalType("uuid", pa.string(), "UUID", "STRING")
JSON = LogicalType("json", pa.string(), "JSONB", "STRING")
INT = LogicalType("int", pa.int32(), "INTEGER", "INT")
BIGINT = LogicalType("bigint", pa.int64(), "BIGINT", "BIGINT")
DOUBLE = LogicalType("double", pa.float64(), "DOUBLE PRECISION", "DOUBLE")
MONEY = LogicalType("decimal(18,6)", pa.decimal128(18, 6), "NUMERIC(18,6)", "DECIMAL(18,6)")
BOOLEAN = LogicalType("boolean", pa.bool_(), "BOOLEAN", "BOOLEAN")
TIMESTAMP = LogicalType("timestamp", pa.timestamp("us", tz="UTC"), "TIMESTAMPTZ", "TIMESTAMP")
DATE = LogicalType("date", pa.date32(), "DATE", "DATE")
ARRAY_DOUBLE = LogicalType(
    "array<double>", pa.list_(pa.float64()), "DOUBLE PRECISION[]", "ARRAY<DOUBLE>"
)
ARRAY_STRING = LogicalType("array<string>", pa.list_(pa.string()), "TEXT[]", "ARRAY<STRING>")


@dataclass(frozen=True)
class Column:
    name: str
    type: LogicalType = STRING
    nullable: bool = True
    description: str = ""
    # A closed vocabulary the app or the pipeline promises; checked downstream, enforced in
    # the demo app schema.
    allowed: tuple[str, ...] | None = None
    # Fixed length of an array column (MFCC = 13, embedding = 384 ...).
    length: int | None = None
    # Foreign key in the app database, "table.column".
    references: str | None = None
    # Personal data: masked wherever rows are shown (previews, check metadata).
    pii: bool = False
    # Text a person wrote or said, or pieces of it (transcripts, key phrases, summaries): it
    # may hold personal data the redactor missed, so like ``pii`` it is masked wherever rows
    # are shown, and neither gets min/max statistics in the Delta log (a log cannot be
    # edited per person: see ``Table.stats_columns``).
    free_text: bool = False

    @property
    def sensitive(self) -> bool:
        """Personal data or free text: never shown, never in the Delta log's statistics."""
        return self.pii or self.free_text


class _Named:
    """What a table and a volume are called: their asset key, path and Unity Catalog name."""

    schema: str
    name: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.schema, self.name)

    @property
    def path(self) -> str:
        """``schema/name``: the asset key path, and the folder below the catalog."""
        return f"{self.schema}/{self.name}"

    def full_name(self, catalog: str) -> str:
        return f"{catalog}.{self.schema}.{self.name}"


@dataclass(frozen=True)
class Table(_Named):
    schema: str
    name: str
    owner: Owner
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    partition_column: str
    # The stage (package and asset group) whose asset is the table's one writer; for an
    # app-owned table, the stage that mirrors it.
    stage: str
    # Where the partition date comes from: a column of this table, or "table.column" of the
    # feedback the row describes. None when the partition column is itself a business date.
    partition_source: str | None = "created_at"
    # Column that only exists in the lakehouse (computed while writing), never in the app DB.
    lakehouse_only: tuple[str, ...] = field(default=())
    # Columns OPTIMIZE co-locates (Z-ORDER BY), those the notebooks' queries filter on; empty:
    # plain compaction. Within each partition, so never the partition column.
    z_order: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        types = {c.name: c.type for c in self.columns}
        if len(set(self.z_order)) != len(self.z_order):
            raise ValueError(f"{self.path}: z_order repeats a column: {self.z_order}")
        for col in self.z_order:
            if col not in types:
                raise ValueError(f"{self.path}: z_order column {col!r} is not a column")
            if col == self.partition_column:
                raise ValueError(f"{self.path}: z_order column {col!r} is the partition column")
            if types[col].name.startswith("array"):
                # Delta keeps no min/max statistics of arrays: no file could be skipped.
                raise ValueError(f"{self.path}: z_order column {col!r} is an array")

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.path} has no column {name!r}")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def source_columns(self) -> tuple[Column, ...]:
        """Columns the app database holds (app-owned tables only)."""
        return tuple(c for c in self.columns if c.name not in self.lakehouse_only)

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if not c.nullable]

    def mask(self, row: dict) -> dict:
        """The row with its personal-data and free-text columns and users' ids masked, for
        previews and check metadata."""
        hidden = {c.name for c in self.columns if c.sensitive or self._names_a_person(c)}
        return {k: ("***" if k in hidden and v is not None else v) for k, v in row.items()}

    def _names_a_person(self, col: Column) -> bool:
        """A user's id (``users.id`` and every column referencing it): pseudonymous, yet it
        ties a preview to one person, and Dagster's event log cannot forget one."""
        return col.references == "users.id" or (self.name == "users" and col.name == "id")

    @property
    def stats_columns(self) -> tuple[str, ...]:
        """The columns the Delta log keeps min/max statistics of
        (``delta.dataSkippingStatsColumns``): all but the sensitive ones, whose values would
        otherwise sit in the log, beyond the reach of a DELETE, a VACUUM or an erasure."""
        return tuple(c.name for c in self.columns if not c.sensitive)

    @property
    def has_updated_at(self) -> bool:
        return any(c.name == "updated_at" for c in self.columns)

    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [
                pa.field(
                    c.name,
                    c.type.arrow,
                    nullable=c.nullable,
                    metadata={"comment": c.description} if c.description else None,
                )
                for c in self.columns
            ]
        )

    def column_schema(self) -> TableSchema:
        """Dagster ``dagster/column_schema`` metadata."""
        single_pk = self.primary_key[0] if len(self.primary_key) == 1 else None
        columns = []
        for c in self.columns:
            other = []
            if c.name in self.primary_key:
                other.append("primary key")
            if c.name == self.partition_column:
                other.append(f"partition column (from {self.partition_source or 'itself'})")
            if c.allowed:
                other.append("one of " + ", ".join(c.allowed))
            if c.length:
                other.append(f"length {c.length}")
            if c.references:
                other.append(f"references {c.references}")
            if c.pii:
                other.append("personal data (masked in previews)")
            elif c.free_text:
                other.append("free text (masked in previews, no Delta statistics)")
            columns.append(
                TableColumn(
                    name=c.name,
                    type=c.type.databricks,
                    description=c.description or None,
                    constraints=TableColumnConstraints(
                        nullable=c.nullable, unique=c.name == single_pk, other=other
                    ),
                )
            )
        return TableSchema(
            columns=columns,
            constraints=TableConstraints(
                other=[
                    f"PRIMARY KEY ({', '.join(self.primary_key)})",
                    f"PARTITIONED BY ({self.partition_column})",
                    *([f"ZORDER BY ({', '.join(self.z_order)})"] if self.z_order else []),
                ]
            ),
        )


@dataclass(frozen=True)
class Volume(_Named):
    schema: str
    name: str
    description: str
    # The stage whose asset writes the volume; None for the app's own uploads.
    stage: str | None = None


FEEDBACK_STATUSES = ("pending", "processing", "completed", "failed")
SENTIMENT_LABELS = ("positive", "neutral", "negative", "mixed")


def _id(description: str = "Primary key (UUID).") -> Column:
    return Column("id", UUID, nullable=False, description=description)


def _created_at(description: str = "When the row was created (UTC).") -> Column:
    return Column("created_at", TIMESTAMP, nullable=False, description=description)


def _updated_at() -> Column:
    return Column("updated_at", TIMESTAMP, nullable=False, description="Last change (UTC).")


def _event_date(source: str) -> Column:
    return Column(
        "event_date",
        DATE,
        nullable=False,
        description=f"UTC date of {source}; the daily partition of the row.",
    )


def _feedback_ref(nullable: bool = False) -> Column:
    return Column(
        "voice_feedback_id",
        UUID,
        nullable=nullable,
        description="The voice feedback this row describes.",
        references="voice_feedback.id",
    )


def _org_ref(nullable: bool = False, references: str | None = "organizations.id") -> Column:
    return Column(
        "organization_id",
        UUID,
        nullable=nullable,
        description="Owning organization.",
        references=references,
    )


def _table(
    schema: str,
    name: str,
    owner: Owner,
    stage: str,
    description: str,
    columns: list[Column],
    primary_key: tuple[str, ...] = ("id",),
    partition_source: str | None = "created_at",
    partition_column: str = "event_date",
    z_order: tuple[str, ...] = (),
) -> Table:
    """Declare a table; a derived ``event_date`` partition column is appended automatically."""
    if stage not in STAGES:
        raise ValueError(f"{schema}.{name}: unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    lakehouse_only: tuple[str, ...] = ()
    if partition_source is not None:
        columns = [*columns, _event_date(partition_source)]
        lakehouse_only = ("event_date",)
    return Table(
        schema=schema,
        name=name,
        owner=owner,
        description=description,
        columns=tuple(columns),
        primary_key=primary_key,
        partition_column=partition_column,
        stage=stage,
        partition_source=partition_source,
        lakehouse_only=lakehouse_only,
        z_order=z_order,
    )


# Where the tables that describe one voice feedback take their partition date from.
_FEEDBACK_EVENT = "voice_feedback.created_at"
