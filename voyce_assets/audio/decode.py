"""Decoding an upload (WAV, MP3, M4A, FLAC, OGG, WEBM) once into 16 kHz mono float32.

PyAV (FFmpeg) decodes every format; its resampler converts any rate and channel layout in
the same pass. The file's real properties (duration, rate, channels, bit rate) are read from
the container first, so a recording over the configured maximum is rejected before it is
decoded, and decoding streams frame by frame into one preallocated buffer (bounded memory).
Every failure is an ``AudioError`` with a message a data engineer can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TARGET_RATE = 16_000
SUPPORTED_FORMATS = ("wav", "mp3", "m4a", "flac", "ogg", "webm")
DEFAULT_MAX_SECONDS = 15 * 60


class AudioError(Exception):
    """This recording cannot be used; the message says why."""


@dataclass(frozen=True)
class AudioInfo:
    path: str
    format: str
    duration_seconds: float
    sample_rate: int  # of the stored file
    channels: int
    bit_rate: int  # bits per second of the stored file (container's, else size / duration)
    file_size_bytes: int


@dataclass(frozen=True)
class DecodedAudio:
    info: AudioInfo
    samples: np.ndarray  # float32 mono at TARGET_RATE
    sample_rate: int = TARGET_RATE


def probe(path: Path) -> AudioInfo:
    """Container facts without decoding the audio."""
    import av

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in SUPPORTED_FORMATS:
        raise AudioError(
            f"unsupported format {fmt or '(none)'!r}; supported: {', '.join(SUPPORTED_FORMATS)}"
        )
    if not path.exists():
        raise AudioError(f"file not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise AudioError(f"empty file (0 bytes): {path.name}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioError(f"no audio stream in {path.name}")
            stream = container.streams.audio[0]
            duration = _duration(container, stream)
            rate = stream.codec_context.sample_rate or stream.rate
            channels = stream.codec_context.channels
            bit_rate = container.bit_rate or stream.codec_context.bit_rate or 0
    except AudioError:
        raise
    except Exception as exc:  # FFmpeg says why: invalid data, truncated header ...
        raise AudioError(f"cannot read {path.name}: {_reason(exc)}") from None
    if not duration or duration <= 0:
        raise AudioError(f"cannot read {path.name}: no duration (corrupt or empty stream)")
    if not bit_rate:
        bit_rate = int(size * 8 / duration)
    return AudioInfo(str(path), fmt, duration, int(rate), int(channels), int(bit_rate), size)


def _duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # FFmpeg errors repeat the path (the row already names the file) and an errno code.
    return re.sub(r"^\[Errno -?\d+\] ", "", text.split(": '")[0])


def decode(path: Path, max_seconds: float = DEFAULT_MAX_SECONDS) -> DecodedAudio:
    """The whole recording as 16 kHz mono float32, or an AudioError."""
    import av

    info = probe(path)
    if info.duration_seconds > max_seconds:
        raise AudioError(
            f"recording is {info.duration_seconds / 60:.1f} min, over the maximum of "
            f"{max_seconds / 60:.1f} min (transcriber max_duration_seconds)"
        )
    # Preallocate from the container's duration (+1 s of slack); memory is bounded by it.
    capacity = int((info.duration_seconds + 1.0) * TARGET_RATE)
    out = np.empty(capacity, dtype=np.float32)
    filled = 0
    resampler = av.AudioResampler(format="flt", layout="mono", rate=TARGET_RATE)
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(audio=0):
                for chunk in resampler.resample(frame):
                    filled = _append(out, filled, chunk.to_ndarray().reshape(-1))
            for chunk in resampler.resample(None):
                filled = _append(out, filled, chunk.to_ndarray().reshape(-1))
    except Exception as exc:
        raise AudioError(f"cannot decode {Path(path).name}: {_reason(exc)}") from None
    if filled == 0:
        raise AudioError(f"cannot decode {Path(path).name}: no audio samples")
    return DecodedAudio(info=info, samples=out[:filled])


def _append(out: np.ndarray, filled: int, chunk: np.ndarray) -> int:
    end = min(filled + len(chunk), len(out))
    out[filled:end] = chunk[: end - filled]
    return end
