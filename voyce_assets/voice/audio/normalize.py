"""Loudness normalization and the processed copy every later stage reads.

Each upload is decoded once (``audio.decode``), brought to a common loudness, and stored in
the ``processed_data.processed_audio`` volume as 16 kHz mono 16-bit WAV, next to a small JSON
sidecar with the original file's facts, the gain applied, and the error if the upload could
not be used. Transcription and feature extraction read these copies, never the uploads.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from voyce_assets.voice.audio.decode import TARGET_RATE, AudioError, AudioInfo, decode

TARGET_RMS_DBFS = -20.0
PEAK_CEILING_DBFS = -1.0
SILENCE_DBFS = -60.0  # quieter than this on average: nothing worth amplifying


def dbfs(value: float) -> float:
    return float(20 * np.log10(max(value, 1e-10)))


@dataclass(frozen=True)
class ProcessedAudio:
    """What the sidecar holds."""

    source_path: str
    wav_path: str | None
    error: str | None
    info: dict | None  # AudioInfo of the upload
    original_rms_dbfs: float | None = None
    original_peak_dbfs: float | None = None
    gain_db: float | None = None
    source_size: int | None = None
    source_mtime_ns: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def normalize(samples: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """(normalized samples, original RMS dBFS, original peak dBFS, gain dB)."""
    rms = dbfs(float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))))
    peak = dbfs(float(np.max(np.abs(samples))))
    if rms <= SILENCE_DBFS:
        return samples, rms, peak, 0.0
    # Reach the target loudness unless that would clip: the peak ceiling wins.
    gain = min(TARGET_RMS_DBFS - rms, PEAK_CEILING_DBFS - peak)
    return (samples * (10 ** (gain / 20))).astype(np.float32), rms, peak, gain


def as_stored(samples: np.ndarray) -> np.ndarray:
    """``samples`` exactly as a processed copy holds them: 16-bit PCM, read back as float32.

    ``voyce transcribe`` feeds Whisper these, so it hears what the transcriptions asset hears.
    """
    buffer = io.BytesIO()
    sf.write(buffer, samples, TARGET_RATE, subtype="PCM_16", format="WAV")
    buffer.seek(0)
    return sf.read(buffer, dtype="float32")[0]


def sidecar_path(wav_path: Path) -> Path:
    return wav_path.with_suffix(".json")


def process_file(source: Path, target_wav: Path, max_seconds: float) -> ProcessedAudio:
    """Decode ``source`` once, normalize it and write the copy and its sidecar."""
    target_wav.parent.mkdir(parents=True, exist_ok=True)
    stat = source.stat() if source.exists() else None
    common = {
        "source_path": str(source),
        "source_size": stat.st_size if stat else None,
        "source_mtime_ns": stat.st_mtime_ns if stat else None,
    }
    try:
        audio = decode(source, max_seconds)
    except AudioError as exc:
        result = ProcessedAudio(wav_path=None, error=str(exc), info=None, **common)
    else:
        samples, rms, peak, gain = normalize(audio.samples)
        tmp = target_wav.with_suffix(".tmp.wav")
        sf.write(tmp, samples, TARGET_RATE, subtype="PCM_16")
        tmp.replace(target_wav)  # readers never see a half-written copy
        result = ProcessedAudio(
            wav_path=str(target_wav),
            error=None,
            info=asdict(audio.info),
            original_rms_dbfs=round(rms, 3),
            original_peak_dbfs=round(peak, 3),
            gain_db=round(gain, 3),
            **common,
        )
    side = sidecar_path(target_wav)
    tmp = side.with_suffix(".tmp.json")
    tmp.write_text(json.dumps(asdict(result), sort_keys=True))
    tmp.replace(side)  # a crash never leaves a half-written sidecar
    return result


def load_processed(target_wav: Path) -> ProcessedAudio | None:
    """The sidecar of a processed copy; None when there is none (or it is unreadable)."""
    side = sidecar_path(target_wav)
    try:
        return ProcessedAudio(**json.loads(side.read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def is_current(processed: ProcessedAudio | None, source: Path) -> bool:
    """A good copy made from the upload as it is now (same size and modification time).

    Failures are never current: decoding a bad file again is cheap, and a failure may have
    been transient or due to a setting (max_duration_seconds) that has changed since.
    """
    if processed is None or not processed.ok:
        return False
    stat = source.stat() if source.exists() else None
    now = (stat.st_size, stat.st_mtime_ns) if stat else (None, None)
    return (processed.source_size, processed.source_mtime_ns) == now


def read_processed(processed: ProcessedAudio) -> np.ndarray:
    samples, rate = sf.read(processed.wav_path, dtype="float32")
    if rate != TARGET_RATE:
        raise AudioError(
            f"processed copy {processed.wav_path} is {rate} Hz, expected {TARGET_RATE}"
        )
    return samples


__all__ = [
    "AudioInfo",
    "ProcessedAudio",
    "as_stored",
    "is_current",
    "load_processed",
    "process_file",
    "read_processed",
]
