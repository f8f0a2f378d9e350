"""Import weight: loading the code location, or the sync, pays only for what it uses.

Dagster imports ``voyce_assets.definitions`` in every process it starts (the webserver, the
daemon, each step of a multiprocess run), and the sync runs in processes of its own. The heavy
libraries (machine learning, audio, charts, Spark) are imported inside the functions that use
them, never at module top of a module loaded with these. Each probe is a fresh process: what
it imported and its peak resident memory are its own. Memory, not time (time depends on the
machine's load; docs/benchmarks.md has the timings).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from voyce_assets_tests.conftest import subprocess_env

# Top-level packages none of these imports may load.
HEAVY = (
    "sklearn",
    "scipy",
    "pandas",
    "mlflow",
    "torch",
    "faster_whisper",
    "ctranslate2",
    "librosa",
    "matplotlib",
    "pyspark",
    "sentence_transformers",
    "xgboost",
    "lightgbm",
    "numba",
)
# Peak RSS budgets in MB (Dagster alone is about 65 MB, pyarrow with numpy about 50 MB).
CODE_LOCATION_MB = 200
SYNC_MB = 150

# Records, for each heavy package, the innermost frame of ours that imported it, then prints
# what was imported and the process's own peak RSS (VmHWM: ru_maxrss would count the pages of
# the pytest process the child was spawned from).
PROBE = """
import importlib.abc, json, sys, traceback
HEAVY = set({heavy!r})
culprits = {{}}

class Spy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in HEAVY and top not in culprits:
            ours = [f for f in traceback.extract_stack() if "/voyce_assets/" in f.filename]
            where = ours[-1] if ours else None
            culprits[top] = f"{{where.filename}}:{{where.lineno}}" if where else "?"
        return None

sys.meta_path.insert(0, Spy())
{imports}
with open("/proc/self/status") as fh:
    hwm = next(line for line in fh if line.startswith("VmHWM:"))
print(json.dumps({{
    "heavy": {{m: culprits.get(m, "?") for m in sorted(HEAVY) if m in sys.modules}},
    "rss_mb": int(hwm.split()[1]) / 1024,
}}))
"""

CODE_LOCATION = "import voyce_assets.definitions"
SYNC = "from voyce_assets.resources.lakehouse import Lakehouse\nimport voyce_assets.ingestion.sync"


def _probe(imports: str, voyce_home, **env: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY, imports=imports)],
        capture_output=True,
        text=True,
        env=subprocess_env(VOYCE_HOME=str(voyce_home), **env),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("env", ["local", "prod"])
def test_loading_the_code_location_imports_no_heavy_library(env, voyce_home):
    found = _probe(CODE_LOCATION, voyce_home, VOYCE_ENV=env)
    assert not found["heavy"], f"imported at load (package: first importer of ours): {found}"
    assert found["rss_mb"] <= CODE_LOCATION_MB, found


def test_the_sync_imports_no_heavy_library(voyce_home):
    found = _probe(SYNC, voyce_home)
    assert not found["heavy"], f"imported at load (package: first importer of ours): {found}"
    assert found["rss_mb"] <= SYNC_MB, found


def test_the_probe_sees_a_heavy_import(voyce_home):
    # The guard can fail: a module that imports scikit-learn at its top is reported with
    # the line of ours that imported it.
    found = _probe(CODE_LOCATION + "\nimport voyce_assets.label_encoded", voyce_home)
    assert "sklearn" in found["heavy"]
    assert "label_encoded.py" in found["heavy"]["sklearn"]
