"""Scripts that run on a Databricks cluster, uploaded by the launchers (never imported by
the code location)."""
