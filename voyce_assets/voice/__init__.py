"""Voice (notebook 02): the processed-audio volume, Whisper transcriptions and audio features."""
