"""The analytics stage's Definitions."""

from dagster import Definitions

from voyce_assets.analytics.tables import analytics_specs

defs = Definitions(assets=analytics_specs)
