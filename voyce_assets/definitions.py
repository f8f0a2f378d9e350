"""The code location: each stage's Definitions merged, resources bound by VOYCE_ENV.

A stage (``voyce_assets/<stage>/definitions.py``, one per ``catalog.STAGES``) exposes
``defs``: its assets with their checks, jobs, schedules and sensors. Resources are bound
here, once, by ``environments.resources_for``. Every asset links to its code in the UI.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

from dagster import BetaWarning, Definitions, with_source_code_references

from voyce_assets.automation import voyce_automation
from voyce_assets.catalog import STAGES
from voyce_assets.environments import resources_for

__all__ = ["build_definitions", "defs", "resources_for", "stage_modules"]


def stage_modules() -> dict[str, ModuleType]:
    """``{stage: its definitions module}``, in the order data flows."""
    return {s: importlib.import_module(f"voyce_assets.{s}.definitions") for s in STAGES}


def _linked(stage: str, defs: Definitions) -> Definitions:
    """The stage's Definitions with every asset linked to the file and line defining it."""
    if defs.resources or defs.executor or defs.loggers:
        # Bound per environment here, never by a stage: fail rather than drop them.
        raise ValueError(f"stage {stage}: Definitions may not set resources, executor or loggers")
    with warnings.catch_warnings():
        # Code references are beta in this Dagster release; they are what the UI links from.
        warnings.filterwarnings("ignore", category=BetaWarning)
        assets = with_source_code_references(list(defs.assets or []))
    return Definitions(
        assets=assets,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        schedules=defs.schedules,
        sensors=defs.sensors,
    )


def build_definitions(env: str | None = None) -> Definitions:
    resources = resources_for(env)
    return Definitions.merge(
        *(
            _linked(stage, _stage_defs(module, resources))
            for stage, module in stage_modules().items()
        ),
        # The one automation sensor: its conditions span the stages (stopped by default).
        Definitions(sensors=[voyce_automation], resources=resources),
    )


def _stage_defs(module: ModuleType, resources: dict) -> Definitions:
    """A stage's ``defs``, or what its ``for_resources`` makes of them where how its assets
    run depends on the deployment's resources (the voice stage's backfill policy)."""
    hook = getattr(module, "for_resources", None)
    return hook(resources) if hook else module.defs


defs = build_definitions()
