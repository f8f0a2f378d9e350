"""Benchmark of big syncs on Spark (issue 24): a full sync of N ``voice_feedback`` rows over
ten days, through the host path (one COPY stream) and through Spark JDBC at ``local[2]``,
both with every check (reconciliation checksums included). Run with ``make bench``;
``--quick`` at a tenth of the size.

Each contender runs in its own process, so its peak RSS is its own; Spark's is the Python
driver's plus the JVM's (both peaks, read from /proc). The Spark sync's time excludes the
session's start, which is reported apart. The embedded server listens on a unix socket
only: Spark reaches it through the driver's loopback bridge (``spark_sync.loopback_bridge``),
whose copying is counted in the Spark side's CPU and time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path

from voyce_assets_tests.bench.bench_raw_sync import build_source
from voyce_assets_tests.bench.common import peak_rss_mb, run_child

DAYS = 10
FIRST = dt.date(2026, 6, 1)
HERE = Path(__file__).resolve().parent


def spread_over_days(url: str) -> None:
    """The rows ``build_source`` put on one day, spread evenly over ``DAYS`` days (a
    backfill's shape: the Spark path reads several days)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE voice_feedback SET created_at = created_at + make_interval(days => "
                "(('x' || substr(md5(id::text), 1, 8))::bit(32)::int & 2147483647) % :d), "
                "updated_at = updated_at"
            ),
            {"d": DAYS},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM (FULL, ANALYZE) voice_feedback"))
    engine.dispose()


def _jvm(session) -> tuple[float, float]:
    """The Spark JVM's (peak resident MB, CPU seconds so far): spark-submit execs java, so
    the gateway's process is the JVM."""
    pid = session.sparkContext._gateway.proc.pid
    with open(f"/proc/{pid}/status") as fh:
        line = next(line for line in fh if line.startswith("VmHWM:"))
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return int(line.split()[1]) / 1024, cpu


def child(name: str, url: str, lake: str) -> None:
    import resource

    from voyce_assets.catalog import table
    from voyce_assets.ingestion.big_sync import LocalSparkSync
    from voyce_assets.ingestion.sync import sync_table
    from voyce_assets.resources.app_db import EmbeddedAppDatabase
    from voyce_assets.resources.lakehouse import Lakehouse

    spec = table("raw_data/voice_feedback")
    dates = [FIRST + dt.timedelta(days=i) for i in range(DAYS)]
    lakehouse = Lakehouse(catalog="bench", root_uri=lake, volumes_root=lake)
    uri = lakehouse.ensure_table(spec)
    app = EmbeddedAppDatabase(source_url=url, data_dir="/nonexistent")
    out: dict = {}
    if name == "spark":
        engine = LocalSparkSync(master="local[2]", num_partitions=4)
        started = time.perf_counter()
        session = engine.session()
        out["session_start_s"] = time.perf_counter() - started
        jvm_cpu_before = _jvm(session)[1]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    if name == "spark":
        result = engine.sync(None, app, spec, uri, dates, "public", None, None, frozenset())
    else:
        with app.connect() as conn:
            result = sync_table(conn, spec, uri, dates)
    out["seconds"] = time.perf_counter() - started
    done = resource.getrusage(resource.RUSAGE_SELF)
    assert not result.mismatched, result.mismatched
    out["rows"] = result.stats.rows_written
    out["driver_cpu_s"] = done.ru_utime + done.ru_stime - usage.ru_utime - usage.ru_stime
    out["peak_rss_mb"] = peak_rss_mb()
    out["checksums"] = {day: checksum for day, (_, checksum) in result.mirror_counts.items()}
    if name == "spark":
        out["jvm_peak_rss_mb"], jvm_cpu = _jvm(session)
        out["jvm_cpu_s"] = jvm_cpu - jvm_cpu_before
        session.stop()
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="a tenth of the rows")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--child")
    parser.add_argument("--url")
    parser.add_argument("--lake")
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.url, args.lake)
    rows = args.rows // 10 if args.quick else args.rows
    # A quick look is not a result: it is printed, and kept only where --output says.
    output = args.output or (None if args.quick else HERE / "results" / "spark_sync.md")

    from voyce_assets.resources.app_db import libpq_url, temporary_embedded_server

    with temporary_embedded_server("vs") as (data_dir, server_url):
        url = libpq_url(server_url, show_password=True)
        print(f"building {rows} rows over {DAYS} days ...", flush=True)
        build_source(url, rows)
        spread_over_days(url)
        results = {}
        for name in ("host", "spark"):
            print(f"measuring {name} ...", flush=True)
            results[name] = run_child(__file__, name, url, str(data_dir.parent / f"lake_{name}"))
        report = render(rows, results)
        print(report)
        if output:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(report + "\n")


def render(rows: int, r: dict) -> str:
    host, spark = r["host"], r["spark"]
    assert host["rows"] == spark["rows"] and host["checksums"] == spark["checksums"]
    spark_total = spark["peak_rss_mb"] + spark["jvm_peak_rss_mb"]
    return "\n".join(
        [
            f"Spark sync benchmark, {dt.date.today()} ({os.cpu_count()} CPUs): voice_feedback, "
            f"{rows:,} rows over {DAYS} days, full sync with reconciliation checksums.",
            "",
            "| path | rows | seconds | rows/s | peak RSS MB | CPU s |",
            "|---|---:|---:|---:|---:|---:|",
            f"| host: one COPY stream (ADBC) | {host['rows']:,} | {host['seconds']:.2f} | "
            f"{host['rows'] / host['seconds']:,.0f} | {host['peak_rss_mb']:,.0f} | "
            f"{host['driver_cpu_s']:.1f} |",
            f"| Spark JDBC, local[2], 4 slices per chunk of <= 500,000 rows | {spark['rows']:,} | "
            f"{spark['seconds']:.2f} | "
            f"{spark['rows'] / spark['seconds']:,.0f} | {spark_total:,.0f} "
            f"(Python {spark['peak_rss_mb']:,.0f} + JVM {spark['jvm_peak_rss_mb']:,.0f}) | "
            f"{spark['driver_cpu_s'] + spark['jvm_cpu_s']:.1f} (Python "
            f"{spark['driver_cpu_s']:.1f} + JVM {spark['jvm_cpu_s']:.1f}) |",
            "",
            f"- Spark session start (not in its seconds): {spark['session_start_s']:.1f} s",
            "- the same rows and per-day content checksums on both paths; CPU: the client "
            "side's (PostgreSQL's own not counted); Spark's Python side includes the loopback "
            "bridge to the embedded server's unix socket and the Delta writer",
        ]
    )


if __name__ == "__main__":
    main()
