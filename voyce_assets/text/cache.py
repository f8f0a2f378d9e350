"""The text stage's content-hash cache: nothing is paid for or computed twice.

Three tables in one SQLite file: analyses (text + provider + model + prompt version and
instructions → the validated result), embeddings (text + embedding model → vector) and the
requests sitting in Message Batches (so a restarted run collects them instead of paying for
them twice). Only successful analyses are kept: a failure is retried by the next run, never
served from here.

The durable copy (``persist_to``) is shared by every step, and two text steps may run at
once: persisting merges this file's rows into it (under a lock, by an atomic replace), and
restoring merges its rows into this file, so neither step's rows (a batch it paid for) are
lost to the other's copy. A batch request is one row whatever its state (creating, in a
batch, done), and a merge keeps the newer row of a request: a request done with is never
brought back by a copy that still waits for it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field, ValidationError

from voyce_assets.text.analysis import Result

_SCHEMA = """
CREATE TABLE IF NOT EXISTS analyses (key TEXT PRIMARY KEY, result TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS batch_items (
    request_key TEXT PRIMARY KEY, batch_id TEXT NOT NULL, created_at TEXT NOT NULL
);
"""
_DONE = "done"
_ISO = "microseconds"  # created_at strings of one length compare as times

# Rows of ``source`` that ``_merge`` copies into ``target`` (a database ATTACHed as ``src``).
# Analyses and embeddings of one key are the same answer, whoever made them; of a batch
# request's rows, the newer wins.
_MERGE = """
INSERT OR IGNORE INTO analyses SELECT key, result FROM src.analyses;
INSERT OR IGNORE INTO embeddings SELECT key, vector FROM src.embeddings;
INSERT INTO batch_items SELECT request_key, batch_id, created_at FROM src.batch_items WHERE 1
    ON CONFLICT (request_key) DO UPDATE
    SET batch_id = excluded.batch_id, created_at = excluded.created_at
    WHERE excluded.created_at > batch_items.created_at;
"""
# Done requests are kept this long (a batch's results live 29 days), then pruned.
_DONE_KEPT = dt.timedelta(days=30)


def _key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


@contextlib.contextmanager
def _locked(
    path: Path, timeout: float = 900.0, stale_after: float = 300.0
) -> Iterator[Callable[[], bool]]:
    """Hold ``path`` as a lock file, made by exclusive create: unlike ``flock``, that works on
    a volume's FUSE mount too. A lock untouched for ``stale_after`` seconds was left by a
    holder that died and is broken: moved aside first, and put back if it turns out to be a
    new holder's. Yields ``still_ours()``, which also refreshes the lock (a slow holder
    calls it between long steps, so it is never taken for a dead one)."""
    token = uuid.uuid4().hex
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                holder = path.read_text()
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue  # released meanwhile
            if age > stale_after:
                aside = path.with_name(f"{path.name}.{token}.stale")
                try:
                    os.rename(path, aside)
                except FileNotFoundError:
                    continue
                if aside.read_text() != holder:  # a new holder's since we looked: give it back
                    with contextlib.suppress(OSError):
                        os.link(aside, path)  # never over a lock taken meanwhile
                aside.unlink(missing_ok=True)
            elif time.monotonic() > deadline:
                raise TimeoutError(f"{path} stayed locked for {timeout:.0f} s") from None
            else:
                time.sleep(0.05)
            continue
        with os.fdopen(fd, "w") as lock:
            lock.write(token)
        break

    def still_ours() -> bool:
        try:
            if path.read_text() != token:
                return False
            os.utime(path)
            return True
        except FileNotFoundError:
            return False

    try:
        yield still_ours
    finally:
        with contextlib.suppress(FileNotFoundError):
            if path.read_text() == token:  # never another holder's (ours may have been broken)
                path.unlink()


def _merge(target: sqlite3.Connection, source: Path) -> None:
    """Copy ``source``'s rows into ``target`` (``_MERGE``), in one transaction."""
    target.executescript(_SCHEMA)
    target.execute("ATTACH DATABASE ? AS src", (str(source),))
    try:
        target.executescript(f"BEGIN; {_MERGE} COMMIT;")
    finally:
        target.execute("DETACH DATABASE src")


def _chunks(items: list, size: int = 500) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _forget(path: Path, keys: list[str]) -> int:
    """Delete ``keys`` from the cache file at ``path``; overwrite and drop the freed pages."""
    conn = sqlite3.connect(path, timeout=60)
    try:
        conn.execute("PRAGMA secure_delete=ON")
        conn.executescript(_SCHEMA)
        removed = 0
        with conn:
            for chunk in _chunks(keys):
                marks = ",".join("?" * len(chunk))
                for table in ("analyses", "embeddings"):
                    removed += conn.execute(
                        f"DELETE FROM {table} WHERE key IN ({marks})", chunk
                    ).rowcount
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        return removed
    finally:
        conn.close()


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
        """Merge the durable copy's rows into the local file (a fresh cluster's is empty)."""
        if not self.persist_to or not Path(self.persist_to).exists():
            return
        local = Path(self.path)
        local.parent.mkdir(parents=True, exist_ok=True)
        # Read from a private copy: the durable file may be replaced while we read it.
        copy = local.with_name(f"{local.name}.{uuid.uuid4().hex}.restoring")
        try:
            shutil.copyfile(self.persist_to, copy)
            with self._db() as db:
                _merge(db, copy)
        finally:
            copy.unlink(missing_ok=True)

    def persist(self) -> None:
        """Merge the local rows into ``persist_to`` (under its lock, by an atomic replace):
        rows another step persisted meanwhile stay."""
        if not self.persist_to or not Path(self.path).exists():
            return
        durable = Path(self.persist_to)
        durable.parent.mkdir(parents=True, exist_ok=True)
        work = Path(self.path).with_name(f"{Path(self.path).name}.{uuid.uuid4().hex}.persisting")
        try:
            for _ in range(3):
                with _locked(durable.with_name(durable.name + ".lock")) as still_ours:
                    work.unlink(missing_ok=True)
                    if durable.exists():
                        shutil.copyfile(durable, work)
                    still_ours()  # refreshed between the long copies
                    target = sqlite3.connect(work)
                    try:
                        target.executescript(_SCHEMA)
                        _merge(target, Path(self.path))
                        target.commit()
                    finally:
                        target.close()
                    tmp = durable.with_name(f"{durable.name}.{uuid.uuid4().hex}.tmp")
                    shutil.copyfile(work, tmp)
                    if still_ours():  # broken meanwhile: another holder's copy may be newer
                        tmp.replace(durable)
                        return
                    tmp.unlink(missing_ok=True)
            raise TimeoutError(f"{durable}: lost its lock three times while persisting")
        finally:
            work.unlink(missing_ok=True)

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

    # ---- erasure ----------------------------------------------------------------------------

    def durable_unreachable(self) -> bool:
        """Whether there is a durable copy whose folder does not exist here (its volume not
        mounted where this runs): ``forget`` cannot reach it."""
        return bool(self.persist_to) and not Path(self.persist_to).parent.is_dir()

    def forget(self, keys: Iterable[str]) -> int:
        """Remove the analyses and embeddings of ``keys`` from the local file and from the
        durable copy (under its lock: a merge of either would otherwise bring them back),
        leaving no trace of them in either file (secure delete, then VACUUM). Rows removed;
        a durable copy this machine cannot reach is not touched (``durable_unreachable``)."""
        keys = list(dict.fromkeys(keys))
        removed = _forget(Path(self.path), keys) if Path(self.path).exists() else 0
        if self.persist_to and Path(self.persist_to).exists():
            durable = Path(self.persist_to)
            with _locked(durable.with_name(durable.name + ".lock")):
                work = durable.with_name(f"{durable.name}.{uuid.uuid4().hex}.forgetting")
                try:
                    shutil.copyfile(durable, work)
                    removed += _forget(work, keys)
                    work.replace(durable)
                finally:
                    work.unlink(missing_ok=True)
        return removed

    # ---- analyses ---------------------------------------------------------------------------

    @staticmethod
    def analysis_key(provider: str, model: str, prompt_version: str, text: str) -> str:
        return _key("analysis", provider, model, prompt_version, text)

    def get_analyses(self, keys: Iterable[str]) -> dict[str, Result]:
        """The cached results of ``keys``; one stored before a bound was tightened (that no
        longer validates) is not served: its text is analysed again."""
        found = {}
        for key, blob in self._lookup("analyses", "key", "result", keys):
            with contextlib.suppress(ValidationError):
                found[key] = Result.from_json(blob)
        return found

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
        rows = self._lookup("batch_items", "request_key", "batch_id", request_keys)
        return {key: batch for key, batch in rows if batch != _DONE}

    def remember_batch(self, request_keys: Iterable[str], batch_id: str, created_at: str) -> None:
        rows = [(k, batch_id, created_at) for k in request_keys]
        with self._db() as db:
            db.executemany("INSERT OR REPLACE INTO batch_items VALUES (?, ?, ?)", rows)
        self.persist()  # a batch paid for must be found again, even after a lost cluster

    def forget_batch_items(self, request_keys: Iterable[str]) -> None:
        """Done with these requests (answered, or never sent): marked done, so that no merge
        of an older copy brings them back."""
        now = dt.datetime.now(dt.UTC)
        rows = [(k, _DONE, now.isoformat(timespec=_ISO)) for k in request_keys]
        with self._db() as db:
            db.executemany("INSERT OR REPLACE INTO batch_items VALUES (?, ?, ?)", rows)
            db.execute(
                "DELETE FROM batch_items WHERE batch_id = ? AND created_at < ?",
                (_DONE, (now - _DONE_KEPT).isoformat(timespec=_ISO)),
            )

    def requests_in(self, batch_id: str) -> list[str]:
        """The request keys waiting in ``batch_id`` (or its creation intent)."""
        with self._db() as db:
            rows = db.execute("SELECT request_key FROM batch_items WHERE batch_id = ?", (batch_id,))
            return [row[0] for row in rows]

    def batch_ids(self) -> set[str]:
        """Every batch id (or creation intent) requests are waiting in."""
        with self._db() as db:
            rows = db.execute(
                "SELECT DISTINCT batch_id FROM batch_items WHERE batch_id != ?", (_DONE,)
            )
            return {row[0] for row in rows}
