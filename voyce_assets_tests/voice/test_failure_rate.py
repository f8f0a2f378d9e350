"""The transcriptions failure-rate check judges each day of a range run, not the range: a bad
day among clean ones fails it, by name."""

from __future__ import annotations

import datetime as dt
import shutil
import uuid

import pyarrow as pa
from dagster import materialize

from voyce_assets.catalog import table, volume
from voyce_assets.lake import replace_partitions
from voyce_assets.resources.lakehouse import Lakehouse
from voyce_assets.voice.compute import VoiceCompute
from voyce_assets.voice.processed_audio import processed_audio
from voyce_assets.voice.transcriber import Transcriber
from voyce_assets.voice.transcriptions import failure_rate_check, transcriptions
from voyce_assets_tests.voice.test_bad_recordings import _speech

D1, D2 = dt.date(2026, 5, 1), dt.date(2026, 5, 2)
ORG = str(uuid.uuid4())
FEEDBACK = table("raw_data/voice_feedback")


def _mirror(lakehouse: Lakehouse, paths: dict[dt.date, list[str]]) -> None:
    rows = [
        {
            "id": str(uuid.uuid4()),
            "organization_id": ORG,
            "audio_file_path": path,
            "status": "pending",
            "created_at": dt.datetime.combine(day, dt.time(12), dt.UTC),
            "updated_at": dt.datetime.combine(day, dt.time(12), dt.UTC),
            "event_date": day,
        }
        for day, day_paths in paths.items()
        for path in day_paths
    ]
    schema = pa.schema([f.with_nullable(True) for f in FEEDBACK.arrow_schema()])
    batch = pa.RecordBatch.from_pylist(rows, schema=schema).cast(FEEDBACK.arrow_schema())
    replace_partitions(lakehouse.ensure_table(FEEDBACK), FEEDBACK, [batch], list(paths))


def test_a_range_run_fails_on_its_one_bad_day_and_names_it(tmp_path):
    lakehouse = Lakehouse(catalog="c", root_uri=str(tmp_path / "lake"), volumes_root=str(tmp_path))
    uploads = lakehouse.volume_path(volume("raw_data/audio_files")) / ORG
    first = _speech(uploads / "d1-0.wav", "Thank you, great service.")
    # Day 1: 1 of 10 missing (10%, over 5%); day 2: 0 of 10. The range is 1 of 20 = 5%,
    # which a range-wide check lets pass.
    paths = {
        D1: [f"{ORG}/d1-{i}.wav" for i in range(10)],
        D2: [f"{ORG}/d2-{i}.wav" for i in range(10)],
    }
    for day_paths in paths.values():
        for path in day_paths:
            if path != f"{ORG}/d1-9.wav" and not (uploads.parent / path).exists():
                shutil.copy(first, uploads.parent / path)
    _mirror(lakehouse, paths)
    # One recording per decode: the check is under test here, not the packing of 19 copies of
    # one clip into shared windows (once, under load, two copies came back without words).
    transcriber = Transcriber(batch_size=1, cpu_threads=1)
    resources = {
        "lakehouse": lakehouse,
        "transcriber": transcriber,
        "voice_compute": VoiceCompute(),
        "gpu_step_launcher": None,
    }
    result = materialize(
        [processed_audio, transcriptions],
        resources=resources,
        tags={
            "dagster/asset_partition_range_start": D1.isoformat(),
            "dagster/asset_partition_range_end": D2.isoformat(),
        },
    )
    assert result.success  # a check, not a failed step
    (check,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "failure_rate"]
    meta = {k: getattr(v, "value", v) for k, v in check.metadata.items()}
    assert meta["failure_rate"] == 0.05 and meta["rows"] == 20  # the range alone would pass
    assert not check.passed
    assert meta["failing_partitions"] == [D1.isoformat()]
    assert meta["per_partition"] == {
        D1.isoformat(): {"rows": 10, "failed": 1, "rate": 0.1},
        D2.isoformat(): {"rows": 10, "failed": 0, "rate": 0.0},
    }
    assert check.description.startswith("2026-05-01: 1 of 10 rows failed (10.0%)")
    assert "2026-05-02" not in check.description


def _rows(day: dt.date, failed: int, good: int) -> list[dict]:
    return [
        {
            "voice_feedback_id": f"{day}-{i}",
            "event_date": day,
            "error_message": "no speech detected",
        }
        for i in range(failed)
    ] + [
        {"voice_feedback_id": f"{day}-ok{i}", "event_date": day, "error_message": None}
        for i in range(good)
    ]


def test_the_bad_day_is_named_wherever_it_falls_in_the_range():
    keys = [D1.isoformat(), D2.isoformat()]
    check = failure_rate_check(_rows(D1, 0, 10) + _rows(D2, 1, 9), keys)
    assert not check.passed and check.metadata["failing_partitions"].value == ["2026-05-02"]
    assert check.metadata["failure_rate"].value == 0.05
    # Both clean enough: passes; a day with no rows at all is judged, not dropped.
    three = [*keys, "2026-05-03"]
    clean = failure_rate_check(_rows(D1, 1, 19) + _rows(D2, 0, 10), three)
    assert clean.passed and clean.metadata["failing_partitions"].value == []
    assert clean.metadata["per_partition"].value["2026-05-03"] == {
        "rows": 0,
        "failed": 0,
        "rate": 0.0,
    }
    # Two bad days of three: both named, in order.
    both = failure_rate_check(
        _rows(D2, 2, 8) + _rows(D1, 1, 1) + _rows(dt.date(2026, 5, 3), 0, 90), three
    )
    assert both.metadata["failing_partitions"].value == ["2026-05-01", "2026-05-02"]
    assert "2026-05-01: 1 of 2 rows failed" in both.description
    assert "2026-05-02: 2 of 10 rows failed" in both.description
    # Judged unrounded: 1 in 19 (5.26%) is over the 5% alert.
    assert not failure_rate_check(_rows(D1, 1, 18), keys[:1]).passed
