"""The voice stage's Definitions: processed audio, transcriptions, audio features."""

from dagster import Definitions

from voyce_assets.voice.audio_features import audio_features
from voyce_assets.voice.processed_audio import processed_audio
from voyce_assets.voice.transcriptions import transcriptions

defs = Definitions(assets=[processed_audio, transcriptions, audio_features])
