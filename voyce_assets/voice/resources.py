"""The voice stage's own resource per environment: the Transcriber (the notebooks'
``WHISPER_ENGINE``, ``WHISPER_MODEL_SIZE``, ``WHISPER_DEVICE`` and ``BATCH_SIZE``)."""

from __future__ import annotations

from typing import Any

from dagster import EnvVar

from voyce_assets.settings import catalog_name, from_env, voyce_home
from voyce_assets.voice.transcriber import Transcriber


def resources(env: str) -> dict[str, Any]:
    if env == "prod":
        # A GPU job cluster: faster-whisper in float16 on CUDA, the size a setting must name.
        return {
            "transcriber": Transcriber(
                engine="faster-whisper",
                model=EnvVar("WHISPER_MODEL_SIZE"),
                device="cuda",
                models_dir=f"/Volumes/{catalog_name('prod')}/ml_models/artifacts/whisper",
                **from_env(batch_size=("BATCH_SIZE", int)),
            )
        }
    # Locally the Transcriber's defaults (tiny.en from a wheel, int8 on the CPU) unless set.
    return {
        "transcriber": Transcriber(
            models_dir=str(voyce_home() / "models"),
            **from_env(
                engine="WHISPER_ENGINE",
                model="WHISPER_MODEL_SIZE",
                device="WHISPER_DEVICE",
                batch_size=("BATCH_SIZE", int),
            ),
        )
    }
