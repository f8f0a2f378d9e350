"""Distributed XGBoost benchmark: ``xgboost.spark`` at ``local[2]`` (the training stage's
``SparkTraining`` path above ``distributed_min_rows``) against single-process XGBoost (the
path below it) on the same rows, each contender in its own process.

N synthetic train rows of the real feature width (``voyce_assets/features.py``: 420) with
balanced sample weights, the XGBoost family's default parameters; scored on N/4 held-out
rows. Reported: the fit's wall time (the Spark session's start apart), peak RSS and macro-F1.
Spark's peak RSS is the driver's own (VmHWM) plus the peak of each process under it (the
JVM and its Python workers, sampled every 0.1 s), so an upper bound on their peak together.

``--quick``: a tenth of the rows (20,000 instead of 200,000). Writes
``results/xgboost_spark.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from voyce_assets_tests.bench.common import peak_rss_mb, run_script

RESULTS = Path(__file__).parent / "results" / "xgboost_spark.md"
FULL_ROWS = 200_000
MASTER = "local[2]"


def _data(n: int):
    from voyce_assets_tests.training.synthetic import arrays

    return arrays(n, seed=0), arrays(max(n // 4, 1), seed=1)


def _macro_f1(model, X, y) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, model.predict(X), average="macro"))


def child_single(n: int) -> dict:
    from voyce_assets.training import families as fam

    (X, y), (Xt, yt) = _data(n)
    started = time.perf_counter()
    model = fam.fit(fam.pipeline("xgb", fam.DEFAULTS["xgb"], 42), X, y)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "macro_f1": _macro_f1(model, Xt, yt),
        "rss_mb": peak_rss_mb(),
        "workers": 1,
    }


class _TreePeaks:
    """The peak RSS (VmHWM) of every process under this one, sampled until stopped."""

    def __init__(self) -> None:
        self.peaks: dict[int, float] = {}
        self.running = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while self.running.is_set():
            for child in me.children(recursive=True):
                try:
                    with open(f"/proc/{child.pid}/status") as fh:
                        line = next(li for li in fh if li.startswith("VmHWM:"))
                    peak = int(line.split()[1]) / 1024
                except (OSError, StopIteration):
                    continue
                self.peaks[child.pid] = max(self.peaks.get(child.pid, 0.0), peak)
            time.sleep(0.1)

    def __enter__(self):
        self.running.set()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.running.clear()
        self.thread.join()


def child_spark(n: int) -> dict:
    from voyce_assets.training import families as fam
    from voyce_assets.training.compute import SparkTraining
    from voyce_assets.training.device import place

    (X, y), (Xt, yt) = _data(n)
    with _TreePeaks() as tree:
        compute = SparkTraining(master=MASTER)
        started = time.perf_counter()
        spark = compute.session()
        session_seconds = time.perf_counter() - started
        jobs_before = len(spark.sparkContext.statusTracker().getJobIdsForGroup())
        started = time.perf_counter()
        fitted = compute.fit("xgb", fam.DEFAULTS["xgb"], 42, X, y, place("cpu", ["xgb"]), 1)
        seconds = time.perf_counter() - started
        jobs = len(spark.sparkContext.statusTracker().getJobIdsForGroup()) - jobs_before
        time.sleep(0.3)  # one more sample of the workers
    assert fitted.how["training_path"] == "xgboost.spark", fitted.how
    driver = peak_rss_mb()
    return {
        "seconds": seconds,
        "session_seconds": session_seconds,
        "macro_f1": _macro_f1(fitted.model, Xt, yt),
        "rss_mb": driver + sum(tree.peaks.values()),
        "driver_rss_mb": driver,
        "tree_rss_mb": sum(tree.peaks.values()),
        "processes": len(tree.peaks),
        "workers": fitted.how["num_workers"],
        "spark_jobs": jobs,
    }


def report(n: int, quick: bool, single: dict, spark: dict) -> str:
    cpus = os.cpu_count()
    load = os.getloadavg()[0]
    rows = [
        "| contender | workers | fit seconds | peak RSS | test macro-F1 |",
        "|---|---|---|---|---|",
        f"| single-process XGBoost (`families.fit`, n_jobs=-1) | 1 | {single['seconds']:.1f} | "
        f"{single['rss_mb']:.0f} MB | {single['macro_f1']:.4f} |",
        f"| `xgboost.spark` at `{MASTER}` (`SparkTraining.fit`) | {spark['workers']} | "
        f"{spark['seconds']:.1f} (+ {spark['session_seconds']:.1f} session start) | "
        f"{spark['rss_mb']:.0f} MB (driver {spark['driver_rss_mb']:.0f} + the JVM and "
        f"{spark['processes'] - 1} PySpark process(es) under it, each at its own peak, "
        f"{spark['tree_rss_mb']:.0f}) | "
        f"{spark['macro_f1']:.4f} |",
    ]
    ratio = spark["seconds"] / single["seconds"]
    return "\n".join(
        [
            "# xgboost.spark vs single-process XGBoost",
            "",
            f"{n:,} train rows x 420 features ({'--quick' if quick else 'full'}), "
            f"{max(n // 4, 1):,} test rows; XGBoost's default parameters (200 rounds, depth 6, "
            "hist), balanced sample weights. Each contender in its own process. Machine: "
            f"{cpus} CPUs, load average {load:.1f} at the end (other work shares the "
            f"machine: compare the two rows, not the seconds), Python "
            f"{platform.python_version()}.",
            "",
            *rows,
            "",
            f"- Spark ran {spark['spark_jobs']} job(s) for the fit (its barrier training "
            "stage among them: the training is Spark's).",
            f"- `xgboost.spark` took {ratio:.1f}x the single-process time here: at "
            f"`{MASTER}` both contenders share the same cores, so Spark only adds its "
            "hand-over and each round's allreduce between workers; it pays on a cluster, "
            "where the workers are other machines and the rows no longer fit one.",
            f"- macro-F1 difference {abs(spark['macro_f1'] - single['macro_f1']):.4f}.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a tenth of the rows")
    parser.add_argument("--child", choices=["single", "spark"], help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.child:
        out = child_single(args.rows) if args.child == "single" else child_spark(args.rows)
        print(json.dumps(out))
        return
    n = FULL_ROWS // 10 if args.quick else FULL_ROWS
    single = run_script(__file__, "--child", "single", "--rows", str(n))
    print(f"single-process: {single}", flush=True)
    spark = run_script(__file__, "--child", "spark", "--rows", str(n))
    print(f"xgboost.spark: {spark}", flush=True)
    text = report(n, args.quick, single, spark)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
