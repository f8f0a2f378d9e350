"""Decoding an upload (WAV, MP3, M4A, FLAC, OGG, WEBM) once into 16 kHz mono float32.

PyAV (FFmpeg) decodes every format; its resampler converts any rate and channel layout in
the same pass. The file's real properties (duration, rate, channels, bit rate) are read from
the container first, so a recording over the configured maximum is rejected before it is
decoded, and decoding streams frame by frame into one preallocated buffer (bounded memory).
Every failure is an ``AudioError`` with a message a data engineer can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
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
    # Streams written without seeking back (browser WebM) state no duration: 0.0 here, and
    # decode() measures it.
    duration = duration if duration and duration > 0 else 0.0
    if not bit_rate and duration:
        bit_rate = int(size * 8 / duration)
    return AudioInfo(str(path), fmt, duration, int(rate), int(channels), int(bit_rate or 0), size)


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
    """The whole recording as 16 kHz mono float32, or an AudioError.

    A duration stated over ``max_seconds`` is rejected before decoding; a stream that turns
    out longer while decoding (no or wrong duration in the header) is stopped at the limit,
    so memory never exceeds ``max_seconds`` of samples.
    """
    import av

    info = probe(path)
    if info.duration_seconds > max_seconds:
        raise AudioError(_too_long(info.duration_seconds, max_seconds))
    limit = int(max_seconds * TARGET_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    resampler = av.AudioResampler(format="flt", layout="mono", rate=TARGET_RATE)
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(audio=0):
                for chunk in resampler.resample(frame):
                    total = _append(chunks, total, chunk, limit, max_seconds)
            for chunk in resampler.resample(None):
                total = _append(chunks, total, chunk, limit, max_seconds)
    except AudioError:
        raise
    except Exception as exc:
        raise AudioError(f"cannot decode {Path(path).name}: {_reason(exc)}") from None
    if total == 0:
        raise AudioError(f"cannot decode {Path(path).name}: no audio samples")
    samples = np.concatenate(chunks)
    if not info.duration_seconds:
        seconds = total / TARGET_RATE
        info = replace(
            info,
            duration_seconds=seconds,
            bit_rate=info.bit_rate or int(info.file_size_bytes * 8 / seconds),
        )
    return DecodedAudio(info=info, samples=samples)


def _too_long(seconds: float, max_seconds: float) -> str:
    def span(s: float) -> str:
        return f"{s / 60:.1f} min" if max_seconds >= 60 else f"{s:.1f} s"

    return (
        f"recording is {span(seconds)}, over the maximum of {span(max_seconds)} "
        "(transcriber max_duration_seconds)"
    )


def _append(chunks: list, total: int, frame, limit: int, max_seconds: float) -> int:
    samples = frame.to_ndarray().reshape(-1).astype(np.float32, copy=False)
    total += len(samples)
    if total > limit:
        raise AudioError(_too_long(total / TARGET_RATE, max_seconds))
    chunks.append(samples)
    return total
