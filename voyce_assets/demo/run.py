"""Materializing the code location for the demo, in process, on the local Dagster instance.

Runs land in ``DAGSTER_HOME`` (default ``$VOYCE_HOME/dagster``), so ``dagster dev`` shows
them afterwards. Which assets run is read from the Definitions: every executable asset,
unpartitioned ones once, partitioned ones for each demo day; lineage-only specs of later
stages are skipped until they become real assets. A person sees one progress line per run
and a summary; each run's per-asset counts go to stdout, which the CLI points at the log.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass

from dagster import AssetKey, AssetsDefinition, DagsterInstance, materialize

from voyce_assets.demo.console import Say
from voyce_assets.settings import ensure_dagster_home


def _instance() -> DagsterInstance:
    ensure_dagster_home()
    return DagsterInstance.get()


def _asks_for_config(asset: AssetsDefinition) -> bool:
    """An asset only run when asked, with what to do (raw_data/erasure_log: who to erase)."""
    schema = asset.op.config_schema
    return schema is not None and schema.as_field().is_required


def _executable_assets() -> tuple[list[AssetsDefinition], list[AssetsDefinition], dict]:
    from voyce_assets.definitions import defs

    executable = [
        a
        for a in defs.assets or []
        if isinstance(a, AssetsDefinition) and a.is_executable and not _asks_for_config(a)
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
    for step, why in _step_failures(result):
        yield f"failed {step}: {why}"
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


@dataclass(frozen=True)
class Planned:
    """One run of the demo: which assets, over which partitions."""

    label: str
    selection: list[AssetKey] | None  # None: every asset given
    assets: list[AssetsDefinition]
    tags: dict[str, str]
    days: int  # partitions per asset (0: unpartitioned)


def plan(
    partitions: list[dt.date],
    unpartitioned: list[AssetsDefinition],
    partitioned: list[AssetsDefinition],
) -> list[Planned]:
    """The demo's runs in order: unpartitioned assets once, then the partitioned ones over
    the whole range as a backfill with the assets' BackfillPolicy would; the weekly models
    are trained once, for the last day, on everything before it, and what depends on them
    runs after, over the range again."""
    runs = []
    if unpartitioned:
        runs.append(Planned("unpartitioned assets", None, unpartitioned, {}, 0))
    if not partitioned:
        return runs
    first, last = min(partitions).isoformat(), max(partitions).isoformat()
    span = {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }
    before, weekly, after = _phases(partitioned)
    for selection, tags, label, days in (
        (before, span, f"{first}..{last}", len(partitions)),
        (weekly, {"dagster/partition": last}, f"weekly training for {last}", 1),
        (after, span, f"after training, {first}..{last}", len(partitions)),
    ):
        if selection:
            runs.append(Planned(label, sorted(selection), partitioned, tags, days))
    return runs


def _step_failures(result) -> Iterator[tuple[str, str]]:
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            data = event.step_failure_data
            why = (data.user_failure_data and data.user_failure_data.description) or (
                data.error and data.error.message
            )
            yield event.step_key, (str(why).strip().splitlines() or ["(no message)"])[0]


def _check_line(evaluation) -> str:
    name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
    why = getattr(evaluation, "description", None)
    if not why and "failing_partitions" in evaluation.metadata:
        why = f"failing partitions {evaluation.metadata['failing_partitions'].value}"
    return f"  failed {name}: {why}" if why else f"  failed {name}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def materialize_demo(partitions: list[dt.date], say: Say = print) -> bool:
    """Run the demo's plan, one progress line per run on ``say``, each run's details on
    stdout (the log), then the summary on ``say``; whether every run succeeded."""
    unpartitioned, partitioned, resources = _executable_assets()
    runs = plan(partitions, unpartitioned, partitioned)
    instance = _instance()
    results = []
    for number, run in enumerate(runs, 1):
        count = len(run.selection) if run.selection is not None else len(run.assets)
        span = f" x {_plural(run.days, 'day')}" if run.days else ""
        say(f"[{number}/{len(runs)}] {run.label}: {_plural(count, 'asset')}{span} ...", end="")
        started = time.monotonic()
        result = materialize(
            run.assets,
            selection=run.selection,
            instance=instance,
            resources=resources,
            tags=run.tags,
            raise_on_error=False,
        )
        for line in _report(result, run.label):
            print(line)
        outcome = "done" if result.success else "FAILED"
        say(f" {outcome} in {time.monotonic() - started:.0f} s")
        results.append(result)

    materialized: dict[str, int] = {}
    evaluations = []
    for result in results:
        for event in result.get_asset_materialization_events():
            key = event.materialization.asset_key.to_user_string()
            materialized[key] = materialized.get(key, 0) + 1
        evaluations += result.get_asset_check_evaluations()
    by_schema: dict[str, int] = {}
    for key in materialized:
        # catalog_setup has no schema: it is counted as what it is.
        schema = key.split("/")[0] if "/" in key else "unpartitioned"
        by_schema[schema] = by_schema.get(schema, 0) + 1
    schemas = ", ".join(f"{schema} {n}" for schema, n in by_schema.items())
    say(
        f"materialized {len(materialized)} assets, {sum(materialized.values())} asset "
        f"partitions in {len(runs)} runs ({schemas})"
    )
    failed = [e for e in evaluations if not e.passed]
    say(f"checks: {len(evaluations) - len(failed)} of {len(evaluations)} passed")
    for evaluation in failed:
        say(_check_line(evaluation))
    for result in results:
        for step, why in _step_failures(result):
            say(f"failed step {step}: {why}")
    if any(r.success for r in results) and any(run.days for run in runs):
        from voyce_assets.analytics.report import write

        lakehouse = resources["lakehouse"].process_config_and_initialize()
        say(f"report: {write(lakehouse, max(partitions))}")
    return all(r.success for r in results)
