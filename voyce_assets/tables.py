"""Dagster's view of catalog tables: asset keys, shared partitions, metadata.

``table_spec`` gives every table the same key (``[schema, table]``), group, partitions and
column-schema metadata, whether a layer declares it as a real asset or, until its issue
lands, as a lineage-only ``AssetSpec``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dagster import AssetKey, AssetSpec, MetadataValue

from voyce_assets.catalog import Owner, Table, table
from voyce_assets.partitions import daily_partitions
from voyce_assets.settings import catalog_name


def table_key(path: str) -> AssetKey:
    return AssetKey(list(table(path).key))


def table_metadata(spec: Table) -> dict[str, Any]:
    return {
        "dagster/column_schema": spec.column_schema(),
        "dagster/table_name": spec.full_name(catalog_name()),
        "primary_key": ", ".join(spec.primary_key),
        "partition_column": spec.partition_column,
        "partition_source": spec.partition_source or spec.partition_column,
        "writer": MetadataValue.text(
            "Voyce app (mirrored from PostgreSQL)"
            if spec.owner is Owner.APP
            else "this pipeline (one writer per table)"
        ),
    }


def table_kinds(spec: Table) -> set[str]:
    return {"delta", "postgres"} if spec.owner is Owner.APP else {"delta"}


def table_spec(path: str, deps: Sequence[str] = (), pending_issue: str | None = None) -> AssetSpec:
    """An AssetSpec for a table not built yet: visible in graph and lineage, never materialized."""
    spec = table(path)
    description = spec.description
    if pending_issue:
        description += f"\n\nNot materializable yet: built by the {pending_issue} stage."
    return AssetSpec(
        key=table_key(path),
        deps=[table_key(d) for d in deps],
        description=description,
        group_name=spec.schema,
        partitions_def=daily_partitions,
        metadata=table_metadata(spec),
        kinds=table_kinds(spec),
        tags={"voyce/owner": spec.owner.value},
    )
