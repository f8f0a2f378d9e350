"""No personal data in the Delta log: a log cannot be edited per person (a DELETE or VACUUM
leaves its JSON and checkpoints as they were), so free text and personal-data columns get no
min/max statistics there, on new tables and on tables made before the rule."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable

from voyce_assets.catalog import table
from voyce_assets.ddl import DELTA_TABLE_PROPERTIES
from voyce_assets.resources import Lakehouse
from voyce_assets.resources.unity_catalog import LocalUnityCatalog

DAY = dt.date(2026, 11, 20)
SAID = "hi this is Sarah Connor, email sarah.connor@example.com, the app crashed"
TRANSCRIPTIONS = table("raw_data/transcriptions")


def _lakehouse(tmp_path: Path) -> Lakehouse:
    return Lakehouse(catalog="c", root_uri=str(tmp_path / "lake"), volumes_root=str(tmp_path / "v"))


def _rows(n: int = 3) -> pa.Table:
    rows = [
        {
            "id": f"00000000-0000-4000-8000-{i:012d}",
            "voice_feedback_id": f"00000000-0000-4000-9000-{i:012d}",
            "transcription_text": f"{SAID} {i}",
            "redacted_text": f"hi this is [PERSON], email [EMAIL], the app crashed {i}",
            "redaction": "pii/1",
            "transcription_engine": "test",
            "created_at": dt.datetime.combine(DAY, dt.time(9), dt.UTC),
            "event_date": DAY,
        }
        for i in range(n)
    ]
    schema = pa.schema([f.with_nullable(True) for f in TRANSCRIPTIONS.arrow_schema()])
    return pa.Table.from_pylist(rows, schema=schema)


def logged_statistics(uri: str) -> tuple[set[str], str]:
    """(columns with min/max statistics in any commit of the log, the log's whole text)."""
    columns, text = set(), []
    for path in sorted(Path(uri, "_delta_log").glob("*.json")):
        text.append(path.read_text())
        for line in path.read_text().splitlines():
            add = json.loads(line).get("add")
            if add and add.get("stats"):
                stats = json.loads(add["stats"])
                columns |= set(stats.get("minValues", {})) | set(stats.get("maxValues", {}))
    return columns, "\n".join(text)


def test_free_text_and_personal_data_get_no_statistics_in_the_log(tmp_path):
    lakehouse = _lakehouse(tmp_path)
    lakehouse.write_partitions(TRANSCRIPTIONS, _rows(), [DAY])
    columns, log = logged_statistics(lakehouse.table_uri(TRANSCRIPTIONS))
    # Statistics are kept (files are still skipped by id and time) ...
    assert {"id", "voice_feedback_id", "created_at"} <= columns
    # ... but none of the transcript, raw or redacted, and its words are nowhere in the log.
    assert not columns & {"transcription_text", "redacted_text"}
    for said in ("Sarah", "sarah.connor", "the app crashed"):
        assert said not in log


def test_a_table_made_without_the_rule_would_log_the_transcript(tmp_path):
    """What the rule prevents (and what the check above would see): delta-rs's default."""
    uri = str(tmp_path / "old")
    DeltaTable.create(
        uri,
        schema=TRANSCRIPTIONS.arrow_schema(),
        partition_by=["event_date"],
        configuration=DELTA_TABLE_PROPERTIES,
    )
    from deltalake import write_deltalake

    write_deltalake(uri, _rows(), mode="append")
    columns, log = logged_statistics(uri)
    assert "transcription_text" in columns and "sarah.connor@example.com" in log


def test_catalog_setup_brings_an_older_table_under_the_rule(tmp_path):
    lakehouse = _lakehouse(tmp_path)
    uri = lakehouse.table_uri(TRANSCRIPTIONS)
    DeltaTable.create(
        uri,
        schema=TRANSCRIPTIONS.arrow_schema(),
        partition_by=["event_date"],
        configuration=DELTA_TABLE_PROPERTIES,
    )
    actions = {a.name: a for a in LocalUnityCatalog(lakehouse=lakehouse).setup()}
    action = actions[TRANSCRIPTIONS.full_name("c")]
    assert action.action == "evolved" and "delta.dataSkippingStatsColumns" in action.detail
    lakehouse.write_partitions(TRANSCRIPTIONS, _rows(), [DAY])
    columns, _ = logged_statistics(uri)
    assert "voice_feedback_id" in columns and "transcription_text" not in columns
    # Set once: a second setup finds nothing to change.
    again = {a.name: a for a in LocalUnityCatalog(lakehouse=lakehouse).setup()}
    assert again[TRANSCRIPTIONS.full_name("c")].action == "exists"
