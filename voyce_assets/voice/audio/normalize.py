"""Loudness normalization and the processed copy every later stage reads.

Each upload is decoded once (``audio.decode``), brought to a common loudness, and stored in
the ``processed_data.processed_audio`` volume as 16 kHz mono 16-bit WAV, next to a small JSON
sidecar with the original file's facts, the gain applied, and the error if the upload could
not be used. Transcription and feature extraction read these copies, never the uploads.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from voyce_assets.voice.audio.decode import TARGET_RATE, AudioError, AudioInfo, decode

TARGET_RMS_DBFS = -20.0
PEAK_CEILING_DBFS = -1.0
SILENCE_DBFS = -60.0  # quieter than this on average: nothing worth amplifying
# A silenced span is zeroed: its peak reads back as exactly 0. Anything at or above this
# (-80 dBFS, a few 16-bit steps) was not silenced.
SILENT_PEAK = 1e-4


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
    # Spans (start, end seconds) zeroed in the copy: the personal data its transcript holds.
    # A fresh copy has none; an older sidecar has no such key.
    silenced: list[list[float]] | None = None

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
    _write_sidecar(target_wav, result)
    return result


def _write_sidecar(wav: Path, result: ProcessedAudio) -> None:
    side = sidecar_path(wav)
    tmp = side.with_suffix(".tmp.json")
    tmp.write_text(json.dumps(asdict(result), sort_keys=True))
    tmp.replace(side)  # a crash never leaves a half-written sidecar


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


def silence(
    processed: ProcessedAudio, spans: list[tuple[float, float]], samples: np.ndarray
) -> ProcessedAudio:
    """Write ``samples`` (the copy's, as stored) back to the copy with ``spans`` (seconds)
    zeroed, and record the spans in its sidecar. The same spans on the same samples give the
    same file: silencing again changes nothing.

    The copy keeps its modification time (and its size: same samples, same header). That
    time is part of the staged chunk keys (``chunks.chunk_key``) and what the transcriptions
    asset compares with a row's ``created_at``: a copy that looked new after every silencing
    would be transcribed again on every run, and a retry would never find its staged rows.

    The sidecar is written first: a kill between the two writes leaves a sidecar that says
    "silenced" over a copy that is not yet, which the next transcription handles (it reads
    such a copy's upload, ``original_samples``) and silences again; the other order could
    leave a silenced copy that nothing knows of. Each file is replaced whole (temporary file
    + rename): a kill never leaves half of one.
    """
    wav = Path(processed.wav_path)
    stat = wav.stat()
    quiet = np.array(samples, dtype=np.float32, copy=True)
    for start, end in spans:
        a = max(0, int(np.floor(start * TARGET_RATE)))
        b = min(len(quiet), int(np.ceil(end * TARGET_RATE)))
        quiet[a:b] = 0.0
    result = replace(processed, silenced=[[float(a), float(b)] for a, b in spans] or None)
    _write_sidecar(wav, result)
    tmp = wav.with_name(f".{wav.name}.silencing.tmp.wav")
    sf.write(tmp, quiet, TARGET_RATE, subtype="PCM_16")
    # A filesystem without settable times: the row's created_at, taken after, covers it.
    with contextlib.suppress(OSError):
        os.utime(tmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    tmp.replace(wav)  # rename keeps the time just set: the copy never looks rewritten
    return result


def original_samples(processed: ProcessedAudio, max_seconds: float) -> np.ndarray | None:
    """The samples a silenced copy held before it was silenced, made again from its upload
    exactly as ``process_file`` made them (decode, normalize, 16-bit); None when the upload
    is no longer the one the copy was made from (or cannot be read)."""
    source = Path(processed.source_path)
    try:
        if not is_current(processed, source):
            return None
        return as_stored(normalize(decode(source, max_seconds).samples)[0])
    except (AudioError, OSError):
        return None


def peak(samples: np.ndarray, start: float, end: float) -> float:
    """The largest absolute sample between ``start`` and ``end`` seconds (0 when empty)."""
    a = max(0, int(np.floor(start * TARGET_RATE)))
    b = min(len(samples), int(np.ceil(end * TARGET_RATE)))
    return float(np.max(np.abs(samples[a:b]))) if b > a else 0.0


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
    "original_samples",
    "peak",
    "process_file",
    "read_processed",
    "silence",
]
