"""The ingestion stage's Definitions: mirrors with their checks, the CDC sensor, the daily full
sync and the reconciliation sweep (its sensor and its checksum job)."""

from dagster import Definitions

from voyce_assets.ingestion.mirrors import raw_mirrors
from voyce_assets.ingestion.reconciliation import (
    raw_reconciliation_checksum_job,
    raw_reconciliation_sweep,
)
from voyce_assets.ingestion.schedules import raw_daily_full_sync, raw_full_sync_job
from voyce_assets.ingestion.sensors import raw_cdc_sensor

defs = Definitions(
    assets=raw_mirrors,
    jobs=[raw_full_sync_job, raw_reconciliation_checksum_job],
    schedules=[raw_daily_full_sync],
    sensors=[raw_cdc_sensor, raw_reconciliation_sweep],
)
