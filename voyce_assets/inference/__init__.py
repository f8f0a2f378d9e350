"""Inference (notebook 06): batch predictions of the champion and challenger, A/B, drift."""
