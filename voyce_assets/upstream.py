"""The upstream checks: a partitioned step fails, naming them, when an upstream table never
materialized one of its days.

A module above ``tables``, which names the upstream tables by their asset keys. The
launchers make the same check on the host before launching a step on Databricks, whose
ephemeral instance knows no materializations.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from dagster import AssetExecutionContext, AssetKey, Failure

from voyce_assets.tables import table_key

# Set (to "1") in a step's environment by the Databricks launchers on the remote side.
REMOTE_STEP_ENV = "VOYCE_REMOTE_STEP"


def require_upstream(context: AssetExecutionContext, paths: Sequence[str]) -> None:
    """Fail, naming them, when a table in ``paths`` never materialized one of the run's days.

    Not retried: the day is run again once the upstream partition exists. A step launched on
    Databricks has an ephemeral instance that knows no materializations: there the launcher
    made the same check on the host before launching (``upstream_missing``).
    """
    if is_remote_step():
        return
    missing = upstream_missing(context.instance, paths, context.partition_keys)
    if missing:
        raise upstream_failure(missing)


def is_remote_step() -> bool:
    return os.environ.get(REMOTE_STEP_ENV) == "1"


def upstream_missing(instance, upstream: Sequence, partition_keys: Sequence[str]) -> dict:
    """``{path: [day, ...]}`` of the days in ``partition_keys`` each upstream never
    materialized; ``upstream`` holds table paths or asset keys."""
    missing = {}
    for item in upstream:
        key = item if isinstance(item, AssetKey) else table_key(item)
        done = instance.get_materialized_partitions(key)
        keys = [k for k in partition_keys if k not in done]
        if keys:
            missing["/".join(key.path)] = keys
    return missing


def upstream_failure(missing: dict) -> Failure:
    named = "; ".join(f"{path}: {', '.join(keys)}" for path, keys in missing.items())
    return Failure(
        description=f"waiting for upstream partitions never materialized: {named}",
        metadata={"missing": missing},
        allow_retries=False,
    )
