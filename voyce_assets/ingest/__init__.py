"""Moving app tables from PostgreSQL into Delta: streaming reads, partition writes, merges."""
