"""Materializing the code location for the demo, in process, on the local Dagster instance.

Runs land in ``DAGSTER_HOME`` (default ``$VOYCE_HOME/dagster``), so ``dagster dev`` shows
them afterwards. Which assets run is read from the Definitions: every executable asset,
unpartitioned ones once, partitioned ones for each demo day; lineage-only specs of later
stages are skipped until they become real assets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from dagster import AssetsDefinition, DagsterInstance, materialize

from voyce_assets.settings import ensure_dagster_home


def _instance() -> DagsterInstance:
    ensure_dagster_home()
    return DagsterInstance.get()


def _executable_assets() -> tuple[list[AssetsDefinition], list[AssetsDefinition], dict]:
    from voyce_assets.definitions import defs

    executable = [
        a for a in defs.assets or [] if isinstance(a, AssetsDefinition) and a.is_executable
    ]
    unpartitioned = [a for a in executable if a.partitions_def is None]
    partitioned = [a for a in executable if a.partitions_def is not None]
    return unpartitioned, partitioned, dict(defs.resources or {})


def _report(result, label: str) -> Iterator[str]:
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        counts = {k: v.value for k, v in mat.metadata.items() if isinstance(v.value, int)}
        detail = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        partition = f"[{mat.partition}]" if mat.partition else ""
        yield f"materialized {mat.asset_key.to_user_string()}{partition} {detail}".rstrip()
    yield f"{label}: run {result.run_id} {'succeeded' if result.success else 'FAILED'}"


def materialize_catalog_setup() -> list[str]:
    from voyce_assets.catalog_setup import catalog_setup
    from voyce_assets.definitions import defs

    result = materialize(
        [catalog_setup], instance=_instance(), resources=dict(defs.resources or {})
    )
    return list(_report(result, "catalog_setup"))


def materialize_demo(partitions: list[dt.date]) -> list[str]:
    unpartitioned, partitioned, resources = _executable_assets()
    instance = _instance()
    lines: list[str] = []
    if unpartitioned:
        result = materialize(unpartitioned, instance=instance, resources=resources)
        lines += _report(result, "unpartitioned assets")
    for day in partitions if partitioned else []:
        result = materialize(
            partitioned, instance=instance, resources=resources, partition_key=day.isoformat()
        )
        lines += _report(result, f"partition {day}")
    if not partitioned:
        lines.append(
            "no partitioned assets are materializable yet (later stages are lineage-only specs)"
        )
    return lines
