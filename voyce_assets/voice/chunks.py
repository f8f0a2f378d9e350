"""How a voice run's recordings are cut into chunks, spread over tasks, and staged.

A chunk is the unit of work and of progress: a few minutes of audio, the same chunks whatever
runs them (one process, or Spark tasks), so packing, and with it every transcript, is the same
on both paths. Chunks are dealt to tasks by size, largest first onto the least loaded task, so
a task of long recordings does not finish last alone.

A finished chunk's rows are staged as one JSON-lines file on the processed-audio volume, named
by what produced them (the work kind, the engine, each recording and its input file's size and
modification time): a retry or a rerun of a run that died reads them back instead of redoing
the work, and a changed recording or engine never reads stale rows. The run removes what it
staged once its rows are committed; anything older than a week is an abandoned run's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import json
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

STALE_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class WorkItem:
    """One recording to work on, with all a task needs to know about it."""

    feedback_id: str
    organization_id: str
    event_date: str  # ISO date: the partition
    upload: str | None  # the upload's path; None when the path is unsafe (see error)
    processed: str | None  # its processed copy's path
    size: int  # bytes of the input file: the chunking and balancing weight
    error: str | None = None  # known before any work: the row's error, nothing is read
    word_count: int | None = None  # audio features: the transcript's words


@dataclass(frozen=True)
class Chunk:
    index: int
    items: tuple[WorkItem, ...]

    @property
    def size(self) -> int:
        return sum(i.size for i in self.items)


def cut(items: Sequence[WorkItem], max_bytes: int, max_items: int) -> list[Chunk]:
    """Chunks of ``items`` in their given order, each at most ``max_bytes`` of input (one
    larger recording is a chunk alone) and ``max_items`` recordings."""
    chunks: list[Chunk] = []
    current: list[WorkItem] = []
    used = 0
    for item in items:
        weight = max(item.size, 0)
        if current and (used + weight > max_bytes or len(current) >= max_items):
            chunks.append(Chunk(len(chunks), tuple(current)))
            current, used = [], 0
        current.append(item)
        used += weight
    if current:
        chunks.append(Chunk(len(chunks), tuple(current)))
    return chunks


def deal(chunks: Sequence[Chunk], tasks: int) -> list[list[int]]:
    """Chunk indexes per task: largest chunk first onto the least loaded task (ties: lowest
    task number), so the same chunks and task count always give the same tasks."""
    tasks = max(1, min(tasks, len(chunks)))
    load = [(0, t) for t in range(tasks)]
    out: list[list[int]] = [[] for _ in range(tasks)]
    for chunk in sorted(chunks, key=lambda c: (-c.size, c.index)):
        used, t = heapq.heappop(load)
        out[t].append(chunk.index)
        heapq.heappush(load, (used + max(chunk.size, 1), t))
    for indexes in out:
        indexes.sort()
    return out


def _stat(path: str | None) -> tuple[int, int] | None:
    try:
        st = os.stat(path) if path else None
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns) if st else None


def chunk_key(kind: str, version: str, chunk: Chunk, reads: str) -> str:
    """The name of a chunk's staged rows: what made them and the state of every input.

    ``reads`` names the item field whose file the work reads (``upload`` or ``processed``).
    """
    digest = hashlib.sha256(f"{kind}\n{version}\n".encode())
    for item in chunk.items:
        record = asdict(item)
        record["input"] = _stat(getattr(item, reads))
        digest.update(json.dumps(record, sort_keys=True).encode())
    return f"{kind}-{digest.hexdigest()[:32]}"


class Stage:
    """Staged chunk results in a folder (a volume on Databricks, visible to every node)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.jsonl"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def load(self, key: str) -> list[dict] | None:
        """The chunk's rows, or None (never staged, removed, or not readable whole)."""
        try:
            text = self.path(key).read_text()
        except (FileNotFoundError, OSError):
            return None
        try:
            return [json.loads(line) for line in text.splitlines() if line]
        except ValueError:  # never written whole (rename is atomic): treat as absent
            return None

    def save(self, key: str, rows: Iterable[dict]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.path(key)
        # Attempts on different nodes may share a pid: the name must not collide.
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text("".join(json.dumps(r, default=_json_value) + "\n" for r in rows))
        tmp.replace(target)  # a reader sees all of the chunk or none of it

    def remove(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.path(key).unlink(missing_ok=True)
        self.remove_stale()

    def remove_stale(self, older_than: float = STALE_SECONDS) -> None:
        """Files of runs that never committed (a week is far past any retry)."""
        if not self.root.is_dir():
            return
        cutoff = time.time() - older_than
        for path in self.root.iterdir():
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                pass


def _json_value(value):
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if hasattr(value, "item"):  # a numpy scalar
        return value.item()
    raise TypeError(f"cannot stage a {type(value).__name__}")
