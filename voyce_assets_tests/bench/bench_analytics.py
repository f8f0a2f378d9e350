"""Analytics benchmark (one run each, each contender in its own process): the daily feedback
summary and the organization metrics over 1,000,000 feedback rows with their transcriptions,
sentiment and enhanced transcriptions, users and cost rows (30 days, 50 organizations),
written to Delta once. For each asset:

- ours: the asset on DuckDB (reads Delta, runs the transpiled SQL, writes its partitions,
  records per-partition metadata);
- bare: the same SQL run by DuckDB on the same Arrow data, read from the same Delta tables
  (the floor), with the query alone timed too;
- Spark: the same SQL on pyspark local mode, the Arrow handed over.

Each contender's wall seconds and its process's CPU seconds (every thread's, over the same
window): on a machine other work shares, wall time swings with the load and CPU time much
less. ``--repeat N`` runs bare and ours alternately N times (medians reported, with the
range); ``--no-spark`` leaves Spark out; ``--root`` reuses inputs already built there.

Writes ``results/analytics.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from voyce_assets_tests.bench.common import peak_rss_mb, run_script

RESULTS = Path(__file__).parent / "results" / "analytics.md"
DAYS = [dt.date(2026, 10, 1) + dt.timedelta(days=i) for i in range(30)]
TOPICS = ["checkout", "delivery", "support", "pricing", "app_performance", "product_quality"]


def build(root: Path, n: int) -> None:
    """Write the inputs: n feedback and their per-feedback rows, in Delta under ``root``."""
    import numpy as np
    import pyarrow as pa

    from voyce_assets.catalog import table
    from voyce_assets.lake import replace_partitions
    from voyce_assets.resources import Lakehouse

    rng = np.random.default_rng(1)
    lakehouse = Lakehouse(catalog="c", root_uri=str(root / "lake"), volumes_root=str(root))
    ids = pa.array([f"00000000-0000-4000-8000-{i:012d}" for i in range(n)])
    orgs = pa.array([f"00000000-0000-4000-9000-{i:012d}" for i in rng.integers(0, 50, n)])
    days = pa.array(np.array(DAYS, dtype="datetime64[D]")[rng.integers(0, len(DAYS), n)])
    stamps = pa.array(days.to_numpy(zero_copy_only=False).astype("datetime64[us]")).cast(
        pa.timestamp("us", tz="UTC")
    )
    failed = rng.random(n) < 0.03
    labels = rng.choice(["positive", "neutral", "negative", "mixed"], n, p=[0.3, 0.2, 0.45, 0.05])
    topic_lists = [list(rng.choice(TOPICS, size=k, replace=False)) for k in rng.integers(0, 3, n)]
    tag_ids = pa.array([f"00000000-0000-4000-a000-{i:012d}" for i in range(20)])

    def write(path: str, columns: dict, mask=None) -> None:
        spec = table(path)
        schema = pa.schema([f.with_nullable(True) for f in spec.arrow_schema()])
        data = pa.table(
            {
                f.name: columns.get(f.name, pa.nulls(len(next(iter(columns.values()))), f.type))
                for f in schema
            },
            schema=schema,
        )
        if mask is not None:
            data = data.filter(pa.array(mask))
        replace_partitions(lakehouse.ensure_table(spec), spec, data.to_batches(), DAYS)

    text = pa.array(["x"] * n)
    write(
        "raw_data/voice_feedback",
        {
            "id": ids,
            "organization_id": orgs,
            "user_id": pa.array(
                [f"00000000-0000-4000-b000-{i:012d}" for i in rng.integers(0, 1000, n)]
            ),
            "file_size_bytes": pa.array(rng.integers(10_000, 2_000_000, n)),
            "audio_file_path": text,
            "audio_duration_seconds": pa.array(rng.uniform(3, 90, n)),
            "status": text,
            "created_at": stamps,
            "updated_at": stamps,
            "event_date": days,
        },
    )
    write(
        "raw_data/transcriptions",
        {
            "id": ids,
            "voice_feedback_id": ids,
            "transcription_engine": text,
            "error_message": pa.array(np.where(failed, "cannot read audio", None)),
            "processing_time_ms": pa.array(rng.integers(200, 5000, n)),
            "created_at": stamps,
            "event_date": days,
        },
    )
    write(
        "raw_data/sentiment_analysis",
        {
            "id": ids,
            "transcription_id": ids,
            "voice_feedback_id": ids,
            "sentiment_label": pa.array(labels),
            "sentiment_score": pa.array(rng.uniform(-1, 1, n)),
            "model_used": text,
            "provider": pa.array(rng.choice(["local", "anthropic"], n)),
            "api_mode": pa.array(["messages"] * n),
            "cached": pa.array([False] * n),
            "text_sha256": text,
            "created_at": stamps,
            "event_date": days,
        },
        mask=~failed,
    )
    write(
        "processed_data/enhanced_transcriptions",
        {
            "id": ids,
            "voice_feedback_id": ids,
            "organization_id": orgs,
            "topics": pa.array(topic_lists, pa.list_(pa.string())),
            "created_at": stamps,
            "event_date": days,
        },
        mask=~failed,
    )
    user_ids = [f"00000000-0000-4000-b000-{i:012d}" for i in range(1000)]
    user_orgs = [f"00000000-0000-4000-9000-{i % 50:012d}" for i in range(1000)]
    user_days = pa.array(np.array(DAYS, dtype="datetime64[D]")[rng.integers(0, 30, 1000)])
    write(
        "raw_data/users",
        {
            "id": pa.array(user_ids),
            "organization_id": pa.array(user_orgs),
            "email": pa.array(["x"] * 1000),
            "role": pa.array(["member"] * 1000),
            "is_active": pa.array(rng.random(1000) < 0.9),
            "created_at": pa.array(
                user_days.to_numpy(zero_copy_only=False).astype("datetime64[us]")
            ).cast(pa.timestamp("us", tz="UTC")),
            "updated_at": pa.array([stamps[0].as_py()] * 1000, pa.timestamp("us", tz="UTC")),
            "event_date": user_days,
        },
    )
    # Cost rows: per organization, day and one of five stages' resources.
    cost_keys = [(o, d, k) for o in range(50) for d in DAYS for k in range(5)]
    m = len(cost_keys)
    write(
        "analytics/cost_tracking",
        {
            "id": pa.array([f"00000000-0000-4000-c000-{i:012d}" for i in range(m)]),
            "organization_id": pa.array(
                [f"00000000-0000-4000-9000-{o:012d}" for o, _, _ in cost_keys]
            ),
            "resource_type": pa.array([f"r{k}" for _, _, k in cost_keys]),
            "operation": pa.array(["op"] * m),
            "quantity": pa.array(rng.uniform(0, 100, m)),
            "unit_cost": pa.array([Decimal("0.0001")] * m, pa.decimal128(18, 6)),
            "total_cost": pa.array(
                [Decimal(f"{x:.6f}") for x in rng.uniform(0, 1, m)], pa.decimal128(18, 6)
            ),
            "currency": pa.array(["USD"] * m),
            "cost_date": pa.array([d for _, d, _ in cost_keys], pa.date32()),
            "created_at": pa.array([stamps[0].as_py()] * m, pa.timestamp("us", tz="UTC")),
        },
    )
    tags = table("raw_data/tags")
    tag_rows = pa.table(
        {
            "id": tag_ids,
            "name": pa.array([f"tag{i}" for i in range(20)]),
            "created_at": pa.array([stamps[0].as_py()] * 20, pa.timestamp("us", tz="UTC")),
            "event_date": pa.array([DAYS[0]] * 20, pa.date32()),
        }
    )
    write("raw_data/tags", {c: tag_rows.column(c) for c in tag_rows.column_names})
    del tags
    tagged = rng.random(n) < 0.3
    write(
        "raw_data/feedback_tags",
        {
            "id": ids,
            "voice_feedback_id": ids,
            "tag_id": pa.array(tag_ids.to_numpy(zero_copy_only=False)[rng.integers(0, 20, n)]),
            "assigned_by": text,
            "created_at": stamps,
            "event_date": days,
        },
        mask=tagged,
    )


# The benchmarked assets: {table name: module holding it and its INPUTS}.
ASSETS = {
    "daily_feedback_summary": "voyce_assets.analytics.daily_feedback_summary",
    "organization_metrics": "voyce_assets.analytics.organization_metrics",
}


def _module(name: str):
    return importlib.import_module(ASSETS[name])


def _inputs(root: Path, name: str) -> dict:
    """What the asset reads (the same partitions, through the same loaders), as Arrow."""
    from voyce_assets.analytics.sql_asset import loaders
    from voyce_assets.resources import Lakehouse

    lakehouse = Lakehouse(catalog="c", root_uri=str(root / "lake"), volumes_root=str(root))
    return {k: load() for k, load in loaders(lakehouse, _module(name).INPUTS, DAYS).items()}


PARAMS = {"start_date": DAYS[0], "end_date": DAYS[-1]}


def built_size(root: Path) -> int:
    """How many feedback the inputs under ``root`` hold (what a reused ``--root`` was built
    with, whatever ``--n`` says now)."""
    from voyce_assets.catalog import table
    from voyce_assets.resources import Lakehouse

    lakehouse = Lakehouse(catalog="c", root_uri=str(root / "lake"), volumes_root=str(root))
    return lakehouse.read(table("raw_data/voice_feedback"), columns=["id"]).num_rows


def child_ours(root: Path, name: str) -> dict:
    # DuckDB imported before the clock, as child_bare imports it (about 0.15 s either side).
    import duckdb  # noqa: F401
    from dagster import AssetMaterialization, DagsterInstance, materialize

    from voyce_assets.resources import Lakehouse
    from voyce_assets.resources.sql_engine import DuckDBEngine
    from voyce_assets.tables import table_key

    module = _module(name)
    instance = DagsterInstance.ephemeral()
    for path in (i.path for i in module.INPUTS if i.required):
        for day in DAYS:
            instance.report_runless_asset_event(
                AssetMaterialization(asset_key=table_key(path), partition=day.isoformat())
            )
    lakehouse = Lakehouse(catalog="c", root_uri=str(root / "lake"), volumes_root=str(root))
    started, cpu = time.perf_counter(), time.process_time()
    result = materialize(
        [getattr(module, name)],
        resources={"lakehouse": lakehouse, "sql_engine": DuckDBEngine()},
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": DAYS[0].isoformat(),
            "dagster/asset_partition_range_end": DAYS[-1].isoformat(),
        },
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert result.success
    return {"seconds": seconds, "cpu": cpu, "rss_mb": peak_rss_mb()}


def child_bare(root: Path, name: str) -> dict:
    import duckdb

    from voyce_assets.analytics.sql_asset import sql_text
    from voyce_assets.resources.sql_engine import DuckDBEngine

    started, cpu = time.perf_counter(), time.process_time()
    inputs = _inputs(root, name)
    read, cpu = time.perf_counter() - started, time.process_time() - cpu
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for n, (table_name, data) in enumerate(sorted(inputs.items())):
        schema, _, tbl = table_name.partition(".")
        con.register(f"t{n}", data)
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        con.execute(f"CREATE VIEW {schema}.{tbl} AS SELECT * FROM t{n}")
    sql = DuckDBEngine.transpile(sql_text(name))
    query_started, query_cpu = time.perf_counter(), time.process_time()
    rows = con.sql(sql, params=PARAMS).to_arrow_table().num_rows
    query = time.perf_counter() - query_started
    cpu += time.process_time() - query_cpu
    return {
        "seconds": read + query,
        "cpu": cpu,
        "read": read,
        "query": query,
        "rows": rows,
        "rss_mb": peak_rss_mb(),
    }


def child_spark(root: Path, name: str) -> dict:
    from voyce_assets.analytics.sql_asset import sql_text
    from voyce_assets.resources.sql_engine import SparkEngine

    engine = SparkEngine()
    engine.session()  # the session's start (about 8 s here) is not the query's
    started = time.perf_counter()
    inputs = _inputs(root, name)
    rows = engine.run(sql_text(name), inputs, PARAMS).num_rows
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": rows, "rss_mb": peak_rss_mb()}


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _spread(runs: list[dict]) -> str:
    """The median wall seconds, with the range when there were several runs."""
    seconds = sorted(r["seconds"] for r in runs)
    if len(seconds) == 1:
        return f"{seconds[0]:.2f}"
    return f"{statistics.median(seconds):.2f} ({seconds[0]:.2f}-{seconds[-1]:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child")
    parser.add_argument("--root", help="inputs already built there (a child's, or to reuse)")
    parser.add_argument("--asset", choices=sorted(ASSETS))
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument(
        "--repeat", type=int, default=1, help="bare and ours alternately, this many times each"
    )
    parser.add_argument("--no-spark", action="store_true", help="leave the Spark contender out")
    args = parser.parse_args()
    if args.child:
        if args.child == "build":
            build(Path(args.root), args.n)
            print(json.dumps({}))
            return
        if args.child == "size":
            print(json.dumps({"n": built_size(Path(args.root))}))
            return
        fn = {"ours": child_ours, "bare": child_bare, "spark": child_spark}[args.child]
        print(json.dumps(fn(Path(args.root), args.asset)))
        return
    built = None
    n = args.n
    if args.root:
        root = Path(args.root)
        n = run_script(__file__, "--child", "size", "--root", str(root))["n"]
    else:
        root = Path(tempfile.mkdtemp(prefix="bench-analytics-"))
        started = time.perf_counter()
        run_script(__file__, "--child", "build", "--root", str(root), "--n", str(args.n))
        built = time.perf_counter() - started
    loads = [os.getloadavg()[0]]
    lines = [
        "# Analytics benchmark",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs, "
        f"{'one run' if args.repeat == 1 else f'{args.repeat} runs, bare and ours alternately,'}"
        f" each, every contender in its own process, over {n:,} feedback (30 days, 50 "
        f"organizations) with their transcriptions, sentiment and enhanced transcriptions, "
        f"1,000 users and 7,500 cost rows, read from Delta"
        + (f" (inputs written in {built:.0f} s)." if built is not None else "."),
        "",
        "| asset | contender | seconds | CPU seconds | peak RSS |",
        "|---|---|---:|---:|---:|",
    ]
    ratios = []
    for name in ASSETS:
        common = ["--root", str(root), "--asset", name]
        bare, ours = [], []
        for _ in range(args.repeat):
            bare.append(run_script(__file__, "--child", "bare", *common))
            ours.append(run_script(__file__, "--child", "ours", *common))
            loads.append(os.getloadavg()[0])
        spark = None if args.no_spark else run_script(__file__, "--child", "spark", *common)
        loads.append(os.getloadavg()[0])
        lines += [
            f"| {name} | bare: the same Arrow read from Delta + the transpiled SQL in DuckDB "
            f"(floor) | {_spread(bare)} (read {_median(bare, 'read'):.2f}, query "
            f"{_median(bare, 'query'):.2f}) | {_median(bare, 'cpu'):.2f} | "
            f"{max(r['rss_mb'] for r in bare):.0f} MB |",
            f"| {name} | ours: the asset on DuckDB (a Dagster run over 30 partitions, Delta "
            f"write, metadata) | {_spread(ours)} | {_median(ours, 'cpu'):.2f} | "
            f"{max(r['rss_mb'] for r in ours):.0f} MB |",
        ]
        if spark is not None:
            lines.append(
                f"| {name} | Spark local (same read, the Arrow handed over; session start "
                f"excluded) | {spark['seconds']:.2f} | | {spark['rss_mb']:.0f} MB |"
            )
        ratio = _median(ours, "seconds") / _median(bare, "seconds")
        ratios.append(
            f"- {name}: ours / bare **{ratio:.2f}x** (goal <= 1.3x), CPU "
            f"{_median(ours, 'cpu') / _median(bare, 'cpu'):.2f}x"
            + (
                f"; Spark / bare {spark['seconds'] / _median(bare, 'seconds'):.2f}x; rows "
                f"{bare[0]['rows']} (DuckDB), {spark['rows']} (Spark)."
                if spark is not None
                else f"; rows {bare[0]['rows']}; Spark not run."
            )
        )
    lines += [
        "",
        *ratios,
        f"- Load average (1 min) before, after each pair and after each asset: "
        f"{', '.join(f'{x:.1f}' for x in loads)}.",
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
