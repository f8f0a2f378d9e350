"""The operations stage's Definitions."""

from dagster import Definitions

from voyce_assets.operations.catalog_setup import catalog_setup, catalog_setup_job
from voyce_assets.operations.erasure import erasure_cascade, erasure_job, erasure_log
from voyce_assets.operations.maintenance import delta_maintenance_job, delta_maintenance_weekly

defs = Definitions(
    assets=[catalog_setup, erasure_log],
    jobs=[catalog_setup_job, delta_maintenance_job, erasure_job],
    schedules=[delta_maintenance_weekly],
    sensors=[erasure_cascade],
)
