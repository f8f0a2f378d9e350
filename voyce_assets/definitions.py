"""The code location: every asset, job and resource, with resources chosen by VOYCE_ENV."""

from dagster import Definitions

from voyce_assets.analytics import analytics_specs
from voyce_assets.catalog_setup import catalog_setup, catalog_setup_job
from voyce_assets.ml_models import ml_models_specs
from voyce_assets.processed_data import processed_data_specs
from voyce_assets.raw_data import raw_data_specs
from voyce_assets.resources import resources_for


def build_definitions(env: str | None = None) -> Definitions:
    return Definitions(
        assets=[
            catalog_setup,
            *raw_data_specs,
            *processed_data_specs,
            *ml_models_specs,
            *analytics_specs,
        ],
        jobs=[catalog_setup_job],
        resources=resources_for(env),
    )


defs = build_definitions()
