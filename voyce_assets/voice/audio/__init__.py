"""Audio handling: decoding every supported upload once, normalization and acoustic features."""
