"""The text stage's content-hash cache: nothing is paid for or computed twice.

Three tables in one SQLite file: analyses (text + provider + model + prompt version → the
validated result), embeddings (text + embedding model → vector) and the Message Batches a run
submitted (so a restarted run resumes its batch instead of paying for a second one). Only
successful analyses are kept: a failure is retried by the next run, never served from here.
"""

from __future__ import annotations

import contextlib
import hashlib
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
CREATE TABLE IF NOT EXISTS batches (
    request_set TEXT PRIMARY KEY, batch_id TEXT NOT NULL, created_at TEXT NOT NULL
);
"""


def _key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _chunks(items: list, size: int = 500) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class TextCache(ConfigurableResource):
    """Content-hash cache of analyses, embeddings and submitted batches (a SQLite file)."""

    path: str = Field(description="SQLite file; created on first use.")

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

    # ---- analyses ---------------------------------------------------------------------------

    @staticmethod
    def analysis_key(provider: str, model: str, prompt_version: str, text: str) -> str:
        return _key("analysis", provider, model, prompt_version, text)

    def get_analyses(self, keys: Iterable[str]) -> dict[str, Result]:
        keys = list(dict.fromkeys(keys))
        out: dict[str, Result] = {}
        with self._db() as db:
            for chunk in _chunks(keys):
                marks = ",".join("?" * len(chunk))
                for key, blob in db.execute(
                    f"SELECT key, result FROM analyses WHERE key IN ({marks})", chunk
                ):
                    out[key] = Result.from_json(blob)
        return out

    def put_analyses(self, results: dict[str, Result]) -> None:
        rows = [(k, r.to_json()) for k, r in results.items() if r.ok]
        with self._db() as db:
            db.executemany("INSERT OR REPLACE INTO analyses VALUES (?, ?)", rows)

    # ---- embeddings -------------------------------------------------------------------------

    @staticmethod
    def embedding_key(model: str, text: str) -> str:
        return _key("embedding", model, text)

    def get_embeddings(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        keys = list(dict.fromkeys(keys))
        out: dict[str, np.ndarray] = {}
        with self._db() as db:
            for chunk in _chunks(keys):
                marks = ",".join("?" * len(chunk))
                for key, blob in db.execute(
                    f"SELECT key, vector FROM embeddings WHERE key IN ({marks})", chunk
                ):
                    out[key] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put_embeddings(self, vectors: dict[str, np.ndarray]) -> None:
        rows = [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in vectors.items()]
        with self._db() as db:
            db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?)", rows)

    # ---- batches ----------------------------------------------------------------------------

    def batch_for(self, request_set: str) -> str | None:
        with self._db() as db:
            row = db.execute(
                "SELECT batch_id FROM batches WHERE request_set = ?", (request_set,)
            ).fetchone()
        return row[0] if row else None

    def remember_batch(self, request_set: str, batch_id: str, created_at: str) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO batches VALUES (?, ?, ?)",
                (request_set, batch_id, created_at),
            )

    def forget_batch(self, request_set: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM batches WHERE request_set = ?", (request_set,))
