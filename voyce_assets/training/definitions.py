"""The training stage's Definitions."""

from dagster import Definitions

from voyce_assets.training.tables import training_specs
from voyce_assets.training.training_dataset import training_dataset

defs = Definitions(assets=[training_dataset, *training_specs])
