"""Writing Delta partitions through the reader/writer threads: errors end every thread."""

import datetime as dt
import threading
import uuid

import pyarrow as pa
from deltalake import DeltaTable

from voyce_assets.catalog import table
from voyce_assets.ingestion.checksum import RowChecksums
from voyce_assets.lake import replace_partitions

DAY = dt.date(2026, 6, 1)


def _batches(spec, count, rows=500, stray: int | None = None):
    """``count`` batches of DAY; batch number ``stray`` is dated the day after."""
    when = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
    for k in range(count):
        day = DAY + dt.timedelta(days=1 if k == stray else 0)
        yield pa.RecordBatch.from_pydict(
            {
                "id": [str(uuid.uuid4()) for _ in range(rows)],
                "organization_id": [str(uuid.uuid4())] * rows,
                "user_id": [str(uuid.uuid4())] * rows,
                "audio_file_path": ["org/a.wav"] * rows,
                "audio_duration_seconds": [3.5] * rows,
                "audio_format": ["wav"] * rows,
                "file_size_bytes": [1000] * rows,
                "upload_source": ["web"] * rows,
                "metadata": ["{}"] * rows,
                "status": ["pending"] * rows,
                "created_at": [when] * rows,
                "updated_at": [when] * rows,
                "event_date": [day] * rows,
            },
            schema=spec.arrow_schema(),
        )


def _voyce_threads():
    return [t for t in threading.enumerate() if t.name.startswith("voyce-")]


def test_written_rows_are_the_rows_checksummed(tmp_path):
    spec = table("raw_data/voice_feedback")
    tap = RowChecksums(spec, [DAY])
    stats = replace_partitions(str(tmp_path / "t"), spec, _batches(spec, 12), [DAY], tap=tap)
    assert stats.rows_written == tap.totals()[DAY.isoformat()][0] == 12 * 500
    assert not _voyce_threads()


def test_a_failing_writer_stops_the_reader_and_the_tap(tmp_path):
    """The Delta writer fails mid-stream (a batch outside the partitions being replaced):
    the error surfaces, nothing is committed, and neither the read-ahead thread nor the tap
    thread is left behind, though both were busy when the writer stopped."""
    spec = table("raw_data/voice_feedback")
    uri = str(tmp_path / "t")
    replace_partitions(uri, spec, _batches(spec, 1), [DAY])
    outcome = {}

    def run():
        try:
            batches = _batches(spec, 400, stray=20)
            replace_partitions(uri, spec, batches, [DAY], tap=RowChecksums(spec, [DAY]))
        except Exception as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the sync hung after its writer failed"
    assert "failed validation" in str(outcome.get("error")), outcome
    assert not _voyce_threads()
    assert DeltaTable(uri).version() == 0  # the first write only: nothing of the failed one


def test_a_lakehouse_write_creates_the_table_and_replaces_only_its_days(tmp_path):
    """``Lakehouse.write_partitions``: the first write creates the table; a later one makes
    its days hold exactly the rows given (a pa.Table or batches) and leaves other days be."""
    from voyce_assets.resources.lakehouse import Lakehouse

    spec = table("raw_data/voice_feedback")
    lakehouse = Lakehouse(catalog="c", root_uri=str(tmp_path), volumes_root=str(tmp_path))
    assert not lakehouse.exists(spec)
    both = [DAY, DAY + dt.timedelta(days=1)]
    first = lakehouse.write_partitions(spec, _batches(spec, 2, rows=10, stray=1), both)
    assert lakehouse.exists(spec)
    assert first.rows_per_partition == {DAY.isoformat(): 10, both[1].isoformat(): 10}
    again = pa.Table.from_batches(list(_batches(spec, 1, rows=3)))
    stats = lakehouse.write_partitions(spec, again, [DAY])
    assert stats.rows_written == 3
    stored = lakehouse.read(spec, both, ["id", "event_date"]).to_pylist()
    assert sorted(r["id"] for r in stored if r["event_date"] == DAY) == sorted(
        again["id"].to_pylist()
    )
    assert sum(r["event_date"] == both[1] for r in stored) == 10
