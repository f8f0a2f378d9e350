"""The inference stage's Definitions."""

from dagster import Definitions

from voyce_assets.inference.tables import inference_specs

defs = Definitions(assets=inference_specs)
