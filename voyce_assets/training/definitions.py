"""The training stage's Definitions."""

from dagster import Definitions

from voyce_assets.training.tables import training_specs

defs = Definitions(assets=training_specs)
