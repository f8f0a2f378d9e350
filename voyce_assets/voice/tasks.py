"""The voice stage's work on one chunk of recordings, wherever it runs.

``run_task`` is what a Spark task runs (``mapInPandas``), and what the in-process path runs
chunk after chunk: normalize uploads into processed copies, transcribe copies, or measure
their features. Only one chunk's audio is in memory at a time. A chunk's rows are staged
(``chunks.Stage``) before the task moves on, and a staged chunk is read back instead of being
worked again. One recording's trouble is its own row's error; a chunk that fails as a whole
(the engine raised) gives each of its recordings the error.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from voyce_assets.voice.chunks import Chunk, Stage, WorkItem, chunk_key
from voyce_assets.voice.paths import error_text

# Which input file each kind reads: its size and time name the staged rows.
READS = {"processed": "upload", "transcribe": "processed", "features": "processed"}
PLACEMENT = {"device_index", "cpu_threads"}


@dataclass(frozen=True)
class VoiceJob:
    """What a task needs besides its chunks (small and picklable: it travels to executors)."""

    kind: str  # processed | transcribe | features
    version: str  # what makes the rows: the engine and model, or the feature code's version
    stage_root: str
    settings: dict = field(default_factory=dict)  # the Transcriber's fields

    def key(self, chunk: Chunk) -> str:
        # Settings are part of what made the rows (a new max duration, batch size, language).
        # Which GPU or how many CTranslate2 threads does not (same rows at 1, 2 or the
        # default, measured): a retry on another GPU reuses the chunk.
        settings = {k: v for k, v in self.settings.items() if k not in PLACEMENT}
        made_by = f"{self.version} {sorted(settings.items())}"
        return chunk_key(self.kind, made_by, chunk, READS[self.kind])


@dataclass(frozen=True)
class ChunkDone:
    index: int
    key: str
    rows: int
    reused: bool
    seconds: float


def run_task(job: VoiceJob, chunks: list[Chunk]) -> Iterator[ChunkDone]:
    """Work ``chunks`` in order, staging each chunk's rows; staged chunks are skipped."""
    stage = Stage(job.stage_root)
    work = WORK[job.kind]
    for chunk in chunks:
        key = job.key(chunk)
        started = time.perf_counter()
        if stage.load(key) is not None:
            yield ChunkDone(chunk.index, key, len(chunk.items), True, 0.0)
            continue
        rows = work(job, list(chunk.items))
        stage.save(key, rows)
        yield ChunkDone(chunk.index, key, len(rows), False, time.perf_counter() - started)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def processed_rows(job: VoiceJob, items: list[WorkItem]) -> list[dict]:
    """Each upload's processed copy made (or kept when current): one row each, saying which
    (``processed``: decoded now, ``reused``, ``skipped``) and the error that made it unusable."""
    from voyce_assets.voice.audio.normalize import is_current, load_processed, process_file

    max_seconds = job.settings["max_duration_seconds"]
    rows = []
    for item in items:
        row = {"voice_feedback_id": item.feedback_id, "event_date": item.event_date}
        if item.error:  # nothing is read
            rows.append({**row, "outcome": "skipped", "error": item.error})
            continue
        try:
            upload, copy = Path(item.upload), Path(item.processed)
            current = load_processed(copy)
            if is_current(current, upload):
                outcome = "reused"
            else:
                current = process_file(upload, copy, max_seconds)
                outcome = "processed"
            error = None if current.ok else current.error
        except Exception as exc:  # one recording's trouble never stops the chunk
            outcome, error = "processed", error_text(exc)
        rows.append({**row, "outcome": outcome, "error": error})
    return rows


def _usable_copy(item: WorkItem):
    """(processed copy, None) or (None, why it cannot be used)."""
    from voyce_assets.voice.audio.normalize import load_processed

    if item.error:
        return None, item.error
    try:
        processed = load_processed(Path(item.processed))
    except Exception as exc:  # a name the filesystem refuses
        return None, error_text(exc)
    if processed is None:
        return None, "no processed audio (materialize processed_data/processed_audio first)"
    if not processed.ok:
        return None, processed.error
    return processed, None


def transcription_rows(job: VoiceJob, items: list[WorkItem]) -> list[dict]:
    """One transcriptions row per recording: a transcript, or the reason there is none.

    The chunk's usable copies are transcribed together (``Transcriber.transcribe_batches``:
    packed in ``batch_size`` groups, a failing group costing only its own rows). With
    redaction on, each transcript's personal data is found (``voice/redaction.py``) and its
    audio spans silenced in the copy right away (``_silence``).
    """
    from voyce_assets.feedback import row_id
    from voyce_assets.voice import redaction
    from voyce_assets.voice.audio.normalize import original_samples, read_processed
    from voyce_assets.voice.transcriber import Transcriber

    transcriber = Transcriber(**job.settings)
    rows, audio = [], []
    for item in items:
        row = {
            "id": row_id(item.feedback_id, f"transcription:{transcriber.label}"),
            "voice_feedback_id": item.feedback_id,
            "transcription_text": None,
            "redacted_text": None,
            "pii_entities": None,
            "redaction": redaction.label(transcriber.redact_pii),
            "transcription_engine": transcriber.label,
            "confidence_score": None,
            "language_detected": None,
            "word_count": None,
            "processing_time_ms": None,
            "error_message": None,
            "created_at": _now(),
            "event_date": item.event_date,
            "_audio_seconds": 0.0,
        }
        rows.append(row)
        processed, error = _usable_copy(item)
        if error:
            row["error_message"] = error
            continue
        try:
            # A copy silenced by an earlier run is heard as it was before: made again from
            # its upload, so a transcript never depends on the silence an older one made.
            samples = None
            if processed.silenced:
                samples = original_samples(processed, transcriber.max_duration_seconds)
            if samples is None:
                samples = read_processed(processed)
            audio.append((row, processed, samples))
        except Exception as exc:  # an unreadable copy: its own row only
            row["error_message"] = error_text(exc)
    transcripts = transcriber.transcribe_batches([samples for _, _, samples in audio])
    for (row, processed, samples), transcript in zip(audio, transcripts, strict=True):
        if isinstance(transcript, Exception):  # its group failed: its own rows only
            row["error_message"] = f"transcription failed: {error_text(transcript)}"
            continue
        row.update(
            transcription_text=transcript.text,
            confidence_score=transcript.confidence,
            language_detected=transcript.language,
            word_count=transcript.word_count,
            processing_time_ms=round(transcript.processing_seconds * 1000),
            _audio_seconds=transcript.audio_seconds,
        )
        spans = None
        try:
            row.update(
                redaction.fields(
                    transcript.text,
                    transcript.words,
                    transcript.audio_seconds,
                    transcriber.redact_pii,
                )
            )
        except Exception as exc:  # the redactor failed on this transcript: its row only
            # No redacted text, so nothing later reads it; the whole clip is silenced, since
            # where its personal data is cannot be known. The error row is redone next run.
            row.update(redacted_text=None, pii_entities=None)
            row["redaction"] = redaction.label(transcriber.redact_pii)
            row["error_message"] = f"redaction failed: {error_text(exc)}"
            spans = [(0.0, transcript.audio_seconds)]
        if not transcript.text and not row["error_message"]:
            row["error_message"] = "no speech detected"
        try:
            if spans is None:
                spans = redaction.spans(row["pii_entities"])
            _silence(processed, spans, samples)
        except Exception as exc:  # the copy could not be written: no row says it is silent
            row["error_message"] = f"silencing failed: {error_text(exc)}"
        # After the copy is written: whatever its time says, the row is newer (see _silence).
        row["created_at"] = _now()
    return rows


def _silence(processed, spans: list[tuple[float, float]], samples) -> None:
    """The copy silenced in exactly ``spans`` (its row's personal data; none when redaction
    is off), from ``samples``, what the transcript was made from.

    Written only when there is something to silence or an earlier silencing to undo (a copy
    silenced when redaction was on and now it is off, or the personal data found changed).
    ``normalize.silence`` keeps the copy's modification time and size, so the staged chunk
    key (which stats the copy) and the asset's ``_still_valid`` (copy time <= the row's
    ``created_at``) see the same copy as before and the row is reused by later runs. Where a
    filesystem cannot set the time, the row's ``created_at`` is taken after the write, so the
    row is still newer than its copy.
    """
    from voyce_assets.voice.audio.normalize import silence

    if spans or processed.silenced:
        silence(processed, spans, samples)


def feature_rows(job: VoiceJob, items: list[WorkItem]) -> list[dict]:
    """One audio_features row per usable copy; a skipped recording is a row with ``_skipped``."""
    from voyce_assets.feedback import row_id
    from voyce_assets.voice.audio.features import extract, speech_rate
    from voyce_assets.voice.audio.normalize import read_processed

    rows = []
    for item in items:
        processed, error = _usable_copy(item)
        if error:
            rows.append(_skipped(item, error))
            continue
        try:
            samples = read_processed(processed)
            feat = extract(
                samples,
                processed.gain_db,
                processed.original_rms_dbfs,
                processed.original_peak_dbfs,
            )
        except Exception as exc:  # one unreadable copy never stops the chunk
            rows.append(_skipped(item, f"features failed: {error_text(exc)}"))
            continue
        info = processed.info
        rows.append(
            {
                "id": row_id(item.feedback_id, "audio_features"),
                "voice_feedback_id": item.feedback_id,
                "organization_id": item.organization_id,
                "duration_seconds": round(info["duration_seconds"], 3),
                "sample_rate": info["sample_rate"],
                "bit_rate": info["bit_rate"],
                "channels": info["channels"],
                "avg_volume": feat.avg_volume,
                "max_volume": feat.max_volume,
                "silence_ratio": feat.silence_ratio,
                "speech_rate": speech_rate(item.word_count, feat.voiced_seconds),
                "pitch_mean": feat.pitch_mean,
                "pitch_std": feat.pitch_std,
                "energy_mean": feat.energy_mean,
                "energy_std": feat.energy_std,
                "mfcc_features": feat.mfcc,
                "spectral_features": feat.spectral,
                "created_at": _now(),
                "event_date": item.event_date,
            }
        )
    return rows


def _skipped(item: WorkItem, error: str) -> dict:
    return {
        "voice_feedback_id": item.feedback_id,
        "event_date": item.event_date,
        "_skipped": error[:500],
    }


WORK = {"processed": processed_rows, "transcribe": transcription_rows, "features": feature_rows}
