"""Text (notebook 03): sentiment analysis, enhanced transcriptions, embeddings, auto-tags."""
