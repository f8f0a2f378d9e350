"""The text stage's content-hash cache: nothing is paid for or computed twice.

Three tables in one SQLite file: analyses (text + provider + model + prompt version and
instructions → the validated result), embeddings (text + embedding model → vector) and the
requests sitting in Message Batches (so a restarted run collects them instead of paying for
them twice). Only successful analyses are kept: a failure is retried by the next run, never
served from here.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field

from voyce_assets.text.analysis import Result

_SCHEMA = """
CREATE TABLE IF NOT EXISTS analyses (key TEXT PRIMARY KEY, result TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS batch_items (
    request_key TEXT PRIMARY KEY, batch_id TEXT NOT NULL, created_at TEXT NOT NULL
);
"""


def _key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _chunks(items: list, size: int = 500) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class TextCache(ConfigurableResource):
    """Content-hash cache of analyses, embeddings and submitted batches (a SQLite file)."""

    path: str = Field(description="SQLite file on local disk; created on first use.")
    persist_to: str | None = Field(
        default=None,
        description="A durable copy (a Unity Catalog volume in prod): read at the start of a "
        "step, written back after it and whenever a batch is submitted. SQLite itself needs "
        "local disk (volumes take whole files, not its random writes).",
    )

    def setup_for_execution(self, context) -> None:
        self.restore()

    def teardown_after_execution(self, context) -> None:
        self.persist()

    def restore(self) -> None:
        """Take the durable copy when it is newer than the local file (a fresh cluster)."""
        if not self.persist_to or not Path(self.persist_to).exists():
            return
        local, durable = Path(self.path), Path(self.persist_to)
        if local.exists() and local.stat().st_mtime >= durable.stat().st_mtime:
            return
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(local.name + ".restoring")
        shutil.copyfile(durable, tmp)
        tmp.replace(local)

    def persist(self) -> None:
        """Write a consistent snapshot of the cache to ``persist_to`` (whole-file writes)."""
        if not self.persist_to or not Path(self.path).exists():
            return
        durable = Path(self.persist_to)
        durable.parent.mkdir(parents=True, exist_ok=True)
        snapshot = Path(self.path).with_name(Path(self.path).name + ".snapshot")
        source, target = sqlite3.connect(self.path, timeout=60), sqlite3.connect(snapshot)
        try:
            source.backup(target)  # consistent even while another thread writes
        finally:
            source.close()
            target.close()
        shutil.copyfile(snapshot, durable.with_name(durable.name + ".tmp"))
        durable.with_name(durable.name + ".tmp").replace(durable)
        snapshot.unlink()

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=60)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            with conn:
                yield conn
        finally:
            conn.close()

    def _lookup(self, table: str, key: str, value: str, keys: Iterable[str]) -> list[tuple]:
        """``(key, value)`` rows of ``table`` for ``keys``, looked up in bounded IN lists."""
        keys = list(dict.fromkeys(keys))
        found: list[tuple] = []
        with self._db() as db:
            for chunk in _chunks(keys):
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT {key}, {value} FROM {table} WHERE {key} IN ({marks})"
                found += db.execute(sql, chunk).fetchall()
        return found

    # ---- analyses ---------------------------------------------------------------------------

    @staticmethod
    def analysis_key(provider: str, model: str, prompt_version: str, text: str) -> str:
        return _key("analysis", provider, model, prompt_version, text)

    def get_analyses(self, keys: Iterable[str]) -> dict[str, Result]:
        rows = self._lookup("analyses", "key", "result", keys)
        return {key: Result.from_json(blob) for key, blob in rows}

    def put_analyses(self, results: dict[str, Result]) -> None:
        rows = [(k, r.to_json()) for k, r in results.items() if r.ok]
        with self._db() as db:
            db.executemany("INSERT OR REPLACE INTO analyses VALUES (?, ?)", rows)

    # ---- embeddings -------------------------------------------------------------------------

    @staticmethod
    def embedding_key(model: str, text: str) -> str:
        return _key("embedding", model, text)

    def get_embeddings(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        rows = self._lookup("embeddings", "key", "vector", keys)
        return {key: np.frombuffer(blob, dtype=np.float32) for key, blob in rows}

    def put_embeddings(self, vectors: dict[str, np.ndarray]) -> None:
        rows = [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in vectors.items()]
        with self._db() as db:
            db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?)", rows)

    # ---- batches ----------------------------------------------------------------------------
    # Each request submitted in a Message Batch, by the hash of the request itself, until its
    # answer is in ``analyses``: a run that restarts collects it from that batch instead of
    # paying for it again, whatever other texts the new run brings.

    def pending_batches(self, request_keys: Iterable[str]) -> dict[str, str]:
        return dict(self._lookup("batch_items", "request_key", "batch_id", request_keys))

    def remember_batch(self, request_keys: Iterable[str], batch_id: str, created_at: str) -> None:
        rows = [(k, batch_id, created_at) for k in request_keys]
        with self._db() as db:
            db.executemany("INSERT OR REPLACE INTO batch_items VALUES (?, ?, ?)", rows)
        self.persist()  # a batch paid for must be found again, even after a lost cluster

    def forget_batch_items(self, request_keys: Iterable[str]) -> None:
        with self._db() as db:
            db.executemany(
                "DELETE FROM batch_items WHERE request_key = ?", [(k,) for k in request_keys]
            )
