"""The voice stage's own resources per environment: the Transcriber (the notebooks'
``WHISPER_ENGINE``, ``WHISPER_MODEL_SIZE``, ``WHISPER_DEVICE`` and ``BATCH_SIZE``, and
``WHISPER_LANGUAGE`` when every recording is in one known language, ``VOYCE_REDACT_PII=false``
where a deployment must keep personal data unredacted) and ``voice_compute``,
where the heavy work runs: the cluster's Spark in prod, this process on a laptop unless
``VOYCE_SPARK_MASTER`` names a Spark master (``local[2]``)."""

from __future__ import annotations

import os
from typing import Any

from dagster import EnvVar

from voyce_assets.settings import catalog_name, from_env, redact_pii, voyce_home
from voyce_assets.voice.compute import SparkVoice, VoiceCompute
from voyce_assets.voice.transcriber import Transcriber


def voice_compute(env: str) -> VoiceCompute:
    spark = from_env(master="VOYCE_SPARK_MASTER", tasks=("VOYCE_SPARK_TASKS", int))
    if env == "prod":
        # The step runs on the cluster's driver: its SparkSession spreads the work.
        return SparkVoice(**spark)
    return SparkVoice(**spark) if "master" in spark else VoiceCompute()


def resources(env: str) -> dict[str, Any]:
    if env == "prod":
        volumes = os.environ.get("VOYCE_VOLUMES_ROOT", "/Volumes")
        # A GPU job cluster: faster-whisper in float16 on CUDA, the size a setting must name.
        return {
            "voice_compute": voice_compute(env),
            "transcriber": Transcriber(
                model=EnvVar("WHISPER_MODEL_SIZE"),
                models_dir=f"{volumes}/{catalog_name('prod')}/ml_models/artifacts/whisper",
                **{
                    "engine": "faster-whisper",
                    "device": "cuda",
                    **from_env(
                        engine="WHISPER_ENGINE",
                        device="WHISPER_DEVICE",
                        batch_size=("BATCH_SIZE", int),
                        language="WHISPER_LANGUAGE",
                    ),
                    "redact_pii": redact_pii(),
                },
            ),
        }
    # Locally the Transcriber's defaults (tiny.en from a wheel, int8 on the CPU) unless set.
    return {
        "voice_compute": voice_compute(env),
        "transcriber": Transcriber(
            models_dir=str(voyce_home() / "models"),
            **from_env(
                engine="WHISPER_ENGINE",
                model="WHISPER_MODEL_SIZE",
                device="WHISPER_DEVICE",
                batch_size=("BATCH_SIZE", int),
                language="WHISPER_LANGUAGE",
            ),
            redact_pii=redact_pii(),
        ),
    }
