"""The text stage's Definitions."""

from dagster import Definitions

from voyce_assets.text.tables import text_specs

defs = Definitions(assets=text_specs)
