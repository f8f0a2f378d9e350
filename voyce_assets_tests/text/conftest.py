"""Text-stage fixtures: a lakehouse holding transcripts as the voice stage writes them, and
analyzers wired to a cache of their own (the fitted local classifier is shared per session:
fitting it is the same work in every test)."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pyarrow as pa
import pytest

from voyce_assets.catalog import table
from voyce_assets.feedback import row_id
from voyce_assets.lake import replace_partitions
from voyce_assets.privacy import pii
from voyce_assets.resources import Lakehouse, Pricing
from voyce_assets.text.cache import TextCache
from voyce_assets.text.embedder import Embedder
from voyce_assets.text.providers.local import LocalAnalyzer

DAYS = (dt.date(2026, 11, 20), dt.date(2026, 11, 21))
ORGS = ("00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b")
TAGS = {
    "dagster/asset_partition_range_start": DAYS[0].isoformat(),
    "dagster/asset_partition_range_end": DAYS[1].isoformat(),
}

# (text, transcription error): what the voice stage handed over, day by day.
TRANSCRIPTS = {
    DAYS[0]: [
        ("the courier left my parcel in the rain and it was soaked, not happy", None),
        ("Checkout took two taps, honestly the smoothest app I use.", None),
        ("um how do I change the card on my account", None),
        ("app keeps crashing every time I open my cart, so annoying", None),
        (None, "cannot read audio: invalid data found"),
        ("", "no speech detected"),
    ],
    DAYS[1]: [
        ("I was billed twice this month and support still has not answered", None),
        ("great prices and the delivery was on time, thank you", None),
        ("the jacket's zip broke after a week", None),
    ],
}


def redacted_fields(text: str | None) -> dict:
    if text is None:
        return {"redacted_text": None, "pii_entities": None, "redaction": pii.VERSION}
    found = pii.redact(text)
    return {
        "redacted_text": found.text,
        "pii_entities": json.dumps([e.as_dict() for e in found.entities]),
        "redaction": pii.VERSION,
    }


def feedback_id(day: dt.date, n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"test-feedback:{day}:{n}"))


def _write(lakehouse: Lakehouse, path: str, rows: list[dict]) -> None:
    spec = table(path)
    uri = lakehouse.ensure_table(spec)
    schema = pa.schema([f.with_nullable(True) for f in spec.arrow_schema()])
    batch = pa.RecordBatch.from_pylist(rows, schema=schema)
    replace_partitions(uri, spec, [batch], list(DAYS), lakehouse.storage_options)


def seed_lake(lakehouse: Lakehouse, transcripts=TRANSCRIPTS) -> dict[str, str]:
    """Write the feedback mirror and the transcriptions; ``{feedback id: text}``."""
    feedback, rows, texts = [], [], {}
    for day, items in transcripts.items():
        created = dt.datetime.combine(day, dt.time(9), dt.UTC)
        for n, (text, error) in enumerate(items):
            fid = feedback_id(day, n)
            texts[fid] = text
            feedback.append(
                {
                    "id": fid,
                    "organization_id": ORGS[n % 2],
                    "user_id": ORGS[0],
                    "audio_file_path": f"{fid}.wav",
                    "status": "completed",
                    "created_at": created,
                    "updated_at": created,
                    "event_date": day,
                }
            )
            rows.append(
                {
                    "id": row_id(fid, "transcription:faster-whisper/tiny.en"),
                    "voice_feedback_id": fid,
                    "transcription_text": text,
                    # Redacted as the voice stage redacts (offsets only: no text in entities).
                    **redacted_fields(text),
                    "transcription_engine": "faster-whisper/tiny.en",
                    "confidence_score": 0.9 if text else None,
                    "language_detected": "en",
                    "word_count": len((text or "").split()),
                    "processing_time_ms": 100,
                    "error_message": error,
                    "created_at": created,
                    "event_date": day,
                }
            )
    _write(lakehouse, "raw_data/voice_feedback", feedback)
    _write(lakehouse, "raw_data/transcriptions", rows)
    return texts


@pytest.fixture
def lakehouse(tmp_path) -> Lakehouse:
    return Lakehouse(catalog="c", root_uri=str(tmp_path / "lake"), volumes_root=str(tmp_path / "v"))


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("models"))


@pytest.fixture
def cache(tmp_path) -> TextCache:
    return TextCache(path=str(tmp_path / "cache" / "text.sqlite"))


@pytest.fixture
def embedder(cache) -> Embedder:
    return Embedder(cache=cache)


@pytest.fixture
def local_analyzer(cache, embedder, models_dir) -> LocalAnalyzer:
    return LocalAnalyzer(embedder=embedder, models_dir=models_dir, cache=cache)


@pytest.fixture
def text_resources(lakehouse, embedder, local_analyzer):
    return {
        "lakehouse": lakehouse,
        "embedder": embedder,
        "sentiment_analyzer": local_analyzer,
        "pricing": Pricing(),
    }
