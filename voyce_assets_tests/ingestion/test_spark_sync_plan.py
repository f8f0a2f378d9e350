"""The Spark JDBC path's plan and plumbing, without Spark: the slices a sync reads hold each
instant of its days exactly once, the loopback bridge outlives a failed connection, and the
result read back from the volume is data only."""

import base64
import dataclasses
import datetime as dt
import json
import os
import pickle
import socket
import tempfile
import threading
from itertools import pairwise

import pytest

from voyce_assets.catalog import table
from voyce_assets.ingestion.big_sync_databricks import decode_result, encode_result
from voyce_assets.ingestion.placement import Outside
from voyce_assets.ingestion.source import SourceShape
from voyce_assets.ingestion.spark_sync import chunks, loopback_bridge
from voyce_assets.ingestion.sync import SyncResult
from voyce_assets.lake import WriteStats

FEEDBACK = table("raw_data/voice_feedback")
US = dt.timedelta(microseconds=1)


def _slices(plan: list[list[str]]) -> list[tuple[dt.datetime, dt.datetime]]:
    out = []
    for chunk in plan:
        for predicate in chunk:
            parts = predicate.split("'")
            assert parts[0] == '"created_at" >= ' and parts[2] == ' AND "created_at" < '
            out.append((dt.datetime.fromisoformat(parts[1]), dt.datetime.fromisoformat(parts[3])))
    return out


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def _shapes(n: int):
    """(counts, per_chunk, chunk_rows) of a plan whose days are all read, ``n`` a cut."""
    day = dt.date(2026, 3, 1)
    days = [day + dt.timedelta(days=i) for i in range(3)]
    # One day, cut in n slices.
    yield {day: 10}, n, 1_000
    # Big days cut in n parts (each its own chunk), each part in 3 slices, and the reverse.
    yield dict.fromkeys(days, n * 1_000), 3, 1_000
    yield dict.fromkeys(days, 3 * 1_000), n, 1_000
    # Several small days joined in one chunk, cut in n slices.
    yield dict.fromkeys(days, 10), n, 1_000
    # A big day between small ones.
    yield {days[0]: 10, days[1]: n * 1_000, days[2]: 10}, n, 1_000


@pytest.mark.parametrize("n", range(1, 33))
def test_slices_are_contiguous_and_hold_each_instant_once(n):
    for counts, per_chunk, chunk_rows in _shapes(n):
        plan = chunks(FEEDBACK, counts, per_chunk, chunk_rows)
        slices = _slices(plan)
        assert all(len(chunk) == per_chunk for chunk in plan)
        first, last = min(counts), max(counts)
        # Exactly the days: from the first midnight to the midnight after the last day.
        assert slices[0][0] == _midnight(first)
        assert slices[-1][1] == _midnight(last + dt.timedelta(days=1))
        for (a, b), (c, _) in pairwise(slices):
            assert a <= b == c, (n, counts, per_chunk)
        # Each day's first and last microsecond, and each edge and the instant before it,
        # fall in exactly one slice.
        instants = set()
        for day in counts:
            instants |= {_midnight(day), _midnight(day + dt.timedelta(days=1)) - US}
        for a, b in slices:
            instants |= {a, a - US, b - US} - {_midnight(first) - US}
        for t in instants:
            if t < _midnight(last + dt.timedelta(days=1)):
                holders = [s for s in slices if s[0] <= t < s[1]]
                assert len(holders) == 1, (n, counts, per_chunk, t, holders)


def _echo_server(path: str) -> socket.socket:
    """A unix socket at ``path`` answering each connection with what it is sent."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(1024):
                    conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    return server


def test_the_bridge_outlives_a_failed_connection_and_closes_its_sockets():
    port = 5999
    with tempfile.TemporaryDirectory(dir="/tmp") as socket_dir:  # short: a unix path's limit
        with loopback_bridge(socket_dir, port) as tcp:
            # No server on the unix socket yet: the client sees its connection end at once.
            with socket.create_connection(("127.0.0.1", tcp), timeout=5) as early:
                assert early.recv(16) == b""
            server = _echo_server(os.path.join(socket_dir, f".s.PGSQL.{port}"))
            try:
                # The bridge still accepts, and forwards, both ways.
                later = socket.create_connection(("127.0.0.1", tcp), timeout=5)
                for message in (b"ping", b"pong"):
                    later.sendall(message)
                    assert later.recv(16) == message
            finally:
                server.close()
        # Its sockets closed on exit: the live connection ends, the port takes no more.
        assert later.recv(16) == b""
        later.close()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", tcp), timeout=5).close()


def _full_result() -> SyncResult:
    """A result with every field set to something other than its default."""
    return SyncResult(
        table=FEEDBACK,
        mode="full",
        dates=[dt.date(2026, 3, 1), dt.date(2026, 3, 2)],
        shape=SourceShape(
            table="voice_feedback",
            extra_columns=["x"],
            missing_nullable=["y"],
            source_types={"id": "uuid", "created_at": "timestamp with time zone"},
        ),
        stats=WriteStats(
            rows_written=7,
            rows_per_partition={"2026-03-01": 3, "2026-03-02": 4},
            rows_per_partition_organization={("2026-03-01", "org"): 3, ("2026-03-02", None): 4},
            quarantined=1,
            quarantined_columns={"organization_id": 1},
            quarantine_preview=[{"id": "a", "created_at": "2026-03-01 00:00:00+00:00"}],
            merge_metrics={"num_target_rows_inserted": 2},
            moved_from=["2026-02-28"],
            key_index={"built": True, "row_groups_read": 3},
        ),
        source_seconds=1.25,
        total_seconds=2.5,
        source_counts={"2026-03-01": (4, 2**63 + 5), "2026-03-02": (4, -17)},
        mirror_counts={"2026-03-01": (3, 12), "2026-03-02": (4, -17)},
        duplicate_ids=["d"],
        duplicate_count=2,
        duplicate_rows_dropped=1,
        checksummed=False,
        outside=Outside(rows=2, ids=["o1", "o2"]),
        unrepresentable=Outside(rows=1, ids=["u"]),
        future=Outside(rows=3, ids=["f"]),
        engine="spark",
        repaired=["2026-03-02"],
        withheld={"2026-03-01": 5},
    )


def test_the_result_message_round_trips_as_json():
    result = _full_result()
    text = encode_result(result)
    assert isinstance(json.loads(text), dict)  # data, readable by anyone
    back = decode_result(text)
    assert back == result
    assert back.stats.rows_per_partition_organization == {
        ("2026-03-01", "org"): 3,
        ("2026-03-02", None): 4,
    }
    assert back.mismatched == result.mismatched and back.source_counts["2026-03-01"][1] == 2**63 + 5
    # The defaults too (no outside rows looked for).
    bare = dataclasses.replace(result, outside=None, stats=WriteStats())
    assert decode_result(encode_result(bare)) == bare


class _Payload:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


def test_a_result_message_never_runs_code(tmp_path):
    """Whoever can write the volume's messages could once run code where they were read."""
    marker = tmp_path / "ran"
    planted = base64.b64encode(pickle.dumps(_Payload(str(marker)))).decode()
    with pytest.raises(ValueError):
        decode_result(planted)
    assert not marker.exists()
