"""The voice stage's Definitions: processed audio, transcriptions, audio features."""

from typing import Any

from dagster import BackfillPolicy, Definitions

from voyce_assets.voice.audio_features import audio_features
from voyce_assets.voice.compute import SparkVoice
from voyce_assets.voice.processed_audio import processed_audio
from voyce_assets.voice.transcriptions import transcriptions

defs = Definitions(assets=[processed_audio, transcriptions, audio_features])


def for_resources(resources: dict[str, Any]) -> Definitions:
    """The stage as a deployment's resources run it. With Spark doing the work, a range
    backfill is one run (one job whose days are spread over the cluster's tasks, instead of
    a cluster started per 31 days); in process, runs stay bounded at the shared policy's."""
    if not isinstance(resources.get("voice_compute"), SparkVoice):
        return defs
    one_run = BackfillPolicy.single_run()
    return Definitions(
        assets=[a.with_attributes(backfill_policy=one_run) for a in defs.assets or []]
    )
