"""Acoustic features of one recording, computed on its processed (16 kHz mono) copy.

Volume figures describe the upload as recorded (the processed copy's level minus the gain
normalization applied); everything else is measured on the copy. Speech rate is words per
minute of *voiced* audio, from the transcript, not zero-crossings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from voyce_assets.voice.audio.decode import TARGET_RATE

FRAME = 1024
HOP = 256
# A frame is silent when the upload itself was quiet there (its own level, before the gain
# normalization applied: room tone at -50 dBFS stays silence however much it was lifted) or
# when it is far below the recording's average loudness (the pauses between words).
SILENCE_FLOOR_DBFS = -45.0  # the upload's own frame level
SILENCE_THRESHOLD_DBFS = -40.0  # relative to the normalized level (-20 dBFS RMS)
PITCH_FMIN, PITCH_FMAX = 65.0, 400.0  # human speaking voice


@dataclass(frozen=True)
class Features:
    avg_volume: float  # dBFS (RMS) of the upload
    max_volume: float  # dBFS (peak) of the upload
    silence_ratio: float
    voiced_seconds: float
    pitch_mean: float | None
    pitch_std: float | None
    energy_mean: float
    energy_std: float
    mfcc: list[float]  # 13 means
    spectral: list[float]  # centroid, rolloff, bandwidth: mean, std each


def _librosa():
    # numba compiles librosa's kernels on first use; a cache makes that once per machine.
    os.environ.setdefault(
        "NUMBA_CACHE_DIR", os.path.join(os.environ.get("VOYCE_HOME", ".voyce"), "numba-cache")
    )
    import librosa

    return librosa


def warm() -> None:
    """Compile librosa's kernels into the numba cache (about 30 s on a machine that has
    none): a process that runs this first, e.g. in the background while the demo seeds,
    saves the features step that time."""
    clip = np.random.default_rng(0).normal(0, 0.1, TARGET_RATE * 2).astype(np.float32)
    extract(clip, 0.0, 0.1, 0.3)


def extract(
    samples: np.ndarray, gain_db: float, original_rms: float, original_peak: float
) -> Features:
    librosa = _librosa()
    y = samples.astype(np.float32)
    rms = librosa.feature.rms(y=y, frame_length=FRAME, hop_length=HOP)[0]
    rms_db = 20 * np.log10(np.maximum(rms, 1e-10))
    original_db = rms_db - (gain_db or 0.0)
    silent = (original_db < SILENCE_FLOOR_DBFS) | (rms_db < SILENCE_THRESHOLD_DBFS)
    voiced_seconds = float((~silent).sum() * HOP / TARGET_RATE)
    f0, voiced_flag, _ = librosa.pyin(
        y,
        fmin=PITCH_FMIN,
        fmax=PITCH_FMAX,
        sr=TARGET_RATE,
        frame_length=FRAME * 2,
        hop_length=HOP * 2,
    )
    voiced_f0 = f0[voiced_flag & ~np.isnan(f0)] if f0 is not None else np.array([])
    mfcc = librosa.feature.mfcc(y=y, sr=TARGET_RATE, n_mfcc=13, n_fft=FRAME, hop_length=HOP)
    centroid = librosa.feature.spectral_centroid(y=y, sr=TARGET_RATE, n_fft=FRAME, hop_length=HOP)[
        0
    ]
    rolloff = librosa.feature.spectral_rolloff(y=y, sr=TARGET_RATE, n_fft=FRAME, hop_length=HOP)[0]
    bandwidth = librosa.feature.spectral_bandwidth(
        y=y, sr=TARGET_RATE, n_fft=FRAME, hop_length=HOP
    )[0]
    energy = rms**2
    return Features(
        avg_volume=round(original_rms, 3),
        max_volume=round(original_peak, 3),
        silence_ratio=round(float(silent.mean()), 4),
        voiced_seconds=round(voiced_seconds, 3),
        pitch_mean=round(float(voiced_f0.mean()), 2) if voiced_f0.size else None,
        pitch_std=round(float(voiced_f0.std()), 2) if voiced_f0.size else None,
        energy_mean=float(energy.mean()),
        energy_std=float(energy.std()),
        mfcc=[float(v) for v in mfcc.mean(axis=1)],
        spectral=[
            float(centroid.mean()),
            float(centroid.std()),
            float(rolloff.mean()),
            float(rolloff.std()),
            float(bandwidth.mean()),
            float(bandwidth.std()),
        ],
    )


def speech_rate(word_count: int | None, voiced_seconds: float) -> float | None:
    """Words per minute of voiced audio."""
    if not word_count or voiced_seconds <= 0:
        return None
    return round(word_count / (voiced_seconds / 60.0), 2)
