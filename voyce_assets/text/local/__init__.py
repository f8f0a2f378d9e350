"""The offline analyzer's parts: classifier, lexicons and extractors (no key, no download)."""
