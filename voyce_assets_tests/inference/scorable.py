"""Feedback the inference stage can score: enhanced transcriptions and audio features rows
(harness form) with random values, optionally shifted, plus the text stage's labels."""

from __future__ import annotations

import datetime as dt

import numpy as np

from voyce_assets_tests.analytics.harness import A, uid

LABELS = ("positive", "neutral", "negative")


def feedback_rows(
    days: list[dt.date], per_day: int, seed: int = 0, shift: dict | None = None, tag="p"
):
    """``{table path: rows}`` for ``per_day`` feedback a day. ``shift``: day -> amount added
    (in standard deviations) to the key scalar features of that day's feedback, and (times
    1.5) to the embedding's first value, which the synthetic models read as "positive"."""
    rng = np.random.default_rng(seed)
    shift = shift or {}
    out = {
        "processed_data/enhanced_transcriptions": [],
        "processed_data/audio_features": [],
        "raw_data/sentiment_analysis": [],
    }
    for day in days:
        s = shift.get(day, 0.0)
        for n in range(per_day):
            fid = uid(f"{tag}{day}:{n}")
            label = LABELS[int(rng.integers(3))]
            out["processed_data/enhanced_transcriptions"].append(
                {
                    "voice_feedback_id": fid,
                    "organization_id": A,
                    "word_count": int(max(1, rng.normal(40 + 15 * s, 15))),
                    "sentence_count": int(rng.integers(1, 5)),
                    "avg_word_length": float(rng.normal(4.5 + 0.5 * s, 0.5)),
                    "unique_word_count": int(rng.integers(5, 30)),
                    "topics": ["delivery"] * int(rng.integers(0, 3)),
                    "key_phrases": ["late parcel"],
                    "text_embedding": _embedding(rng, s),
                    "day": day,
                }
            )
            out["processed_data/audio_features"].append(
                {
                    "voice_feedback_id": fid,
                    "duration_seconds": float(rng.normal(20 + 8 * s, 8)),
                    "sample_rate": 16000,
                    "channels": 1,
                    "avg_volume": float(rng.normal(-20 + 5 * s, 5)),
                    "max_volume": -3.0,
                    "silence_ratio": float(rng.uniform(0.1, 0.4)),
                    "speech_rate": float(rng.normal(150 + 30 * s, 30)),
                    "pitch_mean": float(rng.normal(180, 30)),
                    "pitch_std": 20.0,
                    "energy_mean": float(rng.normal(0.1, 0.02)),
                    "energy_std": 0.02,
                    "mfcc_features": [float(v) for v in rng.normal(size=13)],
                    "spectral_features": [float(v) for v in rng.normal(1000, 100, size=6)],
                    "day": day,
                }
            )
            out["raw_data/sentiment_analysis"].append(
                {
                    "voice_feedback_id": fid,
                    "sentiment_label": label,
                    "sentiment_confidence": 0.9,
                    "provider": "local",
                    "model_used": "local-lr",
                    "day": day,
                }
            )
    return out


def _embedding(rng, shift: float) -> list[float]:
    values = rng.normal(size=384)
    values[0] += 1.5 * shift
    return [float(v) for v in values]
