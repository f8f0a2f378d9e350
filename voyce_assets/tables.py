"""Dagster's view of the catalog: asset keys, shared partitions, metadata, one way to build.

Every table asset, whichever stage writes it, is built by ``table_asset`` (or declared by
``table_spec`` until its stage lands), so each gets the same key (``[schema, table]``), group
(its stage), partitions, backfill policy, column-schema metadata, kinds and owner tag from
the catalog spec. ``volume_asset`` does the same for a volume a stage writes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from dagster import AssetCheckSpec, AssetKey, AssetSpec, MetadataValue, asset

from voyce_assets.catalog import Owner, Table, Volume, table, volume
from voyce_assets.partitions import daily_backfill_policy, daily_partitions
from voyce_assets.settings import catalog_name


def table_key(path: str) -> AssetKey:
    return AssetKey(list(table(path).key))


def volume_key(path: str) -> AssetKey:
    return AssetKey(list(volume(path).key))


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


def _keys(paths: Iterable[str]) -> list[AssetKey]:
    """Asset keys of catalog tables or volumes named ``schema/name``."""
    out = []
    for path in paths:
        try:
            out.append(table_key(path))
        except KeyError:
            out.append(volume_key(path))
    return out


def _shared(spec: Table) -> dict[str, Any]:
    """The keywords every asset of a table has, built or lineage-only."""
    return {
        "key": table_key(spec.path),
        "group_name": spec.stage,
        "partitions_def": daily_partitions,
        "metadata": table_metadata(spec),
        "tags": {"voyce/owner": spec.owner.value},
    }


def _decorator(**kwargs: Any) -> Callable:
    def decorate(fn: Callable):
        # BackfillPolicy is beta in this Dagster release; it is exactly what a 30-day backfill
        # needs. The beta warning is silenced here, for these definitions only.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*backfill_policy.*")
            return asset(**kwargs)(fn)

    return decorate


def table_asset(
    path: str,
    *,
    deps: Sequence[str | AssetKey] = (),
    description: str = "",
    kinds: Iterable[str] = (),
    checks: Mapping[str, str] | None = None,
    blocking_checks: Iterable[str] = (),
    **asset_kwargs: Any,
) -> Callable:
    """``@asset`` for the catalog table ``path``: key, stage group, daily partitions, backfill
    policy, metadata, kinds and owner tag from the spec.

    ``checks`` maps check names to descriptions (the asset returns their results);
    ``blocking_checks`` names those that stop downstream assets when they fail.
    """
    spec = table(path)
    key = table_key(path)
    blocking = set(blocking_checks)
    shared = _shared(spec)
    shared["tags"] = {**shared["tags"], **asset_kwargs.pop("tags", {})}
    return _decorator(
        **shared,
        deps=[d if isinstance(d, AssetKey) else _keys([d])[0] for d in deps],
        description="\n\n".join(p for p in (spec.description, description) if p),
        backfill_policy=daily_backfill_policy,
        kinds=table_kinds(spec) | set(kinds),
        check_specs=[
            AssetCheckSpec(name, asset=key, description=text, blocking=name in blocking)
            for name, text in (checks or {}).items()
        ],
        **asset_kwargs,
    )


def volume_asset(
    path: str, *, deps: Sequence[str] = (), description: str = "", **asset_kwargs: Any
) -> Callable:
    """``@asset`` for the catalog volume ``path``, written per daily partition by its stage.

    ``description`` replaces the catalog's one-line description of the volume.
    """
    spec: Volume = volume(path)
    if spec.stage is None:
        raise ValueError(f"volume {path} is written by the app, not by an asset")
    return _decorator(
        key=volume_key(path),
        group_name=spec.stage,
        partitions_def=daily_partitions,
        backfill_policy=daily_backfill_policy,
        deps=_keys(deps),
        kinds={"volume"},
        description=description or spec.description,
        **asset_kwargs,
    )


def table_spec(path: str, deps: Sequence[str] = ()) -> AssetSpec:
    """A table whose stage has not landed: visible in graph and lineage, never materialized."""
    spec = table(path)
    return AssetSpec(
        **_shared(spec),
        deps=_keys(deps),
        description=f"{spec.description}\n\nNot materializable yet: built by the {spec.stage} "
        "stage.",
        kinds=table_kinds(spec),
    )


def partitioned_asset(
    key: AssetKey, *, group: str, deps: Sequence[str] = (), **asset_kwargs: Any
) -> Callable:
    """``@asset`` for something a stage writes outside the catalog (the app database, an
    index), on the shared daily partitions and backfill policy; ``deps`` are catalog paths."""
    return _decorator(
        key=key,
        group_name=group,
        partitions_def=daily_partitions,
        backfill_policy=daily_backfill_policy,
        deps=_keys(deps),
        **asset_kwargs,
    )
