"""Bounded training data: the window, the row cap with stratified sampling (each split from
its own rows, label shares kept, a floor for a rare class in train), deterministic by seed,
read in batches as float32, with memory bounded by the cap and not the history."""

import datetime as dt
import json
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow.compute as pc
import pytest

from voyce_assets.training import sampling
from voyce_assets.training.model_registry import REGISTRY, TrainingConfig, load
from voyce_assets_tests.training.synthetic import dataset_table, write_dataset
from voyce_assets_tests.training.test_model_registry import train

DAY = dt.date(2026, 11, 21)  # a Saturday
SKEW = [0.78, 0.20, 0.02]  # positive, neutral, negative: negative is rare


@pytest.fixture
def skewed(ml_stores):
    """6,000 rows over two days, 2% of them negative."""
    lakehouse, _ = ml_stores
    data = dataset_table([DAY - dt.timedelta(days=1), DAY], 3_000, p=SKEW)
    write_dataset(lakehouse, data)
    return lakehouse, data


def _by_key(data, seed):
    """The source rows by their sampling key: (label, split, float32 vector)."""
    keys = sampling.sample_keys(data.column("voice_feedback_id"), seed)
    X = np.asarray(pc.list_flatten(data.column("features")).to_numpy(), np.float32)
    X = X.reshape(data.num_rows, -1)
    labels, splits = data.column("label").to_pylist(), data.column("split").to_pylist()
    return {int(k): (labels[i], splits[i], X[i]) for i, k in enumerate(keys)}


def test_the_cap_keeps_each_splits_share_each_labels_share_and_a_floor_for_a_rare_class(skewed):
    lakehouse, data = skewed
    cap = 1_000
    got = load(lakehouse, DAY, 90, cap, seed=7, min_class_share=0.05)
    assert got.rows == 6_000 and got.used == cap
    available = {s: int(pc.sum(pc.equal(data.column("split"), s)).as_py()) for s in got.splits}
    for name, split in got.splits.items():
        # Each split's share of the cap is its share of the rows (to a row).
        assert abs(len(split.y) - cap * available[name] / 6_000) <= 1
        assert split.X.dtype == np.float32 and split.X.shape == (len(split.y), 420)
    counts = got.sampling["splits"]
    for name in ("validation", "test"):
        # Honest evaluation: every label keeps its own share of the split, to a row.
        for label, n in counts[name]["classes"].items():
            expected = n["available"] * counts[name]["used"] / counts[name]["available"]
            assert abs(n["used"] - expected) <= 1, (name, label, n)
    train_counts = counts["train"]["classes"]
    floor = int(np.ceil(0.05 * counts["train"]["used"]))
    rare = train_counts["negative"]
    # The rare class is ~2% of the rows; sampled in proportion it would keep ~14 of 700.
    assert rare["used"] == min(rare["available"], floor) and rare["used"] > 0.03 * 700
    # The others keep their ratio to each other.
    ratio = train_counts["positive"]["available"] / train_counts["neutral"]["available"]
    assert train_counts["positive"]["used"] / train_counts["neutral"]["used"] == pytest.approx(
        ratio, rel=0.02
    )
    # Every row sampled is a row of its split, with its own label and vector.
    source = _by_key(data, 7)
    for name, split in got.splits.items():
        assert len(set(split.keys.tolist())) == len(split.keys)
        for key, label, vector in zip(split.keys.tolist(), split.y, split.X, strict=True):
            assert source[key][:2] == (label, name)
            np.testing.assert_array_equal(source[key][2], vector)


def test_sampling_is_deterministic_by_seed_and_ignores_the_row_order(skewed, tmp_path):
    from voyce_assets.resources import Lakehouse

    lakehouse, data = skewed
    first = load(lakehouse, DAY, 0, 600, seed=1)
    again = load(lakehouse, DAY, 0, 600, seed=1)
    # The same rows written in the reverse order, elsewhere: the same sample.
    other = Lakehouse(catalog="c", root_uri=str(tmp_path / "other"), volumes_root=str(tmp_path))
    write_dataset(other, data.take(np.arange(data.num_rows)[::-1]))
    reordered = load(other, DAY, 0, 600, seed=1)
    changed = load(lakehouse, DAY, 0, 600, seed=2)

    def rows(d, seed):
        source = _by_key(data, seed)
        return {
            name: sorted(tuple(source[k][2][:3]) for k in s.keys.tolist())
            for name, s in d.splits.items()
        }

    assert rows(first, 1) == rows(again, 1) == rows(reordered, 1)
    assert first.used == changed.used == 600
    a, b = rows(first, 1)["train"], rows(changed, 2)["train"]
    assert len(set(a) & set(b)) < 0.5 * len(a)  # another seed, mostly other rows
    # A larger cap with the same seed keeps every row the smaller one kept.
    larger = load(lakehouse, DAY, 0, 1_200, seed=1)
    for name in first.splits:
        assert set(first.splits[name].keys.tolist()) <= set(larger.splits[name].keys.tolist())


def test_quotas_floor_only_train_and_never_pass_the_cap():
    counts = {
        "train": {"a": 9_000, "b": 900, "c": 100},
        "validation": {"a": 1_800, "b": 180, "c": 20},
        "test": {"a": 1_800, "b": 180, "c": 20},
    }
    q = sampling.quotas(counts, 1_400, 0.1)
    assert sum(sum(c.values()) for c in q.values()) == 1_400
    assert sum(q["train"].values()) == 1_000 and q["train"]["c"] == 100  # floor: 10% of 1,000
    assert q["validation"] == {"a": 180, "b": 18, "c": 2}  # exact shares
    assert sampling.quotas(counts, 0, 0.1) == counts  # no cap
    assert sampling.quotas(counts, 1_000_000, 0.1) == counts  # under the cap
    # A class with fewer rows than its floor keeps all of them.
    assert sampling.allot({"a": 1_000, "b": 3}, 100, floor=20) == {"a": 97, "b": 3}


def test_the_default_window_is_90_days_and_what_was_sampled_is_recorded(ml_stores):
    lakehouse, registry = ml_stores
    old, inside = DAY - dt.timedelta(days=90), DAY - dt.timedelta(days=89)
    write_dataset(lakehouse, dataset_table([old, inside, DAY], 200))
    assert TrainingConfig().window_days == 90
    result = train(lakehouse, registry, DAY, families=["lr"], max_train_rows=300)
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    # The day 90 days back is outside the window; the day 89 back inside it.
    assert meta["dataset_rows"].value == 400 and meta["rows_used"].value == 300
    (row,) = lakehouse.read(REGISTRY).to_pylist()
    recorded = json.loads(row["tags"])["training_data"]
    assert recorded["window_days"] == 90 and recorded["max_train_rows"] == 300
    assert recorded["rows_available"] == 400 and recorded["rows_used"] == 300
    assert recorded["strategy"].startswith("stratified by label")
    train_used = recorded["splits"]["train"]["used"]
    assert sum(c["used"] for c in recorded["splits"]["train"]["classes"].values()) == train_used
    run = registry.client().get_run(row["mlflow_run_id"])
    params = run.data.params
    assert params["sample_rows_used"] == "300" and params["sample_rows_available"] == "400"
    assert params["sample_max_train_rows"] == "300" and params["sample_window_days"] == "90"
    assert params["sample_train_rows_used"] == str(train_used)
    assert params["sample_train_negative_used"] == str(
        recorded["splits"]["train"]["classes"]["negative"]["used"]
    )
    assert run.data.metrics["train_rows"] == train_used
    artifacts = {a.path for a in registry.client().list_artifacts(run.info.run_id)}
    assert "training_data.json" in artifacts
    # The model is fitted on float32 and still signed (and served) as 420 doubles.
    import mlflow.models

    with registry.session(experiment=False):
        info = mlflow.models.get_model_info(row["mlflow_model_uri"])
    assert info.signature.inputs.to_dict()[0]["tensor-spec"]["dtype"] == "float64"


MEASURE = textwrap.dedent(
    """
    import datetime as dt, json, sys, tracemalloc
    import pyarrow as pa
    from voyce_assets.resources import Lakehouse
    from voyce_assets.training.sampling import load
    # What load() imports on first use (deltalake, pyarrow.dataset, pandas) is imported
    # before the measure: the measure is the rows held, not modules.
    import deltalake, pyarrow.dataset, voyce_assets.lake  # noqa: E401, F401
    root, cap = sys.argv[1], int(sys.argv[2])
    lakehouse = Lakehouse(catalog="c", root_uri=root, volumes_root=root)
    tracemalloc.start()
    data = load(lakehouse, dt.date(2026, 11, 21), 0, cap, batch_rows=500)
    _, numpy_and_python = tracemalloc.get_traced_memory()
    arrow = pa.default_memory_pool().max_memory()
    print(json.dumps({"peak": numpy_and_python + arrow, "arrow": arrow, "used": data.used}))
    """
)


def test_peak_memory_of_loading_is_bounded_by_the_cap_not_the_history(tmp_path):
    """Numpy's and Python's peak (tracemalloc) plus Arrow's pool's peak, each history in a
    process of its own: eight times the history, about the same peak."""
    from voyce_assets.resources import Lakehouse

    cap, peaks = 1_000, {}
    for rows in (4_000, 32_000):
        root = tmp_path / str(rows)
        lakehouse = Lakehouse(catalog="c", root_uri=str(root), volumes_root=str(root))
        # 2,000 rows a day (a file each, 6.4 MB: what the reader holds at once is a file's
        # part, the same for both), 2 days or 16.
        days = [DAY - dt.timedelta(days=n) for n in range(rows // 2_000)]
        write_dataset(lakehouse, dataset_table(days, 2_000))
        proc = subprocess.run(
            [sys.executable, "-c", MEASURE, str(root), str(cap)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out["used"] == cap
        peaks[rows] = out["peak"]
    history_mb = 32_000 * 420 * 8 / 2**20  # what all of it would hold as doubles: 103 MB
    assert peaks[32_000] < 0.6 * history_mb * 2**20, peaks
    assert peaks[32_000] < 1.5 * peaks[4_000], peaks
