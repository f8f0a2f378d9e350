"""The operations stage's Definitions."""

from dagster import Definitions

from voyce_assets.operations.catalog_setup import catalog_setup, catalog_setup_job

defs = Definitions(assets=[catalog_setup], jobs=[catalog_setup_job])
