"""The Unity Catalog spec: every table and volume of the pipeline, declared once.

Everything else is derived from ``TABLES`` and ``VOLUMES``: Arrow/Delta schemas, Dagster column
metadata, the app-database DDL for PostgreSQL, the Databricks DDL, and (in later layers) the
data-quality checks. Types follow the original notebooks (STRING unless noted) with their bugs
fixed: ids are UUIDs, money is DECIMAL, every table carries a DATE partition column.

Partitioning: one daily partition per UTC event date. App-mirrored tables and the tables that
describe one voice feedback derive ``event_date`` from a timestamp (``partition_source``), so
that materializing partition D of any asset touches exactly the rows of D's feedback.

The package: ``specs.py`` says what a table, column and volume are (and the stages, types and
shared vocabularies); each schema declares its tables and volumes in its own module
(``raw_data.py``, ``processed_data.py``, ``ml_models.py``, ``analytics.py``). This module
assembles them, in that order, and is what the rest of the code imports.
"""

from __future__ import annotations

from voyce_assets.catalog import analytics, ml_models, processed_data, raw_data
from voyce_assets.catalog.analytics import COST_FLAG_MEDIAN, COST_FLAG_P90
from voyce_assets.catalog.specs import (
    ARRAY_DOUBLE,
    ARRAY_STRING,
    BIGINT,
    BOOLEAN,
    DATE,
    DOUBLE,
    FEEDBACK_STATUSES,
    INT,
    JSON,
    MONEY,
    SENTIMENT_LABELS,
    STAGES,
    STRING,
    TIMESTAMP,
    UUID,
    Column,
    LogicalType,
    Owner,
    Table,
    Volume,
)

__all__ = [
    "APP_TABLES",
    "ARRAY_DOUBLE",
    "ARRAY_STRING",
    "BIGINT",
    "BOOLEAN",
    "COST_FLAG_MEDIAN",
    "COST_FLAG_P90",
    "DATE",
    "DOUBLE",
    "FEEDBACK_STATUSES",
    "INT",
    "JSON",
    "MONEY",
    "SCHEMAS",
    "SENTIMENT_LABELS",
    "STAGES",
    "STRING",
    "TABLES",
    "TABLES_BY_PATH",
    "TIMESTAMP",
    "UUID",
    "VOLUMES",
    "VOLUMES_BY_PATH",
    "Column",
    "LogicalType",
    "Owner",
    "Table",
    "Volume",
    "table",
    "volume",
]

# The schemas in the order data flows; ``SCHEMAS``, ``TABLES`` and ``VOLUMES`` keep it (and
# each module its own order: raw_data's app tables first).
_SCHEMA_MODULES = (raw_data, processed_data, ml_models, analytics)

SCHEMAS: dict[str, str] = {m.SCHEMA: m.DESCRIPTION for m in _SCHEMA_MODULES}
TABLES: tuple[Table, ...] = tuple(t for m in _SCHEMA_MODULES for t in m.TABLES)
VOLUMES: tuple[Volume, ...] = tuple(v for m in _SCHEMA_MODULES for v in m.VOLUMES)

TABLES_BY_PATH: dict[str, Table] = {t.path: t for t in TABLES}
VOLUMES_BY_PATH: dict[str, Volume] = {v.path: v for v in VOLUMES}
APP_TABLES: tuple[Table, ...] = tuple(t for t in TABLES if t.owner is Owner.APP)


def table(path: str) -> Table:
    """Look a table up by ``schema/name``."""
    try:
        return TABLES_BY_PATH[path]
    except KeyError:
        raise KeyError(f"unknown table {path!r}; known: {', '.join(TABLES_BY_PATH)}") from None


def volume(path: str) -> Volume:
    try:
        return VOLUMES_BY_PATH[path]
    except KeyError:
        raise KeyError(f"unknown volume {path!r}; known: {', '.join(VOLUMES_BY_PATH)}") from None
