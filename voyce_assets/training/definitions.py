"""The training stage's Definitions."""

from dagster import Definitions

from voyce_assets.training.model_registry import model_registry
from voyce_assets.training.schedules import model_training_weekly, training_job
from voyce_assets.training.training_dataset import training_dataset

defs = Definitions(
    assets=[training_dataset, model_registry],
    jobs=[training_job],
    schedules=[model_training_weekly],
)
