"""Ingestion (notebook 01): the six app tables mirrored from PostgreSQL into ``raw_data``,
the 15-minute CDC sensor and the daily full sync."""
