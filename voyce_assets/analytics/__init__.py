"""Analytics (notebook 04): daily summaries, organization metrics and cost tracking."""
