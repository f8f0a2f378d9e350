"""Per-feedback tables: what every stage that writes one row per voice feedback needs.

Reads a partition's voice feedback from its Delta mirror (``raw_data.voice_feedback``), gives
each derived row a stable id, reads back a table's existing rows of a partition, and replaces
the partitions of a run in one commit.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import pyarrow as pa

from voyce_assets.catalog import Table, table
from voyce_assets.privacy.tombstones import without_erased
from voyce_assets.resources.lakehouse import Lakehouse

FEEDBACK = table("raw_data/voice_feedback")


@dataclass(frozen=True)
class Feedback:
    id: str
    organization_id: str
    audio_file_path: str
    event_date: dt.date


def partition_feedback(lakehouse: Lakehouse, dates: list[dt.date]) -> list[Feedback]:
    """The voice feedback of ``dates``, as mirrored in Delta (empty if not synced yet)."""
    columns = ["id", "organization_id", "audio_file_path", "event_date"]
    rows = lakehouse.read(FEEDBACK, dates, columns).to_pylist()
    return sorted((Feedback(**row) for row in rows), key=lambda f: (f.event_date, f.id))


def row_id(feedback_id: str, kind: str) -> str:
    """Stable id of the row ``kind`` describes for a feedback: re-runs never duplicate."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"voyce:{kind}:{feedback_id}"))


def existing_rows(lakehouse: Lakehouse, spec: Table, dates) -> dict[str, dict]:
    """The rows of a per-feedback pipeline table for ``dates``, by voice_feedback_id."""
    return {row["voice_feedback_id"]: row for row in lakehouse.read(spec, dates).to_pylist()}


def write_partition(lakehouse: Lakehouse, spec: Table, rows: list[dict], dates) -> None:
    """Replace ``dates`` of a pipeline table with ``rows`` (one Delta commit), less the rows
    of feedback erased while the run was under way."""
    rows = without_erased(lakehouse, rows)
    # Checked before writing: the partition is replaced whole or not at all.
    for column in spec.required_columns:
        missing = [r.get("voice_feedback_id") for r in rows if r.get(column) is None]
        if missing:
            raise ValueError(f"{spec.path}: {column} is empty for voice_feedback {missing[:5]}")
    schema = pa.schema([f.with_nullable(True) for f in spec.arrow_schema()])
    batch = pa.RecordBatch.from_pylist(rows, schema=schema)
    lakehouse.write_partitions(spec, [batch], dates)
