"""The ingestion stage's own settings: how far the daily full sync reaches, how long the CDC
waits before it requests a change, how often the sweep checksums each partition."""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from voyce_assets.ingestion.big_sync import BigSync, LocalSparkSync
from voyce_assets.settings import ConfigError, from_env


class IngestionSettings(ConfigurableResource):
    """Tunables of the CDC sensor and the daily full sync (shown, with their source, in the UI)."""

    # No pydantic bounds: a field fed by an EnvVar is validated against a stand-in value when
    # the code location loads. The values are checked where they are used (``check``).
    full_sync_days: int = Field(
        default=3,
        description="VOYCE_FULL_SYNC_DAYS: days (today included) the daily full sync replaces; "
        "at least 1.",
    )
    cdc_lag_seconds: int = Field(
        default=60,
        description="VOYCE_CDC_LAG_SECONDS: whole seconds a change waits before the CDC sensor "
        "requests it, so a transaction that commits after stamping its rows is not skipped.",
    )

    cdc_max_runs: int = Field(
        default=4,
        description="VOYCE_CDC_MAX_RUNS: runs one CDC tick may request at most; changed days "
        "beyond that share runs over ranges (logins that touch every user's creation day make "
        "a few runs, not one per day); at least 1.",
    )

    checksum_every_days: int = Field(
        default=7,
        description="VOYCE_CHECKSUM_EVERY_DAYS: the reconciliation sweep checksums every "
        "partition's content once in this many days (a rolling slice each day); at least 1.",
    )

    def check(self) -> IngestionSettings:
        """These settings, or a ConfigError naming the variable that is out of range."""
        if self.full_sync_days < 1:
            raise ConfigError(
                "VOYCE_FULL_SYNC_DAYS", f"must be 1 or more, got {self.full_sync_days}"
            )
        if self.checksum_every_days < 1:
            raise ConfigError(
                "VOYCE_CHECKSUM_EVERY_DAYS", f"must be 1 or more, got {self.checksum_every_days}"
            )
        if self.cdc_max_runs < 1:
            raise ConfigError("VOYCE_CDC_MAX_RUNS", f"must be 1 or more, got {self.cdc_max_runs}")
        if self.cdc_lag_seconds < 0:
            raise ConfigError(
                "VOYCE_CDC_LAG_SECONDS", f"must be 0 or more, got {self.cdc_lag_seconds}"
            )
        return self


def big_sync(env: str) -> BigSync:
    """Where a full sync above ``VOYCE_SPARK_SYNC_MIN_ROWS`` runs: a local Spark session, or
    a CPU job cluster on Databricks."""
    settings = from_env(
        min_rows=("VOYCE_SPARK_SYNC_MIN_ROWS", int),
        num_partitions=("VOYCE_SPARK_SYNC_PARTITIONS", int),
    )
    if env == "prod":
        from voyce_assets.ingestion.big_sync_databricks import databricks_spark_sync

        return databricks_spark_sync(**settings)
    return LocalSparkSync(**settings, **from_env(master="VOYCE_SPARK_SYNC_MASTER"))


def resources(env: str) -> dict[str, Any]:
    # The same settings in every environment; each can be overridden by its variable.
    return {
        "big_sync": big_sync(env),
        "ingestion_settings": IngestionSettings(
            **from_env(
                full_sync_days=("VOYCE_FULL_SYNC_DAYS", int),
                cdc_lag_seconds=("VOYCE_CDC_LAG_SECONDS", int),
                cdc_max_runs=("VOYCE_CDC_MAX_RUNS", int),
                checksum_every_days=("VOYCE_CHECKSUM_EVERY_DAYS", int),
            )
        ),
    }
