"""Import weight benchmark: what a process pays before it does anything.

Each import runs in a fresh process, N times (default 5): the median wall time and CPU time
(user + system, steadier than wall time on a loaded machine), and the peak RSS (VmHWM, the
highest run). ``import dagster`` alone is the floor. Goals: the code location
(``import voyce_assets.definitions``) <= 1.5 s and <= 200 MB; the sync's import <= 150 MB.
``--repo PATH`` measures another checkout (e.g. the code before a change).

Writes ``results/imports.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).parent / "results" / "imports.md"
IMPORTS = {
    "python alone": "pass",
    "import dagster (the floor)": "import dagster",
    "the code location (voyce_assets.definitions)": "import voyce_assets.definitions",
    "the sync (Lakehouse + ingestion.sync)": (
        "from voyce_assets.resources.lakehouse import Lakehouse\nimport voyce_assets.ingestion.sync"
    ),
}
HWM = (
    "\nwith open('/proc/self/status') as fh:"
    "\n    print(next(l for l in fh if l.startswith('VmHWM:')).split()[1])"
)


def measure(statement: str, runs: int, repo: Path) -> dict:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VOYCE_")},
        "PYTHONPATH": str(repo),
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
    walls, cpus, peaks = [], [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", statement + HWM],
            capture_output=True,
            text=True,
            env=env,
            cwd=repo,
            check=True,
        )
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        peaks.append(int(proc.stdout.split()[-1]) / 1024)
    return {
        "wall": statistics.median(walls),
        "wall_range": (min(walls), max(walls)),
        "cpu": statistics.median(cpus),
        "rss": max(peaks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout to measure")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    loads = [os.getloadavg()[0]]
    rows = []
    for name, statement in IMPORTS.items():
        r = measure(statement, args.runs, args.repo.resolve())
        loads.append(os.getloadavg()[0])
        lo, hi = r["wall_range"]
        rows.append(
            f"| {name} | {r['wall']:.2f} ({lo:.2f}-{hi:.2f}) | {r['cpu']:.2f} | {r['rss']:.0f} |"
        )
    lines = [
        f"Import benchmark, {dt.date.today()} ({os.cpu_count()} CPUs, load average "
        f"{min(loads):.1f}-{max(loads):.1f}), {args.runs} fresh processes each"
        + ("" if args.repo.resolve() == REPO else f", checkout {args.repo}")
        + ".",
        "",
        "| import | wall s, median (range) | CPU s, median | peak RSS MB |",
        "|---|---:|---:|---:|",
        *rows,
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
