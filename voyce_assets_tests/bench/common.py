"""What the benchmarks share: each contender in its own process, and its own peak memory."""

from __future__ import annotations

import json
import subprocess
import sys


def peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM). Not ru_maxrss: Linux keeps that
    across exec, so a child would report its parent's peak at the fork if it was larger."""
    with open("/proc/self/status") as fh:
        line = next(line for line in fh if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def run_script(script: str, *args: str) -> dict:
    """``python script args...`` in its own process: the JSON of its last stdout line."""
    proc = subprocess.run(
        [sys.executable, script, *args], capture_output=True, text=True, check=False
    )
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_child(script: str, mode: str, url: str, lake: str) -> dict:
    """``python script --child mode --url url --lake lake``: the JSON of its last line."""
    return run_script(script, "--child", mode, "--url", url, "--lake", lake)
