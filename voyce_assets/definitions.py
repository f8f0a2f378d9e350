"""The code location: every asset, job and resource, with resources chosen by VOYCE_ENV."""

from dagster import Definitions

from voyce_assets.analytics import analytics_specs
from voyce_assets.catalog_setup import catalog_setup, catalog_setup_job
from voyce_assets.ml_models import ml_models_specs
from voyce_assets.processed_data import processed_data_specs, voice_assets_processed
from voyce_assets.raw_data import raw_data_specs, raw_mirrors, transcriptions
from voyce_assets.resources import resources_for
from voyce_assets.schedules import raw_daily_full_sync, raw_full_sync_job
from voyce_assets.sensors import raw_cdc_sensor


def build_definitions(env: str | None = None) -> Definitions:
    return Definitions(
        assets=[
            catalog_setup,
            *raw_mirrors,
            transcriptions,
            *raw_data_specs,
            *voice_assets_processed,
            *processed_data_specs,
            *ml_models_specs,
            *analytics_specs,
        ],
        jobs=[catalog_setup_job, raw_full_sync_job],
        schedules=[raw_daily_full_sync],
        sensors=[raw_cdc_sensor],
        resources=resources_for(env),
    )


defs = build_definitions()
