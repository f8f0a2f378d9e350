"""The code location: each stage's Definitions merged, resources bound by VOYCE_ENV.

A stage (``voyce_assets/<stage>/definitions.py``) exposes ``defs`` (its assets with their
checks, jobs, schedules and sensors) and, when it has resources of its own, ``resources(env)``.
The shared resources come from ``voyce_assets.resources``. Every asset links to its code in
the UI.
"""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import Any

from dagster import BetaWarning, Definitions, with_source_code_references

from voyce_assets.analytics import definitions as analytics
from voyce_assets.inference import definitions as inference
from voyce_assets.ingestion import definitions as ingestion
from voyce_assets.operations import definitions as operations
from voyce_assets.resources import resources_for as shared_resources_for
from voyce_assets.settings import voyce_env
from voyce_assets.text import definitions as text
from voyce_assets.training import definitions as training
from voyce_assets.voice import definitions as voice

# In the order data flows, as catalog.STAGES names them.
STAGES: dict[str, ModuleType] = {
    "ingestion": ingestion,
    "voice": voice,
    "text": text,
    "training": training,
    "inference": inference,
    "analytics": analytics,
    "operations": operations,
}


def resources_for(env: str | None = None) -> dict[str, Any]:
    """Every resource of ``env`` (default ``VOYCE_ENV``): shared ones and each stage's own."""
    env = env or voyce_env()
    resources = shared_resources_for(env)
    for name, stage in STAGES.items():
        own = stage.resources(env) if hasattr(stage, "resources") else {}
        clash = set(own) & set(resources)
        if clash:
            raise ValueError(f"stage {name} rebinds shared resource keys {sorted(clash)}")
        resources.update(own)
    return resources


def _linked(defs: Definitions) -> Definitions:
    """The stage's Definitions with every asset linked to the file and line defining it."""
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
    return Definitions.merge(
        *(_linked(stage.defs) for stage in STAGES.values()),
        Definitions(resources=resources_for(env)),
    )


defs = build_definitions()
