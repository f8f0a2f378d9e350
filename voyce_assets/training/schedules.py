"""The seed's job 5: the models retrained weekly, Sunday 02:00 UTC, on everything up to the
day before (the asset retries once; it runs on the GPU step launcher in prod)."""

from dagster import AssetSelection

from voyce_assets.schedules import day_before_schedule, partitioned_job

training_job = partitioned_job(
    "model_training_job",
    AssetSelection.assets(["ml_models", "model_registry"]),
    "Train, track and register the four sentiment classifiers for one day.",
)

model_training_weekly = day_before_schedule(
    "model_training_weekly",
    "0 2 * * 0",
    training_job,
    "training",
    "Sundays 02:00 UTC: the models trained on the data up to Saturday.",
)
