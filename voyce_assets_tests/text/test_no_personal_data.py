"""Personal data said in a recording never leaves for a third party and never reaches what the
text stage keeps: Claude and OpenAI (local servers speaking their wire format) receive only
redacted text in live and batch mode; the stage's tables, its cache and Dagster's event log
hold none of it; the event log holds no feedback text at all."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import materialize

from voyce_assets.catalog import table
from voyce_assets.text.enhanced_transcriptions import enhanced_transcriptions
from voyce_assets.text.providers.anthropic import AnthropicAnalyzer
from voyce_assets.text.providers.openai import OpenAIAnalyzer
from voyce_assets.text.sentiment_analysis import sentiment_analysis
from voyce_assets_tests.fakes.llm import FakeAnthropic, FakeOpenAI
from voyce_assets_tests.text.conftest import DAYS, TAGS, seed_lake

KEY = "sk-test-secret-0123456789"

# What people said (as Whisper writes it), and the personal data in it, as it would leak.
SAID = {
    DAYS[0]: [
        ("Hi, this is Sarah Connor, the app crashed twice at checkout today.", None),
        ("Please email me at sarah.connor@example.com about the refund, it is late.", None),
        ("my email is john dot smith at gmail dot com and nobody answered", None),
    ],
    DAYS[1]: [
        ("Call me back on 555-867-5309, the courier lost my parcel again.", None),
        ("the card ending in four two four two was charged twice this month", None),
        ("Great prices and the delivery was on time, thank you.", None),
    ],
}
PERSONAL = [
    "sarah connor",
    "sarah.connor@example.com",
    "sarah.connor",
    "john dot smith",
    "gmail dot com",
    "867-5309",
    "four two four two",
]


def _leaks(blob: str) -> list[str]:
    blob = blob.lower()
    return [p for p in PERSONAL if p in blob]


def _claude(fake, cache, **changes) -> AnthropicAnalyzer:
    settings = {"api_key": KEY, "base_url": fake.base_url, "cache": cache, "timeout_seconds": 5}
    return AnthropicAnalyzer(**{**settings, **changes})


@pytest.mark.parametrize("mode", ["messages", "batch"])
def test_claude_receives_only_redacted_text_from_the_asset(mode, lakehouse, text_resources, cache):
    seed_lake(lakehouse, SAID)
    with FakeAnthropic(api_key=KEY, batch_polls_before_end=0) as fake:
        analyzer = _claude(fake, cache, mode=mode, batch_poll_seconds=0.01)
        resources = {**text_resources, "sentiment_analyzer": analyzer}
        assert materialize([sentiment_analysis], resources=resources, tags=TAGS).success
        sent = json.dumps(fake.request_bodies)
        assert fake.calls["batches.create" if mode == "batch" else "messages"] >= 1
    assert _leaks(sent) == []
    # The feedback itself went (what the analysis is for), with placeholders in its place.
    assert "courier lost my parcel" in sent and "[EMAIL]" in sent and "[PHONE]" in sent


def test_openai_receives_only_redacted_text(lakehouse, text_resources, cache):
    seed_lake(lakehouse, SAID)
    with FakeOpenAI(api_key=KEY) as fake:
        analyzer = OpenAIAnalyzer(
            api_key=KEY, base_url=fake.base_url, cache=cache, timeout_seconds=5
        )
        resources = {**text_resources, "sentiment_analyzer": analyzer}
        assert materialize([sentiment_analysis], resources=resources, tags=TAGS).success
        sent = json.dumps(fake.request_bodies)
    assert _leaks(sent) == [] and "[EMAIL]" in sent


def test_a_provider_redacts_whoever_calls_it_unless_a_deployment_turned_it_off(cache):
    """`voyce sentiment "..."` hands the provider raw text: the provider redacts it itself.
    The same call with redaction off sends the text as it is (the check can fail)."""
    texts = [text for day in SAID.values() for text, _ in day]
    with FakeAnthropic(api_key=KEY) as fake:
        results = _claude(fake, cache).analyze(texts)
        assert all(r.ok for r in results)
        assert _leaks(json.dumps(fake.request_bodies)) == []
    with FakeOpenAI(api_key=KEY) as fake:
        raw = OpenAIAnalyzer(
            api_key=KEY, base_url=fake.base_url, cache=cache, timeout_seconds=5, redact_pii=False
        )
        raw.analyze(texts)
        assert set(_leaks(json.dumps(fake.request_bodies))) == set(PERSONAL)


def _parquet_text(root: Path) -> str:
    """Every value of every Parquet file under ``root`` (current and superseded), as text."""
    out = []
    for path in root.rglob("*.parquet"):
        out.append(json.dumps(pq.read_table(path).to_pylist(), default=str))
    return "\n".join(out)


def _sqlite_text(path: Path) -> str:
    out = []
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for name in tables:
            for row in conn.execute(f'SELECT * FROM "{name}"'):
                out.append(" ".join(str(v) for v in row if not isinstance(v, bytes)))
    return "\n".join(out)


def _windows(text: str, size: int = 4) -> set[str]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def test_the_stage_keeps_no_personal_data_and_the_event_log_no_feedback_text(
    lakehouse, text_resources, cache
):
    seed_lake(lakehouse, SAID)
    result = materialize(
        [sentiment_analysis, enhanced_transcriptions], resources=text_resources, tags=TAGS
    )
    assert result.success
    lake = Path(lakehouse.root_uri) / lakehouse.catalog
    for path in ("raw_data/sentiment_analysis", "processed_data/enhanced_transcriptions"):
        kept = _parquet_text(lake / table(path).path)
        assert kept and _leaks(kept) == [], path
    enhanced = _parquet_text(lake / "processed_data/enhanced_transcriptions")
    assert "courier lost my parcel" in enhanced and "[PHONE]" in enhanced
    assert _leaks(_sqlite_text(Path(cache.path))) == []

    # The event log cannot forget one person: no four words of any feedback in it, raw or
    # redacted (previews, check examples, log lines).
    events = json.dumps([str(e) for e in result.all_events])
    said = set().union(*(_windows(text) for day in SAID.values() for text, _ in day))
    assert said and not (_windows(events) & said), sorted(_windows(events) & said)[:5]


def test_rows_made_with_redaction_off_are_redacted_once_it_is_on_again(monkeypatch):
    from voyce_assets.text.sentiment_analysis import analysable_text

    said = "Please email me at sarah.connor@example.com about the refund."
    row = {"error_message": None, "redaction": "off", "transcription_text": said}
    monkeypatch.setenv("VOYCE_REDACT_PII", "0")
    assert "sarah.connor@example.com" in analysable_text(row)  # the deployment's choice
    monkeypatch.delenv("VOYCE_REDACT_PII")
    assert analysable_text(row) == "Please email me at [EMAIL] about the refund."
    # A row never redacted (made before redaction existed) is not read at all.
    assert analysable_text({"error_message": None, "transcription_text": said}) == ""


def test_a_run_under_way_writes_no_row_of_feedback_erased_meanwhile(lakehouse, text_resources):
    """The erasure cannot stop a run that read the subject's rows before it: that run's
    writes leave them out (the tombstones, read at write time)."""
    import datetime as dt

    from voyce_assets.catalog import table as spec
    from voyce_assets.privacy.tombstones import subject_hash
    from voyce_assets_tests.text.conftest import feedback_id

    seed_lake(lakehouse, SAID)
    erased = feedback_id(DAYS[0], 1)
    log = {
        "id": "00000000-0000-4000-8000-0000000000e1",
        "subject_type": "feedback",
        "subject_hash": subject_hash(erased),
        "reason": "request",
        "requested_at": dt.datetime(2026, 11, 22, tzinfo=dt.UTC),
        "erased_id_hashes": [subject_hash(erased)],
        "purged": False,
        "created_at": dt.datetime(2026, 11, 22, tzinfo=dt.UTC),
        "event_date": dt.date(2026, 11, 22),
    }
    lakehouse.write_partitions(spec("raw_data/erasure_log"), [log_batch(log)], [log["event_date"]])
    assert materialize(
        [sentiment_analysis, enhanced_transcriptions], resources=text_resources, tags=TAGS
    ).success
    for path in ("raw_data/sentiment_analysis", "processed_data/enhanced_transcriptions"):
        ids = lakehouse.read(spec(path), list(DAYS), ["voice_feedback_id"]).column(0).to_pylist()
        assert erased not in ids and len(ids) == 5, path


def log_batch(row: dict):
    import pyarrow as pa

    from voyce_assets.catalog import table as spec

    schema = pa.schema([f.with_nullable(True) for f in spec("raw_data/erasure_log").arrow_schema()])
    return pa.RecordBatch.from_pylist([row], schema=schema)
