"""Labelled feature vectors of the real width with a learnable signal, for the training and
inference tests and the benchmark: each label shifts a few features' means."""

from __future__ import annotations

import datetime as dt

import numpy as np

from voyce_assets.features import FEATURE_NAMES
from voyce_assets.training.training_dataset import split_of
from voyce_assets_tests.analytics.harness import A, uid

LABELS = ("positive", "neutral", "negative")


def arrays(n: int, seed: int = 0, labels=LABELS, signal: float = 1.5, p=None):
    """``n`` vectors and their labels (drawn with probabilities ``p``, or uniformly): label k
    adds ``signal`` to features 5k..5k+4 and to embedding k, so every family can learn it,
    and none perfectly."""
    rng = np.random.default_rng(seed)
    y = rng.choice(np.asarray(labels, dtype=object), size=n, p=p)
    X = rng.normal(size=(n, len(FEATURE_NAMES)))
    for k, label in enumerate(labels):
        rows = y == label
        X[np.ix_(rows, range(5 * k, 5 * k + 5))] += signal
        X[rows, 36 + k] += signal
    return X, y


def dataset_rows(
    days: list[dt.date], per_day: int, seed: int = 0, labels=LABELS, tag="t", signal=1.5
):
    """``processed_data/training_dataset`` rows (harness form, with ``day``)."""
    out = []
    X, y = arrays(per_day * len(days), seed, labels, signal)
    for i in range(len(y)):
        fid = uid(f"{tag}{i}")
        out.append(
            {
                "voice_feedback_id": fid,
                "organization_id": A,
                "features": [float(v) for v in X[i]],
                "label": str(y[i]),
                "label_confidence": 0.9,
                "label_source": "local/local-lr",
                "split": split_of(fid),
                "day": days[i // per_day],
            }
        )
    return out


def dataset_table(days: list[dt.date], per_day: int, seed: int = 0, labels=LABELS, p=None, tag="t"):
    """``processed_data/training_dataset`` rows for ``days`` as one Arrow table in the spec's
    schema, built from numpy (fast at tens of thousands of rows): ``per_day`` rows a day, the
    same ids and splits as ``dataset_rows``."""
    import pyarrow as pa

    from voyce_assets.catalog import table

    n = per_day * len(days)
    X, y = arrays(n, seed, labels, p=p)
    fids = [uid(f"{tag}{i}") for i in range(n)]
    width = len(FEATURE_NAMES)
    offsets = pa.array(np.arange(0, (n + 1) * width, width, dtype=np.int32))
    schema = pa.schema(
        [f.with_nullable(True) for f in table("processed_data/training_dataset").arrow_schema()]
    )
    columns = {
        "id": pa.array([uid(f"row:{f}") for f in fids]),
        "voice_feedback_id": pa.array(fids),
        "organization_id": pa.array([A] * n),
        "features": pa.ListArray.from_arrays(offsets, pa.array(X.ravel())),
        "label": pa.array([str(v) for v in y]),
        "label_confidence": pa.array([0.9] * n),
        "label_source": pa.array(["local/local-lr"] * n),
        "split": pa.array([split_of(f) for f in fids]),
        "created_at": pa.array(
            [dt.datetime(2026, 1, 1, tzinfo=dt.UTC)] * n, pa.timestamp("us", tz="UTC")
        ),
        "event_date": pa.array([d for d in days for _ in range(per_day)], pa.date32()),
    }
    return pa.table(
        {f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in schema}, schema=schema
    )


def write_dataset(lakehouse, data) -> None:
    """``dataset_table``'s rows into the lakehouse (their days' partitions replaced)."""
    import pyarrow.compute as pc

    from voyce_assets.catalog import table
    from voyce_assets.lake import replace_partitions

    spec = table("processed_data/training_dataset")
    days = pc.unique(data.column("event_date")).to_pylist()
    stats = replace_partitions(lakehouse.ensure_table(spec), spec, data.to_batches(), days)
    assert stats.rows_written == data.num_rows and not stats.quarantined, stats
