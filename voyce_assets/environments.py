"""Every resource of a deployment (``VOYCE_ENV``): the shared ones and each stage's own.

Shared resources come from ``voyce_assets.resources``; a stage with resources of its own has
a ``<stage>/resources.py`` with ``resources(env)``. Kept apart from ``definitions`` so the
``voyce`` command gets its resources without loading every asset.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from voyce_assets.catalog import STAGES
from voyce_assets.resources import resources_for as shared_resources_for
from voyce_assets.settings import voyce_env


def resources_for(env: str | None = None) -> dict[str, Any]:
    """Every resource of ``env`` (default ``VOYCE_ENV``)."""
    env = env or voyce_env()
    resources = shared_resources_for(env)
    for stage in STAGES:
        name = f"voyce_assets.{stage}.resources"
        if importlib.util.find_spec(name) is None:
            continue
        own = importlib.import_module(name).resources(env)
        clash = set(own) & set(resources)
        if clash:
            raise ValueError(f"stage {stage} rebinds resource keys {sorted(clash)}")
        resources.update(own)
    return resources
