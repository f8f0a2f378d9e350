"""DDL derived from the catalog spec: the Voyce app schema in PostgreSQL and Unity Catalog.

Nothing here is written by hand per table; change the catalog and both dialects follow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from voyce_assets.catalog import APP_TABLES, SCHEMAS, TABLES, VOLUMES, Column, Table, Volume

# What Databricks answers an ADD COLUMNS of a column the table has: one the pipeline's
# Delta writer added to the log (``lake.evolved``) before Unity Catalog's schema knew it.
COLUMN_EXISTS_ERROR = "FIELDS_ALREADY_EXISTS"

# Properties every Delta table gets in Unity Catalog. Change data feed lets downstream
# consumers read increments; optimizeWrite/autoCompact keep the file count down without a
# scheduled OPTIMIZE; 7 days of deleted-file retention matches the VACUUM advice of the
# notebooks' cost section. Only delta.* keys: delta-rs rejects unknown properties, and local
# tables must carry the same properties as the Unity Catalog ones.
DELTA_TABLE_PROPERTIES: dict[str, str] = {
    "delta.enableChangeDataFeed": "true",
    "delta.autoOptimize.optimizeWrite": "true",
    "delta.autoOptimize.autoCompact": "true",
    "delta.deletedFileRetentionDuration": "interval 7 days",
    "delta.logRetentionDuration": "interval 30 days",
}

# Who reads personal data in Unity Catalog: every column marked ``pii`` (the raw transcript,
# the users' email, name and phone) gets a column mask that shows its value to this account
# group only, and ``***`` to everyone else.
PII_READERS_GROUP = "voyce_pii_readers"
PII_MASK_FUNCTION = "pii_mask"  # in schema raw_data, where every pii column lives today


def table_properties(table: Table) -> dict[str, str]:
    """The Delta properties of ``table``: the shared ones, and which columns the log keeps
    statistics of — never free text or personal data (``Table.stats_columns``)."""
    return {
        **DELTA_TABLE_PROPERTIES,
        "delta.dataSkippingStatsColumns": ",".join(table.stats_columns),
    }


# ---- PostgreSQL (the app database; only app-owned tables) ---------------------------------


def _pg_column(col: Column) -> str:
    parts = [f'"{col.name}"', col.type.postgres]
    if not col.nullable:
        parts.append("NOT NULL")
    return " ".join(parts)


def _pg_foreign_key(table: Table, col: Column, pg_schema: str) -> str:
    ref_table, ref_col = col.references.split(".")  # type: ignore[union-attr]
    # Children of a feedback or organization go with it; a deleted user leaves the
    # feedback they recorded in place.
    on_delete = "SET NULL" if col.nullable else "CASCADE"
    return (
        f'CONSTRAINT "{table.name}_{col.name}_fkey" FOREIGN KEY ("{col.name}") '
        f'REFERENCES "{pg_schema}"."{ref_table}" ("{ref_col}") ON DELETE {on_delete}'
    )


def postgres_table_ddl(table: Table, pg_schema: str = "public") -> list[str]:
    cols = table.source_columns
    lines = [_pg_column(c) for c in cols]
    pk = ", ".join(f'"{c}"' for c in table.primary_key)
    lines.append(f'CONSTRAINT "{table.name}_pkey" PRIMARY KEY ({pk})')
    for col in cols:
        if col.references:
            lines.append(_pg_foreign_key(table, col, pg_schema))
        if col.allowed:
            values = ", ".join(_sql_string(v, "postgres") for v in col.allowed)
            lines.append(
                f'CONSTRAINT "{table.name}_{col.name}_check" CHECK ("{col.name}" IN ({values}))'
            )
    body = ",\n  ".join(lines)
    statements = [f'CREATE TABLE IF NOT EXISTS "{pg_schema}"."{table.name}" (\n  {body}\n)']
    # Partition reads scan by created_at; change capture seeks (updated_at, id) (created_at
    # where a table has no updated_at) past its cursor; foreign keys are followed by joins.
    indexes = {f"{table.name}_created_at_idx": ("created_at",)}
    indexes[f"{table.name}_cdc_idx"] = (cdc_column(table), *table.primary_key)
    for col in cols:
        if col.references:
            indexes[f"{table.name}_{col.name}_idx"] = (col.name,)
    for name, columns in indexes.items():
        quoted = ", ".join(f'"{c}"' for c in columns)
        statements.append(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON "{pg_schema}"."{table.name}" ({quoted})'
        )
    return statements


def cdc_column(table: Table) -> str:
    """The column change capture follows: updated_at, or created_at where rows never change."""
    return "updated_at" if table.has_updated_at else "created_at"


def postgres_ddl(pg_schema: str = "public", tables: Iterable[Table] = APP_TABLES) -> list[str]:
    statements = [f'CREATE SCHEMA IF NOT EXISTS "{pg_schema}"']
    for table in tables:
        statements.extend(postgres_table_ddl(table, pg_schema))
    return statements


# ---- Databricks / Unity Catalog --------------------------------------------------------


def _sql_string(value: str, dialect: str = "databricks") -> str:
    if dialect == "databricks":
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return "'" + value.replace("'", "''") + "'"


def _q(*names: str) -> str:
    return ".".join(f"`{n}`" for n in names)


def _databricks_column(c: Column, nullable: bool = False) -> str:
    line = f"{_q(c.name)} {c.type.databricks}"
    if not c.nullable and not nullable:
        line += " NOT NULL"
    if c.description:
        line += f" COMMENT {_sql_string(c.description)}"
    return line


def databricks_table_ddl(table: Table, catalog: str, location_root: str | None = None) -> str:
    cols = [_databricks_column(c) for c in table.columns]
    # Informational in Unity Catalog (not enforced); tools and BI read it.
    pk_cols = ", ".join(_q(c) for c in table.primary_key)
    cols.append(f"CONSTRAINT {_q(table.name + '_pk')} PRIMARY KEY ({pk_cols})")
    body = ",\n  ".join(cols)
    props = ",\n  ".join(
        f"{_sql_string(k)} = {_sql_string(v)}" for k, v in table_properties(table).items()
    )
    ddl = (
        f"CREATE TABLE IF NOT EXISTS {_q(catalog, table.schema, table.name)} (\n  {body}\n)\n"
        f"USING DELTA\n"
        f"PARTITIONED BY ({_q(table.partition_column)})\n"
    )
    if location_root:
        # External table where our Delta writer puts it: <root>/<catalog>/<schema>/<table>.
        location = f"{location_root.rstrip('/')}/{catalog}/{table.path}"
        ddl += f"LOCATION {_sql_string(location)}\n"
    ddl += f"COMMENT {_sql_string(table.description)}\nTBLPROPERTIES (\n  {props}\n)"
    return ddl


def databricks_volume_ddl(vol: Volume, catalog: str) -> str:
    return (
        f"CREATE VOLUME IF NOT EXISTS {_q(catalog, vol.schema, vol.name)} "
        f"COMMENT {_sql_string(vol.description)}"
    )


def added_columns_ddl(catalog: str, existing: Mapping[str, Iterable[str]]) -> list[str]:
    """``ALTER TABLE ... ADD COLUMNS`` for each column the spec gained since a table was
    created: CREATE TABLE IF NOT EXISTS leaves an existing table as it was, and Databricks has
    no ADD COLUMN IF NOT EXISTS, so the guard is ``existing`` (the columns each table holds
    now, by ``schema/table``; a table not in it is new and has them all). One statement a
    column: one the pipeline's writer added to the Delta log already fails alone
    (``FIELDS_ALREADY_EXISTS``), not the others. Added as nullable: rows written before hold
    NULL (Delta adds no NOT NULL column to a table with rows)."""
    statements = []
    for table in TABLES:
        if table.path not in existing:
            continue
        held = {name.lower() for name in existing[table.path]}
        statements += [
            f"ALTER TABLE {_q(catalog, table.schema, table.name)} "
            f"ADD COLUMNS ({_databricks_column(c, nullable=True)})"
            for c in table.columns
            if c.name.lower() not in held
        ]
    return statements


def privacy_ddl(catalog: str, readers: str = PII_READERS_GROUP) -> list[str]:
    """What keeps personal data from the wrong readers, for tables old and new (idempotent):
    the mask function and one ALTER per ``pii`` column setting it, then the statistics
    columns of every table with sensitive columns (a table created before they were
    declared has min/max statistics of its free text otherwise)."""
    function = _q(catalog, "raw_data", PII_MASK_FUNCTION)
    statements = [
        f"CREATE OR REPLACE FUNCTION {function}(value STRING) RETURNS STRING "
        f"COMMENT {_sql_string('Personal data: shown to ' + readers + ' only.')} "
        f"RETURN CASE WHEN is_account_group_member({_sql_string(readers)}) THEN value "
        "ELSE '***' END"
    ]
    for table in TABLES:
        name = _q(catalog, table.schema, table.name)
        statements += [
            f"ALTER TABLE {name} ALTER COLUMN {_q(col.name)} SET MASK {function}"
            for col in table.columns
            if col.pii
        ]
    for table in TABLES:
        if any(col.sensitive for col in table.columns):
            stats = table_properties(table)["delta.dataSkippingStatsColumns"]
            statements.append(
                f"ALTER TABLE {_q(catalog, table.schema, table.name)} SET TBLPROPERTIES "
                f"({_sql_string('delta.dataSkippingStatsColumns')} = {_sql_string(stats)})"
            )
    return statements


def databricks_ddl(
    catalog: str,
    location_root: str | None = None,
    pii_readers: str = PII_READERS_GROUP,
    existing: Mapping[str, Iterable[str]] | None = None,
) -> list[str]:
    """Every statement needed to create the catalog, idempotently, in dependency order; with
    ``existing`` (each existing table's columns, ``added_columns_ddl``), the columns the spec
    gained since a table was created are added after the tables, before their masks."""
    statements = [
        f"CREATE CATALOG IF NOT EXISTS {_q(catalog)} "
        f"COMMENT {_sql_string('Voyce voice feedback pipeline')}"
    ]
    for schema, description in SCHEMAS.items():
        statements.append(
            f"CREATE SCHEMA IF NOT EXISTS {_q(catalog, schema)} COMMENT {_sql_string(description)}"
        )
    statements.extend(databricks_table_ddl(t, catalog, location_root) for t in TABLES)
    statements.extend(added_columns_ddl(catalog, existing or {}))
    statements.extend(privacy_ddl(catalog, pii_readers))
    statements.extend(databricks_volume_ddl(v, catalog) for v in VOLUMES)
    return statements


def as_script(statements: Iterable[str]) -> str:
    return ";\n\n".join(statements) + ";\n"
