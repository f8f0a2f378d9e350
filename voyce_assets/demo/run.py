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
    # A range run records one materialization per partition, each with its own counts: sum
    # them. Run-wide values (``run_*``) and the table's total row count are the same on every
    # partition: report them once.
    by_asset: dict[str, list] = {}
    for event in result.get_asset_materialization_events():
        by_asset.setdefault(event.materialization.asset_key.to_user_string(), []).append(
            event.materialization
        )
    for key, mats in by_asset.items():
        counts: dict[str, int] = {}
        for mat in mats:
            for name, value in mat.metadata.items():
                if type(value.value) is not int or name.startswith("run_"):
                    continue
                if name == "dagster/row_count":
                    counts[name] = value.value
                else:
                    counts[name] = counts.get(name, 0) + value.value
        detail = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        partitions = f" ({len(mats)} partitions)" if mats[-1].partition else ""
        yield f"materialized {key}{partitions} {detail}".rstrip()
    evaluations = result.get_asset_check_evaluations()
    failed = [f"{e.asset_key.to_user_string()}:{e.check_name}" for e in evaluations if not e.passed]
    if evaluations:
        yield f"checks: {len(evaluations) - len(failed)} of {len(evaluations)} passed" + (
            f"; failed: {', '.join(sorted(set(failed)))}" if failed else ""
        )
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            data = event.step_failure_data
            why = (data.user_failure_data and data.user_failure_data.description) or (
                data.error and data.error.message
            )
            yield f"failed {event.step_key}: {str(why).strip().splitlines()[0]}"
    yield f"{label}: run {result.run_id} {'succeeded' if result.success else 'FAILED'}"


def materialize_catalog_setup() -> list[str]:
    from voyce_assets.definitions import defs
    from voyce_assets.operations.catalog_setup import catalog_setup

    result = materialize(
        [catalog_setup], instance=_instance(), resources=dict(defs.resources or {})
    )
    return list(_report(result, "catalog_setup"))


def _phases(partitioned: list[AssetsDefinition]) -> tuple[set, set, set]:
    """The partitioned asset keys run before the weekly ones, the weekly ones (trained once,
    tag ``voyce/cadence: weekly``), and those downstream of them."""
    from dagster import AssetSelection

    from voyce_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    weekly_selection = AssetSelection.tag("voyce/cadence", "weekly")
    weekly = weekly_selection.resolve(graph)
    after = weekly_selection.downstream(include_self=False).resolve(graph)
    every = {key for a in partitioned for key in a.keys}
    return every - weekly - after, weekly & every, after & every


def failed(lines: list[str]) -> bool:
    """Whether any run the demo started failed (its line ends in FAILED)."""
    return any(line.endswith(" FAILED") for line in lines)


def materialize_demo(partitions: list[dt.date]) -> list[str]:
    unpartitioned, partitioned, resources = _executable_assets()
    instance = _instance()
    lines: list[str] = []
    if unpartitioned:
        result = materialize(unpartitioned, instance=instance, resources=resources)
        lines += _report(result, "unpartitioned assets")
    if partitioned:
        first, last = min(partitions).isoformat(), max(partitions).isoformat()
        span = {
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        }
        before, weekly, after = _phases(partitioned)
        # One run over the whole range, as a backfill with the assets' BackfillPolicy would;
        # the weekly models are trained once, for the last day, on everything before it, and
        # what depends on them runs after, over the range again.
        for selection, tags, label in (
            (before, span, f"partitions {first}..{last}"),
            (weekly, {"dagster/partition": last}, f"weekly assets for {last}"),
            (after, span, f"after the weekly assets, {first}..{last}"),
        ):
            if not selection:
                continue
            result = materialize(
                partitioned,
                selection=sorted(selection),
                instance=instance,
                resources=resources,
                tags=tags,
                raise_on_error=False,
            )
            lines += _report(result, label)
    if not partitioned:
        lines.append(
            "no partitioned assets are materializable yet (later stages are lineage-only specs)"
        )
    else:
        from voyce_assets.analytics.report import write

        lakehouse = resources["lakehouse"].process_config_and_initialize()
        lines.append(f"report: {write(lakehouse, max(partitions))}")
    return lines
