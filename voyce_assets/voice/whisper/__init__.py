"""Whisper weights: reading CTranslate2 models and rebuilding openai-whisper checkpoints."""
