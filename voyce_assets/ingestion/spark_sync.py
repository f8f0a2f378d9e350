"""Big full syncs read by Spark's JDBC source instead of one COPY stream.

A full sync above a row threshold (an initial load, a backfill, a large day) reads its rows
with Spark: the run's days are planned as chunks of at most ``chunk_rows`` rows (a big day
cut in hours, small days joined), each chunk split into ``num_partitions`` time slices, one
JDBC query each on the created_at index, read side by side by the executors. The rows come
back to the driver as Arrow, one chunk at a time (memory stays one chunk, whatever the run), and
go through the same writer as the host path (``lake.replace_partitions``): one overwrite
commit, the same NOT NULL quarantine, the same checksum tap, the same reconciliation.

Every JDBC session imports the sync's snapshot (``pg_export_snapshot``) before it reads, so
PostgreSQL's checksums, computed on the sync's own connection, cover exactly the rows Spark
read. The driver is where the writer runs: locally the Dagster process, on Databricks the job
cluster's driver (``big_sync.py``). One writer (deltalake) for both paths keeps one set of
checks; Spark writing Delta itself would need a second.

The JDBC URL carries no password: it travels as a connection property, which Spark keeps out
of its plans and logs, and no error of ours repeats it.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from itertools import pairwise

import pyarrow as pa
from psycopg import sql

from voyce_assets.catalog import Table
from voyce_assets.ingestion.source import SESSION
from voyce_assets.ingestion.sync import source_counts

# Rows per batch handed to the writer (the host path's batches are about this size).
BATCH_ROWS = 65_536
# Where Debian's libpostgresql-jdbc-java puts the driver.
MICROSECOND = dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class JdbcSource:
    """Where Spark reads: a JDBC URL without secrets, and the properties that hold them."""

    url: str
    user: str
    password: str = ""
    sslmode: str | None = None

    def properties(self, fetch_size: int, init: str) -> dict[str, str]:
        props = {
            "user": self.user,
            "password": self.password,
            "driver": "org.postgresql.Driver",
            # A fetch size turns autocommit off (Spark's PostgreSQL dialect): the rows come
            # in pages through a cursor, inside the transaction that imported the snapshot.
            "fetchsize": str(fetch_size),
            "sessionInitStatement": init,
        }
        if self.sslmode:
            props["sslmode"] = self.sslmode
        return props

    def __repr__(self) -> str:  # never the password, whatever prints this
        return f"JdbcSource(url={self.url!r}, user={self.user!r})"


def jdbc_source(conn, host: str | None = None, port: int | None = None) -> JdbcSource:
    """The JDBC source of the database ``conn`` (psycopg) is connected to; ``host``/``port``
    replace its own (a loopback bridge to a unix socket)."""
    params = conn.info.get_parameters()
    host = host or params.get("host") or "localhost"
    port = port or int(params.get("port") or 5432)
    return JdbcSource(
        url=f"jdbc:postgresql://{host}:{port}/{params['dbname']}",
        user=params.get("user", ""),
        password=conn.info.password or "",
        sslmode=params.get("sslmode") if params.get("sslmode") not in (None, "prefer") else None,
    )


def cut(lo: dt.datetime, hi: dt.datetime, n: int) -> list[dt.datetime]:
    """``n + 1`` edges cutting ``[lo, hi)`` in ``n`` near-equal ranges, in whole microseconds
    (``timedelta / n`` rounds its step, and ``n`` rounded steps miss ``hi`` by up to ``n``
    microseconds): the first edge ``lo``, the last exactly ``hi``, never decreasing."""
    span = (hi - lo) // MICROSECOND
    return [lo + MICROSECOND * (span * i // n) for i in range(n)] + [hi]


def chunks(
    table: Table, counts: dict[dt.date, int], per_chunk: int, chunk_rows: int
) -> list[list[str]]:
    """The run's days as chunks of JDBC predicates, each chunk one Spark job whose rows the
    driver holds at once. ``counts``: rows per day (the days to read). A day of more than
    ``chunk_rows`` rows is cut into that many equal time ranges, consecutive days of fewer
    are joined, up to ``chunk_rows`` a chunk (rows assumed even over a day's hours); each
    chunk is cut into ``per_chunk`` equal ranges of created_at read side by side. Ranges an
    index on created_at answers, together holding each row of the days exactly once."""
    pieces: list[tuple[dt.datetime, dt.datetime, float]] = []
    for day in sorted(counts):
        start = dt.datetime.combine(day, dt.time(), dt.UTC)
        n = max(1, math.ceil(counts[day] / chunk_rows))
        edges = cut(start, start + dt.timedelta(days=1), n)
        pieces += [(lo, hi, counts[day] / n) for lo, hi in pairwise(edges)]
    ranges: list[tuple[dt.datetime, dt.datetime]] = []
    rows = 0.0
    for lo, hi, n in pieces:
        if ranges and ranges[-1][1] == lo and rows + n <= chunk_rows:
            ranges[-1] = (ranges[-1][0], hi)
            rows += n
        else:
            ranges.append((lo, hi))
            rows = n
    column = f'"{table.partition_source}"'
    out = []
    for lo, hi in ranges:
        edges = cut(lo, hi, per_chunk)
        out.append(
            [
                f"{column} >= '{a.isoformat()}' AND {column} < '{b.isoformat()}'"
                for a, b in pairwise(edges)
            ]
        )
    return out


@dataclass
class SparkJdbcReader:
    """Reads a sync's SELECT through Spark JDBC, in ``sync._sync``'s place of ``stream_batches``."""

    spark: object
    source: JdbcSource
    num_partitions: int = 4
    fetch_size: int = 10_000
    chunk_rows: int = 500_000

    @contextmanager
    def batches(
        self, conn, table: Table, statement: sql.Composable, dates: list[dt.date], pg_schema: str
    ):
        with conn.cursor() as cur:
            snapshot = cur.execute("SELECT pg_export_snapshot()").fetchone()[0]
        init = "; ".join(
            (
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                f"SET TRANSACTION SNAPSHOT '{snapshot}'",
                *SESSION,
            )
        )
        props = self.source.properties(self.fetch_size, init)
        subquery = f"({statement.as_string(conn)}) AS voyce_sync"
        # Rows per day, counted on the created_at index in the same snapshot: chunk sizes.
        counts = source_counts(conn, table, dates, pg_schema)
        plan = chunks(
            table,
            {dt.date.fromisoformat(d): n for d, n in counts.items()},
            self.num_partitions,
            self.chunk_rows,
        )
        yield self._read(table, plan, subquery, props)

    def _read(self, table, plan, subquery, props) -> Iterator[pa.RecordBatch]:
        for predicates in plan:
            frame = self.spark.read.jdbc(
                self.source.url, subquery, predicates=predicates, properties=props
            )
            # Slices are in time order and each is sorted: the chunk arrives in event order,
            # as the host path writes it (later MERGEs of recent rows touch few files).
            chunk = frame.sortWithinPartitions(table.partition_source).toArrow()
            yield from chunk.to_batches(max_chunksize=BATCH_ROWS)
            del chunk


@contextmanager
def loopback_bridge(socket_dir: str, port: int) -> Iterator[int]:
    """A TCP port on 127.0.0.1 forwarding to PostgreSQL's unix socket in ``socket_dir``.

    The embedded server of a laptop listens on a unix socket only, and the JDBC driver speaks
    TCP only; production databases are reached over TCP and never need this. A connection
    whose unix socket cannot be reached is closed at once (its client sees the connection
    end, not a hang) and the bridge goes on accepting; every socket is closed on exit."""
    path = os.path.join(socket_dir, f".s.PGSQL.{port}")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    lock = threading.Lock()
    live: set[socket.socket] = {listener}
    closing = threading.Event()

    def close(*sockets: socket.socket) -> None:
        for s in sockets:
            with lock:
                live.discard(s)
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked on it
            with suppress(OSError):
                s.close()

    def pump(src: socket.socket, dst: socket.socket) -> None:
        with suppress(OSError):
            while data := src.recv(1 << 20):
                dst.sendall(data)
        with suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def relay(client: socket.socket) -> None:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            server.connect(path)
        except OSError:
            close(client, server)  # this connection only
            return
        with lock:
            if closing.is_set():
                server.close()
                return
            live.add(server)
        back = threading.Thread(target=pump, args=(server, client), daemon=True)
        back.start()
        pump(client, server)
        back.join()
        close(client, server)

    def accept() -> None:
        while not closing.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                if closing.is_set():
                    return
                time.sleep(0.01)  # e.g. out of file descriptors for a moment: try again
                continue
            with lock:
                if closing.is_set():
                    client.close()
                    return
                live.add(client)
            threading.Thread(target=relay, args=(client,), daemon=True).start()

    thread = threading.Thread(target=accept, name="voyce-pg-bridge", daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        closing.set()
        with lock:
            sockets = list(live)
        close(*sockets)
        thread.join(timeout=5)
