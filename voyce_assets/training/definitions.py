"""The training stage's Definitions."""

from dagster import Definitions

from voyce_assets.training.model_registry import model_registry
from voyce_assets.training.training_dataset import training_dataset

defs = Definitions(assets=[training_dataset, model_registry])
