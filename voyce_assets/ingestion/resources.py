"""The ingestion stage's own settings: how far the daily full sync reaches, how long the CDC
waits before it requests a change."""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from voyce_assets.settings import env_or


class IngestionSettings(ConfigurableResource):
    """Tunables of the CDC sensor and the daily full sync (shown, with their source, in the UI)."""

    full_sync_days: int = Field(
        default=3,
        ge=1,
        description="VOYCE_FULL_SYNC_DAYS: days (today included) the daily full sync replaces.",
    )
    cdc_lag_seconds: int = Field(
        default=60,
        ge=0,
        description="VOYCE_CDC_LAG_SECONDS: changes younger than this wait for a later CDC "
        "tick, so a transaction that commits after stamping its rows is not skipped.",
    )


def resources(env: str) -> dict[str, Any]:
    # The same settings in every environment; each can be overridden by its variable.
    return {
        "ingestion_settings": IngestionSettings(
            full_sync_days=env_or("VOYCE_FULL_SYNC_DAYS", 3, int),
            cdc_lag_seconds=env_or("VOYCE_CDC_LAG_SECONDS", 60, int),
        )
    }
