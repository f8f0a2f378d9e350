"""Every resource of a deployment (``VOYCE_ENV``): the shared ones and each stage's own.

Shared resources come from ``voyce_assets.resources``; a stage with resources of its own has
a ``<stage>/resources.py`` with ``resources(env)``. Kept apart from ``definitions`` so the
``voyce`` command gets its resources without loading every asset.

``erasure_stores``: how each stage's own store forgets an erased subject (the ``ERASER`` of
each ``<stage>/erasure.py``), collected here so the core never imports a stage.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from voyce_assets.catalog import STAGES
from voyce_assets.privacy.erasure import StoreEraser, erasure_stores_resource
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
    resources["erasure_stores"] = erasure_stores_resource(erasers())
    return resources


def erasers() -> list[StoreEraser]:
    """Every stage's ``ERASER`` (``voyce_assets/<stage>/erasure.py``), in the order data flows."""
    found = []
    for stage in STAGES:
        name = f"voyce_assets.{stage}.erasure"
        if importlib.util.find_spec(name) is not None:
            eraser = getattr(importlib.import_module(name), "ERASER", None)
            if eraser is not None:
                found.append(eraser)
    return found
