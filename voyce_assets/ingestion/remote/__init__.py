"""Scripts that run on a Databricks cluster for the ingestion stage, uploaded by big_sync
(never imported by the code location)."""
