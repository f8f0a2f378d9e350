"""The inference job: champion and challenger predictions for a day or a range, by hand.

The seed's job 6 cadence (hourly) is the asset's automation condition
(``voyce_assets.automation.hourly_after_upstream``): at the top of each hour, today's and
yesterday's partitions whose inputs changed, in the same tick as the voice and text stages
that feed them, so a new upload is predicted in that hour's run.
"""

from dagster import AssetSelection

from voyce_assets.schedules import partitioned_job

inference_job = partitioned_job(
    "batch_inference_job",
    AssetSelection.assets(["ml_models", "predictions"]),
    "Champion and challenger predictions for a day or a range.",
)
