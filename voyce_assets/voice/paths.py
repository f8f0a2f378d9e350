"""Where a voice feedback's upload (``raw_data.audio_files``) and its processed copy
(``processed_data.processed_audio``) live."""

from __future__ import annotations

from pathlib import Path

from voyce_assets.catalog import volume
from voyce_assets.feedback import Feedback
from voyce_assets.resources.lakehouse import Lakehouse


def upload_path(lakehouse: Lakehouse, feedback: Feedback) -> Path:
    return lakehouse.volume_path(volume("raw_data/audio_files")) / feedback.audio_file_path


def processed_path(lakehouse: Lakehouse, feedback: Feedback) -> Path:
    # The upload's path with its extension kept in the name: a.m4a -> a.m4a.wav, so two
    # uploads differing only by extension never share a copy.
    return lakehouse.volume_path(volume("processed_data/processed_audio")) / (
        feedback.audio_file_path + ".wav"
    )
