"""Real synthetic speech (eSpeak NG via ctypes) and the audio encodings the app uploads.

The ``espeakng-loader`` wheel ships ``libespeak-ng.so`` and its voice data, so no system
package is needed. eSpeak keeps global state, hence one lock around every synthesis.
"""

from __future__ import annotations

import ctypes
import io
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE = 1
_ESPEAK_PITCH = 3
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)

_lock = threading.Lock()
_engine: _Espeak | None = None


@dataclass(frozen=True)
class Speaker:
    voice: str  # eSpeak voice with variant, e.g. "en-us+m3"
    rate_wpm: int = 165
    pitch: int = 50  # 0..100


class _Espeak:
    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data_parent = str(Path(espeakng_loader.get_data_path()).parent).encode()
        self.sample_rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent, 0)
        if self.sample_rate <= 0:
            raise RuntimeError("eSpeak NG failed to initialize")
        self._chunks: list[np.ndarray] = []
        # Keep a reference: ctypes callbacks die with their Python object.
        self._callback = _SYNTH_CALLBACK(self._on_samples)
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]

    def _on_samples(self, wav, count, _events) -> int:
        if wav and count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def synthesize(self, text: str, speaker: Speaker) -> np.ndarray:
        if self.lib.espeak_SetVoiceByName(speaker.voice.encode()) != 0:
            raise ValueError(f"unknown eSpeak voice {speaker.voice!r}")
        self.lib.espeak_SetParameter(_ESPEAK_RATE, speaker.rate_wpm, 0)
        self.lib.espeak_SetParameter(_ESPEAK_PITCH, speaker.pitch, 0)
        data = text.encode("utf-8") + b"\0"
        # eSpeak adds random noise; a seed per text keeps it reproducible (its other hidden
        # state is handled by rendering in fresh processes, see demo.seed).
        self.lib.espeak_ng_SetRandSeed(ctypes.c_long(zlib.crc32(data)))
        self._chunks = []
        err = self.lib.espeak_Synth(data, len(data), 0, 0, 0, _ESPEAK_CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError(f"eSpeak NG synthesis failed (error {err})")
        self.lib.espeak_Synchronize()
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)


def synthesize(text: str, speaker: Speaker) -> tuple[np.ndarray, int]:
    """Speak ``text``; returns float32 mono samples in [-1, 1] and the sample rate (22050)."""
    global _engine
    with _lock:
        if _engine is None:
            _engine = _Espeak()
        pcm = _engine.synthesize(text, speaker)
        rate = _engine.sample_rate
    return pcm.astype(np.float32) / 32768.0, rate


def resample(samples: np.ndarray, rate: int, new_rate: int, channels: int = 1) -> np.ndarray:
    """Band-limited resampling with FFmpeg's swresample (via PyAV); returns (frames, channels)."""
    import av

    if rate == new_rate and channels == 1:
        return samples.reshape(-1, 1)
    frame = av.AudioFrame.from_ndarray(
        (np.clip(samples, -1, 1) * 32767).astype(np.int16).reshape(1, -1),
        format="s16",
        layout="mono",
    )
    frame.sample_rate = rate
    layout = "stereo" if channels == 2 else "mono"
    resampler = av.AudioResampler(format="s16", layout=layout, rate=new_rate)
    out = [f.to_ndarray() for f in resampler.resample(frame)]
    out += [f.to_ndarray() for f in resampler.resample(None)]
    interleaved = np.concatenate(out, axis=1).reshape(-1, channels)
    return interleaved.astype(np.float32) / 32768.0


def encode(samples: np.ndarray, rate: int, fmt: str) -> bytes:
    """Encode (frames, channels) float samples as ``wav``, ``mp3`` or ``m4a`` (AAC) bytes."""
    if fmt == "wav":
        buf = io.BytesIO()
        sf.write(buf, samples, rate, format="WAV", subtype="PCM_16")
        return buf.getvalue()
    if fmt == "mp3":
        buf = io.BytesIO()
        sf.write(buf, samples, rate, format="MP3", subtype="MPEG_LAYER_III")
        return buf.getvalue()
    if fmt == "m4a":
        return _encode_aac(samples, rate)
    raise ValueError(f"unsupported demo audio format {fmt!r}")


def _encode_aac(samples: np.ndarray, rate: int) -> bytes:
    import av

    channels = samples.shape[1] if samples.ndim == 2 else 1
    layout = "stereo" if channels == 2 else "mono"
    planar = np.ascontiguousarray(samples.reshape(-1, channels).T.astype(np.float32))
    buf = io.BytesIO()
    # bitexact: no encoder version or creation time in the file, so the demo is reproducible.
    with av.open(buf, "w", format="ipod", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("aac", rate=rate, layout=layout)
        stream.bit_rate = 64000
        frame_size = 1024
        for start in range(0, planar.shape[1], frame_size):
            frame = av.AudioFrame.from_ndarray(
                planar[:, start : start + frame_size], format="fltp", layout=layout
            )
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()
