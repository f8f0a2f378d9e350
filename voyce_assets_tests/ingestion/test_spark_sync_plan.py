"""The Spark JDBC path's plan and plumbing, without Spark: the slices a sync reads hold each
instant of its days exactly once, the loopback bridge outlives a failed connection, and the
result read back from the volume is data only."""

import datetime as dt
import os
import socket
import tempfile
import threading
from itertools import pairwise

import pytest

from voyce_assets.catalog import table
from voyce_assets.ingestion.spark_sync import chunks, loopback_bridge

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
