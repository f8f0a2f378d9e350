"""The operations stage's Definitions."""

from dagster import Definitions

from voyce_assets.operations.catalog_setup import catalog_setup, catalog_setup_job
from voyce_assets.operations.maintenance import delta_maintenance_job, delta_maintenance_weekly

defs = Definitions(
    assets=[catalog_setup],
    jobs=[catalog_setup_job, delta_maintenance_job],
    schedules=[delta_maintenance_weekly],
)
