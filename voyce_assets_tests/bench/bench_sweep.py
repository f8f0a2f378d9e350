"""Benchmark of the reconciliation sweep. Run with ``make bench``.

Builds ``voice_feedback`` with N rows spread over D daily partitions in a fresh embedded
PostgreSQL, mirrors it into Delta with our full sync, then times one sweep of the table in
its own process (so its peak RSS is its own): the counts pass over every partition, and the
day's checksum slice (about D/7 partitions with the default weekly scrub).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path

from voyce_assets_tests.bench.common import peak_rss_mb, run_child

FIRST = dt.date(2023, 1, 1)
SWEEP_DAY = dt.date(2026, 11, 26)
HERE = Path(__file__).resolve().parent


def build_source(url: str, rows: int, days: int) -> None:
    """Demo organizations and users, then ``rows`` feedback spread evenly over ``days``."""
    import sqlalchemy as sa

    from voyce_assets.demo.seed import DemoConfig, generate, load_rows

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    load_rows(engine, generate(DemoConfig(days=1, per_day=1, seed=1, end_date=FIRST)))
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM voice_feedback"))
        users = conn.execute(sa.text("SELECT id::text, organization_id::text FROM users")).all()
        conn.execute(
            sa.text(
                """
                INSERT INTO voice_feedback (id, organization_id, user_id, audio_file_path,
                    audio_duration_seconds, audio_format, file_size_bytes, upload_source,
                    metadata, status, created_at, updated_at)
                SELECT gen_random_uuid(), (CAST(:orgs AS uuid[]))[1 + g % :k],
                       (CAST(:users AS uuid[]))[1 + g % :k],
                       'org/' || g || '.m4a', 3 + (g % 500) / 100.0, 'm4a', 40000 + g % 90000,
                       'ios', '{"topic": "checkout"}'::jsonb, 'pending',
                       :first + make_interval(secs => (g::double precision * :span / :n)),
                       :first + make_interval(secs => (g::double precision * :span / :n))
                FROM generate_series(0, :n - 1) g
                """
            ),
            {
                "n": rows,
                "k": len(users),
                "users": [u[0] for u in users],
                "orgs": [u[1] for u in users],
                "span": days * 86400,
                "first": dt.datetime.combine(FIRST, dt.time(), tzinfo=dt.UTC),
            },
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # Index-only scans for the counts: the visibility map must be current.
        conn.execute(sa.text("VACUUM ANALYZE voice_feedback"))
    engine.dispose()


def build_mirror(url: str, lake: str, days: int) -> None:
    from voyce_assets.catalog import table
    from voyce_assets.ingestion.sync import sync_table
    from voyce_assets.resources.app_db import EmbeddedAppDatabase
    from voyce_assets.resources.lakehouse import Lakehouse

    spec = table("raw_data/voice_feedback")
    uri = Lakehouse(catalog="bench", root_uri=lake, volumes_root=lake).ensure_table(spec)
    app = EmbeddedAppDatabase(source_url=url, data_dir="/nonexistent")
    all_days = [FIRST + dt.timedelta(days=k) for k in range(days)]
    for start in range(0, days, 31):  # as a backfill would: 31 partitions per run
        with app.connect() as conn:
            sync_table(conn, spec, uri, all_days[start : start + 31], verify=False)


def child(url: str, lake: str, mode: str) -> None:
    from voyce_assets.catalog import table
    from voyce_assets.ingestion.sweep import mirror_counts, sweep_table
    from voyce_assets.ingestion.sync import source_counts
    from voyce_assets.resources.app_db import EmbeddedAppDatabase
    from voyce_assets.resources.lakehouse import Lakehouse

    spec = table("raw_data/voice_feedback")
    lakehouse = Lakehouse(catalog="bench", root_uri=lake, volumes_root=lake)
    app = EmbeddedAppDatabase(source_url=url, data_dir="/nonexistent")
    started = time.perf_counter()
    with app.connect() as conn:
        if mode == "counts":
            source, mirror = source_counts(conn, spec), mirror_counts(lakehouse, spec)
            assert source == mirror
            out = {"partitions": len(source), "checksummed": 0, "rows_checksummed": 0}
        else:
            result = sweep_table(conn, spec, lakehouse, SWEEP_DAY, 7)
            assert result.passed, result.mismatched
            rows = source_counts(conn, spec)
            out = {
                "partitions": result.compared,
                "checksummed": len(result.checksummed),
                "rows_checksummed": sum(rows[p] for p in result.checksummed),
            }
        conn.rollback()
    out["seconds"] = time.perf_counter() - started
    out["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(out))


def measure(url: str, lake: str, mode: str) -> dict:
    return run_child(__file__, mode, url, lake)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=1_000)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "sweep.md")
    parser.add_argument("--child")
    parser.add_argument("--url")
    parser.add_argument("--lake")
    args = parser.parse_args()
    if args.child:
        return child(args.url, args.lake, args.child)

    from voyce_assets.resources.app_db import libpq_url, temporary_embedded_server

    with temporary_embedded_server("vs") as (data_dir, server_url):
        url = libpq_url(server_url, show_password=True)
        lake = str(data_dir.parent / "lake")
        started = time.perf_counter()
        print(f"building {args.rows:,} rows over {args.days:,} days ...", flush=True)
        build_source(url, args.rows, args.days)
        print(f"  {time.perf_counter() - started:.0f} s; mirroring ...", flush=True)
        build_mirror(url, lake, args.days)
        print("measuring ...", flush=True)
        counts = measure(url, lake, "counts")
        sweep = measure(url, lake, "sweep")
    report = "\n".join(
        [
            f"Reconciliation sweep benchmark, {dt.date.today()} ({os.cpu_count()} CPUs): "
            f"voice_feedback, {args.rows:,} rows in {args.days:,} daily partitions.",
            "",
            "| pass | partitions compared | partitions checksummed | rows checksummed | seconds | peak RSS MB |",
            "|---|---:|---:|---:|---:|---:|",
            f"| counts only (PostgreSQL GROUP BY date, Delta log statistics) | {counts['partitions']:,} "
            f"| 0 | 0 | {counts['seconds']:.2f} | {counts['peak_rss_mb']:,.0f} |",
            f"| one day's sweep: counts + the day's checksum slice (weekly scrub) | {sweep['partitions']:,} "
            f"| {sweep['checksummed']:,} | {sweep['rows_checksummed']:,} | {sweep['seconds']:.2f} "
            f"| {sweep['peak_rss_mb']:,.0f} |",
            "",
        ]
    )
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)


if __name__ == "__main__":
    main()
