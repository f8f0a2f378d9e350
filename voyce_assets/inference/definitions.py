"""The inference stage's Definitions."""

from dagster import Definitions

from voyce_assets.inference.predictions import predictions
from voyce_assets.inference.schedules import inference_job

defs = Definitions(assets=[predictions], jobs=[inference_job])
