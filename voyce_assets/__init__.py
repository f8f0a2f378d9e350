"""voyce_assets: the Voyce voice-feedback ML pipeline as a Dagster code location."""

__version__ = "0.1.0"
