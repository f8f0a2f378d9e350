"""Bounded training data: the labelled vectors of a window of days, sampled down to a row cap,
read in batches as float32.

Two streamed passes over one snapshot of ``processed_data/training_dataset``, a file at a
time:

1. ``plan`` (narrow columns: id, label, split, label source): the rows of each
   (split, label) and the smallest sampling keys of each, at most ``cap`` of them; from them
   the quotas (enough to judge whether the day can train, before any vector is read);
2. ``read`` (the features too, in small batches): a row is kept when its key is among the
   ``quota`` smallest of its (split, label); its vector goes straight into a preallocated
   float32 matrix.

A row's sampling key is a seeded 64-bit hash of its ``voice_feedback_id``: the sample depends
on the rows and the seed alone (not on file layout or row order), the same seed samples the
same rows, and a larger cap samples (almost always: a label's quota can
fall by one as the cap rises) a superset. Memory holds the sample (``cap`` rows of
float32), a batch and ``cap`` keys per group: it is bounded by the cap, not by the history.

Quotas: each split keeps its share of the cap (70/15/15 of what is available), sampled from
its own rows only. Within validation and test each label keeps exactly its share (their
metrics and the chance check see the population's label frequencies). Within train each
label keeps its share too, but at least ``min_class_share`` of the split's quota (all its rows
if it has fewer), so a rare class keeps enough rows to be learnt.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voyce_assets.catalog import table
from voyce_assets.features import FEATURE_NAMES, SPLITS

DATASET = table("processed_data/training_dataset")
SPLIT_NAMES = tuple(name for name, _ in SPLITS)
STRATEGY = (
    "stratified by label within each split (train: a floor of min_class_share per label); "
    "rows with the smallest seeded hash of voice_feedback_id"
)
SURVEY_COLUMNS = ["voice_feedback_id", "label", "label_source", "split", "event_date"]
GATHER_COLUMNS = ["voice_feedback_id", "label", "split", "event_date", "features"]
# 8,192 vectors of 420 doubles: ~28 MB decoded a batch; the survey's narrow rows (an id, a
# label, a split: ~100 bytes) come 8 times as many at once.
FEATURE_BATCH_ROWS = 8_192
KEEP_ALL = np.iinfo(np.uint64).max

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@dataclass
class Split:
    X: np.ndarray  # float32, (rows, len(FEATURE_NAMES))
    y: np.ndarray  # the labels (object)
    keys: np.ndarray  # each row's sampling key (uint64)


@dataclass
class Data:
    splits: dict[str, Split]
    labels: list[str]
    rows: int  # labelled rows available in the window, before sampling
    sources: dict[str, int] = field(default_factory=dict)
    sampling: dict = field(default_factory=dict)

    @property
    def used(self) -> int:
        return sum(len(s.y) for s in self.splits.values())


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit moves every output bit."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def sample_keys(ids: pa.Array | pa.ChunkedArray, seed: int) -> np.ndarray:
    """Each id's sampling key: FNV-1a of its UTF-8 bytes, started from the seed, then mixed
    (vectorised over the batch: one numpy step per character position)."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    ids = pc.cast(pc.fill_null(ids, ""), pa.large_string())
    n = len(ids)
    if n == 0:
        return np.empty(0, np.uint64)
    offsets = np.frombuffer(ids.buffers()[1], np.int64)[ids.offset : ids.offset + n + 1]
    data = ids.buffers()[2]
    data = np.frombuffer(data, np.uint8) if data is not None else np.empty(0, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    with np.errstate(over="ignore"):
        start = _mix(np.array([seed & 0xFFFFFFFFFFFFFFFF], np.uint64))[0] ^ _FNV_OFFSET
        h = np.full(n, start, np.uint64)
        for j in range(int(lengths.max())):
            has = lengths > j
            byte = np.zeros(n, np.uint64)
            byte[has] = data[starts[has] + j]
            h = np.where(has, (h ^ byte) * _FNV_PRIME, h)
        return _mix(h)


def largest_remainder(weights: dict[str, int], budget: int) -> dict[str, int]:
    """``budget`` shared out in proportion to ``weights``, whole numbers summing to it (the
    largest fractions round up; ties by name)."""
    total = sum(weights.values())
    if total == 0 or budget <= 0:
        return dict.fromkeys(weights, 0)
    out = {k: budget * w // total for k, w in weights.items()}
    order = sorted(weights, key=lambda k: (-(budget * weights[k] % total), k))
    for k in order[: budget - sum(out.values())]:
        out[k] += 1
    return out


def allot(counts: dict[str, int], budget: int, floor: int = 0) -> dict[str, int]:
    """Rows to keep per label: their share of ``budget``, but at least ``floor`` (or all a
    label has, if fewer); the labels above the floor share what the floors leave."""
    if sum(counts.values()) <= budget:
        return dict(counts)
    fixed: dict[str, int] = {}
    while True:
        free = {c: n for c, n in counts.items() if c not in fixed}
        shares = largest_remainder(free, max(0, budget - sum(fixed.values())))
        low = [c for c in free if shares[c] < min(counts[c], floor)]
        if not low:
            return {c: min(counts[c], n) for c, n in {**fixed, **shares}.items()}
        fixed |= {c: min(counts[c], floor) for c in low}


def quotas(
    counts: dict[str, dict[str, int]], cap: int, min_class_share: float
) -> dict[str, dict[str, int]]:
    """Rows to keep per split and label under ``cap`` (0: every row)."""
    total = sum(sum(c.values()) for c in counts.values())
    if cap <= 0 or total <= cap:
        return {s: dict(c) for s, c in counts.items()}
    per_split = largest_remainder({s: sum(c.values()) for s, c in counts.items()}, cap)
    out = {}
    for s, c in counts.items():
        floor = math.ceil(per_split[s] * min_class_share) if s == "train" else 0
        out[s] = allot(c, per_split[s], floor)
    return out


def _window(day: dt.date, window_days: int) -> list[dt.date] | None:
    return [day - dt.timedelta(days=n) for n in range(window_days)] if window_days > 0 else None


def _upto(batch: pa.RecordBatch, day: dt.date) -> pa.RecordBatch:
    """The batch's labelled rows of a known split up to ``day``."""
    keep = pc.and_(
        pc.and_(
            pc.less_equal(batch.column("event_date"), pa.scalar(day, pa.date32())),
            pc.is_valid(batch.column("label")),
        ),
        pc.is_in(batch.column("split"), pa.array(SPLIT_NAMES)),
    )
    return batch.filter(pc.fill_null(keep, False))


def _groups(batch: pa.RecordBatch) -> Iterator[tuple[str, str, np.ndarray]]:
    """(split, label, the batch's row positions of that pair), for each pair present."""
    split = pc.dictionary_encode(batch.column("split"))
    label = pc.dictionary_encode(batch.column("label"))
    s_codes = split.indices.to_numpy(zero_copy_only=False)
    l_codes = label.indices.to_numpy(zero_copy_only=False)
    for i, s in enumerate(split.dictionary.to_pylist()):
        in_split = s_codes == i
        for j, lab in enumerate(label.dictionary.to_pylist()):
            rows = np.flatnonzero(in_split & (l_codes == j))
            if len(rows):
                yield s, lab, rows


@dataclass
class _Survey:
    counts: dict[str, Counter] = field(default_factory=lambda: {s: Counter() for s in SPLIT_NAMES})
    smallest: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    sources: Counter = field(default_factory=Counter)


def survey(batches, day: dt.date, seed: int, cap: int) -> _Survey:
    """Pass 1: counts per (split, label), the ``cap`` smallest keys of each, label sources."""
    out = _Survey()
    pending: dict[tuple[str, str], list[np.ndarray]] = {}
    for raw in batches:
        batch = _upto(raw, day)
        if not batch.num_rows:
            continue
        keys = sample_keys(batch.column("voice_feedback_id"), seed)
        for v in pc.value_counts(batch.column("label_source")).to_pylist():
            out.sources[v["values"]] += v["counts"]
        for s, lab, rows in _groups(batch):
            out.counts[s][lab] += len(rows)
            if cap <= 0:
                continue  # no cap: every row is kept, no key is needed
            pending.setdefault((s, lab), []).append(keys[rows])
            if sum(len(k) for k in pending[(s, lab)]) > 2 * cap:
                merged = np.concatenate(pending[(s, lab)])
                pending[(s, lab)] = [np.partition(merged, cap - 1)[:cap]]
    for group, parts in pending.items():
        merged = np.concatenate(parts)
        if cap > 0 and len(merged) > cap:
            merged = np.partition(merged, cap - 1)[:cap]
        out.smallest[group] = np.sort(merged)
    return out


def _threshold(smallest: np.ndarray, available: int, quota: int) -> int | None:
    """The largest key kept (None: keep no row)."""
    if quota <= 0:
        return None
    if quota >= available:
        return int(KEEP_ALL)
    return int(smallest[quota - 1])


def gather(batches, day: dt.date, seed: int, keep: dict[tuple[str, str], int], size: dict):
    """Pass 2: the kept rows' vectors (float32), labels and keys, per split."""
    width = len(FEATURE_NAMES)
    X = {s: np.empty((size[s], width), np.float32) for s in SPLIT_NAMES}
    y = {s: np.empty(size[s], object) for s in SPLIT_NAMES}
    keys_out = {s: np.empty(size[s], np.uint64) for s in SPLIT_NAMES}
    filled = dict.fromkeys(SPLIT_NAMES, 0)
    for raw in batches:
        batch = _upto(raw, day)
        if not batch.num_rows:
            continue
        keys = sample_keys(batch.column("voice_feedback_id"), seed)
        for s, lab, rows in _groups(batch):
            limit = keep.get((s, lab))
            if limit is None:
                continue
            rows = rows[keys[rows] <= np.uint64(limit)]
            # Equal keys (a feedback twice) could pass the quota: never past the split's size.
            rows = rows[: size[s] - filled[s]]
            if not len(rows):
                continue
            vectors = batch.column("features").take(pa.array(rows))
            lengths = pc.list_value_length(vectors).to_numpy(zero_copy_only=False)
            if len(lengths) and (lengths.min() != width or lengths.max() != width):
                raise ValueError(f"a feature vector of {s} is not {width} values long")
            flat = pc.list_flatten(vectors).to_numpy(zero_copy_only=False)
            at = slice(filled[s], filled[s] + len(rows))
            X[s][at] = flat.reshape(len(rows), width)  # float64 -> float32, this batch only
            y[s][at] = lab
            keys_out[s][at] = keys[rows]
            filled[s] += len(rows)
    return {s: Split(X[s][: filled[s]], y[s][: filled[s]], keys_out[s][: filled[s]]) for s in X}


def _param_name(value: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]", "_", value)


def mlflow_params(sampling: dict) -> dict[str, object]:
    """The sampling record as flat MLflow parameters (``sample_*``)."""
    out: dict[str, object] = {
        f"sample_{k}": v for k, v in sampling.items() if not isinstance(v, dict)
    }
    for s, split in sampling["splits"].items():
        out[f"sample_{s}_rows_available"] = split["available"]
        out[f"sample_{s}_rows_used"] = split["used"]
        for lab, n in split["classes"].items():
            out[f"sample_{s}_{_param_name(lab)}_available"] = n["available"]
            out[f"sample_{s}_{_param_name(lab)}_used"] = n["used"]
    return out


@dataclass
class Plan:
    """What one day's training reads, from the survey alone (no vector read yet): the rows
    available and to keep per split and label, and the key limit of each (split, label)."""

    day: dt.date
    settings: dict
    counts: dict[str, dict[str, int]]
    quota: dict[str, dict[str, int]]
    keep: dict[tuple[str, str], int]
    sources: dict[str, int]
    dataset: object  # the window's files (one snapshot for both passes), or None
    batch_rows: int

    @property
    def rows(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())

    @property
    def sizes(self) -> dict[str, int]:
        return {s: sum(self.quota[s].values()) for s in SPLIT_NAMES}

    @property
    def labels(self) -> list[str]:
        return sorted({lab for c in self.counts.values() for lab in c})

    def classes(self, split: str) -> list[str]:
        """The labels the split will hold."""
        return sorted(lab for lab, n in self.quota[split].items() if n > 0)

    def scan(self, columns: list[str], size: int) -> Iterator[pa.RecordBatch]:
        """The window's files one after another, ``size`` rows a batch. Not one scan of the
        whole dataset: its read-ahead holds tens of MB of batches across files whatever the
        batch size; a file's own scan holds at most that file."""
        if self.dataset is None:
            return
        for fragment in self.dataset.get_fragments():
            yield from fragment.to_batches(
                schema=self.dataset.schema, columns=columns, batch_size=size, batch_readahead=1
            )


def plan(
    lakehouse,
    day: dt.date,
    window_days: int,
    cap: int = 0,
    seed: int = 42,
    min_class_share: float = 0.0,
    batch_rows: int = FEATURE_BATCH_ROWS,
) -> Plan:
    """Pass 1 for ``day``: the labelled rows up to it (the last ``window_days`` days, or
    all), and which to keep so that at most ``cap`` (0: all) remain, stratified as the
    module says."""
    from voyce_assets.lake import open_dataset

    dates = _window(day, window_days)
    dataset = None
    if lakehouse.exists(DATASET):
        dataset = open_dataset(
            lakehouse.table_uri(DATASET), DATASET, lakehouse.storage_options, dates
        )
    out = Plan(day, {}, {}, {}, {}, {}, dataset, batch_rows)
    found = survey(out.scan(SURVEY_COLUMNS, 8 * batch_rows), day, seed, cap)
    out.counts = {s: dict(found.counts[s]) for s in SPLIT_NAMES}
    out.quota = quotas(out.counts, cap, min_class_share)
    out.sources = dict(found.sources)
    for s, per_label in out.counts.items():
        for lab, available in per_label.items():
            smallest = found.smallest.get((s, lab), np.empty(0, np.uint64))
            limit = _threshold(smallest, available, out.quota[s][lab])
            if limit is not None:
                out.keep[(s, lab)] = limit
    out.settings = {
        "strategy": STRATEGY if 0 < cap < out.rows else "every row (under the cap)",
        "window_days": window_days,
        "max_train_rows": cap,
        "min_class_share": min_class_share,
        "seed": seed,
        "dtype": "float32",
    }
    return out


def read(planned: Plan) -> Data:
    """Pass 2: the planned rows' vectors, read ``batch_rows`` at a time into float32."""
    p = planned
    seed = p.settings["seed"]
    splits = gather(p.scan(GATHER_COLUMNS, p.batch_rows), p.day, seed, p.keep, p.sizes)
    sampling = {
        **p.settings,
        "rows_available": p.rows,
        "rows_used": sum(len(s.y) for s in splits.values()),
        "splits": {
            s: {
                "available": sum(p.counts[s].values()),
                "used": len(splits[s].y),
                "classes": {
                    lab: {
                        "available": p.counts[s].get(lab, 0),
                        "used": int((splits[s].y == lab).sum()),
                    }
                    for lab in p.labels
                },
            }
            for s in SPLIT_NAMES
        },
    }
    return Data(splits, p.labels, p.rows, dict(p.sources), sampling)


def load(lakehouse, day: dt.date, window_days: int, cap: int = 0, **options) -> Data:
    """Both passes: ``plan`` (``options``: its seed, min_class_share, batch_rows), ``read``."""
    return read(plan(lakehouse, day, window_days, cap, **options))
