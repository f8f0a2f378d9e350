"""One bad recording never stops a partition; a broken engine stops it before any write;
paths from the app database never lead outside the upload volume; levels are the upload's."""

from __future__ import annotations

import datetime as dt
import uuid

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf
from dagster import materialize
from deltalake import DeltaTable

from voyce_assets.catalog import table, volume
from voyce_assets.demo import speech
from voyce_assets.lake import replace_partitions
from voyce_assets.resources.lakehouse import Lakehouse
from voyce_assets.voice.audio.features import extract
from voyce_assets.voice.audio.normalize import PEAK_CEILING_DBFS, dbfs, process_file
from voyce_assets.voice.audio.normalize import read_processed as read_copy
from voyce_assets.voice.audio_features import audio_features
from voyce_assets.voice.compute import VoiceCompute
from voyce_assets.voice.processed_audio import processed_audio
from voyce_assets.voice.transcriber import Transcriber
from voyce_assets.voice.transcriptions import transcriptions

DAY = dt.date(2026, 5, 1)
ORG, OTHER_ORG = str(uuid.uuid4()), str(uuid.uuid4())
FEEDBACK = table("raw_data/voice_feedback")


def _speech(path, text="The delivery was late again and nobody called me."):
    samples, rate = speech.synthesize(text, speech.Speaker("en-us+m3", 160, 45))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(speech.encode(speech.resample(samples, rate, 16000, 1), 16000, "wav"))
    return path


def _mirror(lakehouse: Lakehouse, paths: dict[str, tuple[str, str]]) -> dict[str, str]:
    """A voice_feedback mirror with one row per case: {case: (organization, path)}."""
    when = dt.datetime.combine(DAY, dt.time(12), dt.UTC)
    ids = {case: str(uuid.uuid4()) for case in paths}
    rows = [
        {
            "id": ids[case],
            "organization_id": org,
            "audio_file_path": path,
            "status": "pending",
            "created_at": when,
            "updated_at": when,
            "event_date": DAY,
        }
        for case, (org, path) in paths.items()
    ]
    uri = lakehouse.ensure_table(FEEDBACK)
    schema = pa.schema([f.with_nullable(True) for f in FEEDBACK.arrow_schema()])
    batch = pa.RecordBatch.from_pylist(rows, schema=schema).cast(FEEDBACK.arrow_schema())
    replace_partitions(uri, FEEDBACK, [batch], [DAY])
    return ids


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_unsafe_paths_and_unwritable_names_are_row_errors(tmp_path):
    lakehouse = Lakehouse(catalog="c", root_uri=str(tmp_path / "lake"), volumes_root=str(tmp_path))
    uploads = lakehouse.volume_path(volume("raw_data/audio_files"))
    outside = tmp_path / "outside"
    _speech(outside / "secret.wav")
    _speech(uploads / OTHER_ORG / "theirs.wav")
    _speech(uploads / ORG / "good.wav")
    (uploads / ORG / "link.wav").symlink_to(outside / "secret.wav")
    (uploads / ORG / "loop.wav").symlink_to(uploads / ORG / "loop.wav")
    linked_org = "linked-org"
    (uploads / linked_org).symlink_to(uploads / OTHER_ORG, target_is_directory=True)
    long_name = "x" * 300 + ".wav"
    ids = _mirror(
        lakehouse,
        {
            "good": (ORG, f"{ORG}/good.wav"),
            "dotdot": (ORG, f"{ORG}/../../outside/secret.wav"),
            "absolute": (ORG, str(outside / "secret.wav")),
            "other_org": (ORG, f"{OTHER_ORG}/theirs.wav"),
            "symlink": (ORG, f"{ORG}/link.wav"),
            "org_escape": ("..", "../outside/secret.wav"),
            "org_link": (linked_org, f"{linked_org}/theirs.wav"),
            "link_loop": (ORG, f"{ORG}/loop.wav"),
            "long_name": (ORG, f"{ORG}/{long_name}"),
        },
    )
    before_outside = _files(outside)
    resources = {
        "lakehouse": lakehouse,
        "transcriber": Transcriber(),
        "voice_compute": VoiceCompute(),
        "gpu_step_launcher": None,
    }
    result = materialize(
        [processed_audio, transcriptions, audio_features],
        resources=resources,
        partition_key=DAY.isoformat(),
    )
    assert result.success
    rows = {
        r["voice_feedback_id"]: r
        for r in DeltaTable(lakehouse.table_uri(table("raw_data/transcriptions")))
        .to_pyarrow_table()
        .to_pylist()
    }
    assert len(rows) == len(ids), "every feedback has its row, good or bad"
    assert "delivery" in rows[ids["good"]]["transcription_text"].lower()
    for case in ("dotdot", "absolute", "other_org", "symlink", "org_escape", "org_link"):
        assert rows[ids[case]]["error_message"].startswith("path outside the volume"), case
    assert "File name too long" in rows[ids["long_name"]]["error_message"]
    assert rows[ids["link_loop"]]["error_message"]  # its own row's error, nothing more
    # Nothing was read into or written beside anything outside the volume.
    assert _files(outside) == before_outside
    processed = lakehouse.volume_path(volume("processed_data/processed_audio"))
    assert _files(processed) == [f"{ORG}/good.wav.json", f"{ORG}/good.wav.wav"]
    features = DeltaTable(lakehouse.table_uri(table("processed_data/audio_features")))
    assert [r["voice_feedback_id"] for r in features.to_pyarrow_table().to_pylist()] == [
        ids["good"]
    ]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"model": "/no/such/model"}, "no local faster-whisper weights"),
        pytest.param(
            {"device": "cuda"},
            "CUDA",
            marks=pytest.mark.skipif(
                __import__("ctranslate2").get_cuda_device_count() > 0, reason="CUDA is here"
            ),
        ),
        ({"engine": "whisperx"}, "WHISPER_ENGINE: must be one of"),
    ],
)
def test_a_broken_engine_fails_the_step_before_any_row_is_written(tmp_path, settings, message):
    lakehouse = Lakehouse(catalog="c", root_uri=str(tmp_path / "lake"), volumes_root=str(tmp_path))
    uploads = lakehouse.volume_path(volume("raw_data/audio_files"))
    _speech(uploads / ORG / "good.wav")
    _mirror(lakehouse, {"good": (ORG, f"{ORG}/good.wav")})
    resources = {
        "lakehouse": lakehouse,
        "transcriber": Transcriber(),
        "voice_compute": VoiceCompute(),
        "gpu_step_launcher": None,
    }
    assert materialize([processed_audio], resources=resources, partition_key=DAY.isoformat())
    broken = {**resources, "transcriber": Transcriber(**settings)}
    result = materialize(
        [transcriptions], resources=broken, partition_key=DAY.isoformat(), raise_on_error=False
    )
    assert not result.success
    kinds = [e.event_type_value for e in result.all_events]
    assert "STEP_UP_FOR_RETRY" not in kinds, "a setting is not fixed by retrying"
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert message in str(failure.step_failure_data.error), failure.step_failure_data.error
    assert not lakehouse.exists(table("raw_data/transcriptions")), "nothing was written"


def test_room_tone_is_silence_however_much_normalization_lifts_it(tmp_path):
    # 6 s of room tone at about -50 dBFS: normalization lifts it by some 30 dB, and the
    # silence measured must still be the upload's own: ~100% silent.
    rng = np.random.default_rng(5)
    tone = rng.normal(0, 10 ** (-50 / 20), 16000 * 6).astype(np.float32)
    sf.write(tmp_path / "tone.wav", tone, 16000)
    copy = process_file(tmp_path / "tone.wav", tmp_path / "out" / "tone.wav", 900)
    assert copy.ok and copy.gain_db > 20
    feat = extract(read_copy(copy), copy.gain_db, copy.original_rms_dbfs, copy.original_peak_dbfs)
    assert feat.silence_ratio > 0.95 and feat.voiced_seconds < 0.3
    # Speech recorded quietly is still speech: the pauses are silent, the words are not.
    words = _speech(tmp_path / "words.wav")
    quiet, rate = sf.read(words, dtype="float32")
    sf.write(tmp_path / "quiet.wav", quiet * 10 ** (-12 / 20), rate)
    copy = process_file(tmp_path / "quiet.wav", tmp_path / "out" / "quiet.wav", 900)
    feat = extract(read_copy(copy), copy.gain_db, copy.original_rms_dbfs, copy.original_peak_dbfs)
    assert 0.05 < feat.silence_ratio < 0.6


def test_normalized_copies_peak_at_or_under_the_ceiling(tmp_path):
    # Loud, peaky audio: a click train over a quiet tone wants a large gain that only the
    # peak ceiling stops; the stored 16-bit copy must not round past it.
    t = np.arange(16000 * 3) / 16000
    audio = (0.01 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    audio[::4000] = 0.97
    for scale in (1.0, 0.5, 0.123, 0.0371):
        source = tmp_path / f"peaky{scale}.wav"
        sf.write(source, audio * scale, 16000, subtype="FLOAT")
        copy = process_file(source, tmp_path / "out" / f"peaky{scale}.wav", 900)
        stored, _ = sf.read(copy.wav_path, dtype="float64")
        assert dbfs(float(np.max(np.abs(stored)))) <= PEAK_CEILING_DBFS, scale
