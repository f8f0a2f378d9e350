"""The text stage's content-hash cache: nothing is paid for or computed twice.

Three tables in one SQLite file: analyses (text + provider + model + prompt version and
instructions → the validated result), embeddings (text + embedding model → vector) and the
requests sitting in Message Batches (so a restarted run collects them instead of paying for
them twice). Only successful analyses are kept: a failure is retried by the next run, never
served from here.

The durable copy (``persist_to``) is shared by every step, and two text steps may run at
once. It is a base file and a folder of segments (``persist_to`` + ``.d``): persisting writes
the rows this file gained since its last persist as one new segment (nothing when there are
none), so its cost follows what changed, not the size of the cache; restoring merges the
files not merged here before. Neither step's rows (a batch it paid for) are lost to the
other's. When the segments outnumber ``_COMPACT_SEGMENTS`` or outweigh the base, they are
merged into a new base (under a lock, by an atomic replace) and deleted: each byte is
rewritten a bounded number of times. A batch request is one row whatever its state
(creating, in a batch, done), and a merge keeps the newer row of a request: a request done
with is never brought back by a copy that still waits for it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from urllib.parse import quote

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field, ValidationError

from voyce_assets.text.analysis import Result, Tokens

_SCHEMA = """
CREATE TABLE IF NOT EXISTS analyses (key TEXT PRIMARY KEY, result TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS batch_items (
    request_key TEXT PRIMARY KEY, batch_id TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS billed (
    id TEXT PRIMARY KEY, key TEXT NOT NULL, tokens TEXT NOT NULL, created_at TEXT NOT NULL,
    recorded INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS billed_key ON billed (key);
"""
# This file's own bookkeeping, never copied: rows written here that the durable copy does not
# hold yet (``outbox``), and the parts of the durable copy merged in already (``merged``). A
# row written again is numbered anew (``seq``), above every number given before, never one
# reused: a persist sends and clears the rows up to the number it read first, so a row
# written while it runs is left for the next one.
_LOCAL = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, key TEXT NOT NULL,
    UNIQUE (tbl, key)
);
CREATE TABLE IF NOT EXISTS merged (name TEXT PRIMARY KEY);
"""
# The outbox of a file written before it (numbered by rowid, which SQLite reuses once the
# highest row is gone): its rows moved over.
_OLD_OUTBOX = """
BEGIN;
INSERT OR IGNORE INTO outbox (tbl, key) SELECT tbl, key FROM unsent ORDER BY rowid;
DROP TABLE unsent;
COMMIT;
"""
# Each table's key column (``outbox.key`` names a row by it).
_KEYS = {"analyses": "key", "embeddings": "key", "batch_items": "request_key", "billed": "id"}
# A durable copy with this many segments, or whose segments outweigh its base file, is
# compacted into the base (so a fresh restore reads few files, and each byte is rewritten a
# bounded number of times: the cost of a persist follows what it adds).
_COMPACT_SEGMENTS = 256
_COMPACT_MIN_BYTES = 4 * 1024 * 1024
_DONE = "done"
_ISO = "microseconds"  # created_at strings of one length compare as times

# Rows of ``source`` that ``_merge`` copies into ``target`` (a database ATTACHed as ``src``),
# by table: a table the source lacks (a copy written before it existed) is skipped.
# Analyses and embeddings of one key are the same answer, whoever made them; of a batch
# request's rows, the newer wins.
_MERGE = {
    "analyses": "INSERT OR IGNORE INTO analyses SELECT key, result FROM src.analyses",
    "embeddings": "INSERT OR IGNORE INTO embeddings SELECT key, vector FROM src.embeddings",
    "batch_items": """
INSERT INTO batch_items SELECT request_key, batch_id, created_at FROM src.batch_items WHERE 1
    ON CONFLICT (request_key) DO UPDATE
    SET batch_id = excluded.batch_id, created_at = excluded.created_at
    WHERE excluded.created_at > batch_items.created_at""",
    "billed": """
INSERT INTO billed SELECT id, key, tokens, created_at, recorded FROM src.billed WHERE 1
    ON CONFLICT (id) DO UPDATE SET recorded = max(billed.recorded, excluded.recorded)""",
}
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


class LockLost(RuntimeError):
    """The durable copy's lock was broken while we held it (taken for a dead holder's): what
    we were about to replace may be another holder's newer file."""


def _connect(path: Path, timeout: float = 5.0) -> sqlite3.Connection:
    """A connection to ``path`` that opens URI file names (``_merge`` attaches read-only)."""
    return sqlite3.connect(f"file:{quote(str(path.absolute()))}", uri=True, timeout=timeout)


def _merge(target: sqlite3.Connection, source: Path) -> None:
    """Copy ``source``'s rows into ``target`` (``_MERGE``), in one transaction. ``source`` is
    opened read-only: one gone meanwhile is ``FileNotFoundError``, never made again (empty).
    ``target`` must be opened by ``_connect``."""
    target.executescript(_SCHEMA)
    try:
        target.execute(
            "ATTACH DATABASE ? AS src", (f"file:{quote(str(source.absolute()))}?mode=ro",)
        )
    except sqlite3.OperationalError as exc:
        if not source.exists():
            raise FileNotFoundError(source) from exc
        raise
    try:
        tables = {
            row[0]
            for row in target.execute("SELECT name FROM src.sqlite_master WHERE type = 'table'")
        }
        target.execute("BEGIN")
        try:
            for table, sql in _MERGE.items():
                if table in tables:
                    target.execute(sql)
            target.execute("COMMIT")
        except BaseException:
            target.execute("ROLLBACK")  # an open transaction would keep ``src`` attached
            raise
    finally:
        target.execute("DETACH DATABASE src")


def _segments(durable: Path) -> Path:
    """The folder of a durable copy's segments: each persist's new rows, one file each."""
    return durable.with_name(durable.name + ".d")


def _base_name(durable: Path) -> str | None:
    """What identifies the base file's contents now (it changes only when compacted)."""
    try:
        stat = durable.stat()
    except FileNotFoundError:
        return None
    return f"base:{stat.st_size}:{stat.st_mtime_ns}"


def _parts(durable: Path) -> list[tuple[str, Path]]:
    """``(name, path)`` of every file of a durable copy: the base first, then the segments
    in the order they were written."""
    parts = []
    base = _base_name(durable)
    if base is not None:
        parts.append((base, durable))
    folder = _segments(durable)
    if folder.is_dir():
        parts += [(p.name, p) for p in sorted(folder.glob("*.sqlite"))]
    return parts


def _compact(
    durable: Path, work: Path, still_ours: Callable[[], bool], drop: list[str] | None = None
) -> int:
    """Merge every file of the durable copy into a new base (less the analyses and
    embeddings of ``drop``, overwritten), replace the base with it and delete the segments it
    holds. Call under the durable copy's lock (``still_ours``: ``_locked``'s, asked between
    files, which keeps the lock fresh, and before the replace): ``LockLost`` when it was
    broken meanwhile, and nothing replaced or deleted (another holder may have replaced the
    base since, or erased rows: ours would lose its rows or bring them back). Rows dropped."""
    parts = _parts(durable)
    work.unlink(missing_ok=True)
    if durable.exists():
        shutil.copyfile(durable, work)
    target = _connect(work)
    try:
        target.executescript(_SCHEMA)
        for _, path in parts:
            if not still_ours():
                raise LockLost(f"{durable}: lock broken while compacting")
            if path != durable:
                try:
                    _merge(target, path)
                except FileNotFoundError:  # only another compaction deletes one
                    raise LockLost(f"{durable}: {path.name} compacted by another") from None
        # Entries kept only so that no older copy revives them: every copy is in this one.
        old = (dt.datetime.now(dt.UTC) - _DONE_KEPT).isoformat(timespec=_ISO)
        target.execute("DELETE FROM billed WHERE recorded = 1 AND created_at < ?", (old,))
        target.execute(
            "DELETE FROM batch_items WHERE batch_id = ? AND created_at < ?", (_DONE, old)
        )
        target.commit()
    finally:
        target.close()
    removed = _forget(work, drop) if drop else 0
    tmp = durable.with_name(f"{durable.name}.{uuid.uuid4().hex}.tmp")
    try:
        shutil.copyfile(work, tmp)
        if not still_ours():
            raise LockLost(f"{durable}: lock broken while compacting")
        tmp.replace(durable)
    finally:
        tmp.unlink(missing_ok=True)
    for _, path in parts:
        if path != durable:
            path.unlink(missing_ok=True)
    return removed


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
                conn.execute(f"DELETE FROM billed WHERE key IN ({marks})", chunk)
                with contextlib.suppress(sqlite3.OperationalError):  # a durable file has none
                    conn.execute(f"DELETE FROM outbox WHERE key IN ({marks})", chunk)
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
        "step; what the step added is written to it after the step and whenever a batch is "
        "submitted (a new segment file of the new rows). SQLite itself needs local disk "
        "(volumes take whole files, not its random writes).",
    )

    def setup_for_execution(self, context) -> None:
        self.restore()

    def teardown_after_execution(self, context) -> None:
        self.persist()

    def restore(self) -> None:
        """Merge the durable copy's rows into the local file (a fresh cluster's is empty):
        only its files not merged here before (the segments other steps persisted since)."""
        if not self.persist_to:
            return
        durable = Path(self.persist_to)
        local = Path(self.path)
        local.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            parts = _parts(durable)
            with self._db() as db:
                done = {row[0] for row in db.execute("SELECT name FROM merged")}
            try:
                for name, path in parts:
                    if name not in done:
                        self._merge_in(name, path)
            except FileNotFoundError:
                continue  # compacted meanwhile: its rows are in the new base
            with self._db() as db:  # forget the names of files that are gone
                names = [name for name, _ in parts]
                marks = ",".join("?" * len(names)) or "''"
                db.execute(f"DELETE FROM merged WHERE name NOT IN ({marks})", names)
            return
        raise TimeoutError(f"{durable}: compacted five times while restoring")

    def _merge_in(self, name: str, path: Path) -> None:
        # Read from a private copy: the durable file may be replaced while we read it.
        local = Path(self.path)
        copy = local.with_name(f"{local.name}.{uuid.uuid4().hex}.restoring")
        try:
            shutil.copyfile(path, copy)
            with self._db() as db:
                _merge(db, copy)
                db.execute("INSERT OR IGNORE INTO merged VALUES (?)", (name,))
        finally:
            copy.unlink(missing_ok=True)

    def persist(self) -> None:
        """Add the rows written here since the last persist to ``persist_to``, as a new
        segment file of those rows only (nothing when there are none): what a persist writes
        follows what changed, not the size of the cache. Rows another step persisted stay,
        in its own segments; now and then the segments are compacted into the base file."""
        if not self.persist_to or not Path(self.path).exists():
            return
        durable = Path(self.persist_to)
        local = Path(self.path)
        with self._db() as db:
            last = db.execute("SELECT max(seq) FROM outbox").fetchone()[0]
        if last is None:
            return
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}.sqlite"
        segment = local.with_name(f"{local.name}.{name}")
        work = local.with_name(f"{local.name}.{uuid.uuid4().hex}.compacting")
        try:
            out = sqlite3.connect(segment)
            try:
                out.executescript(_SCHEMA)
                out.execute("ATTACH DATABASE ? AS src", (str(local),))
                with out:
                    for table, key in _KEYS.items():
                        out.execute(
                            f"INSERT OR REPLACE INTO {table} SELECT t.* FROM src.{table} t "
                            f"JOIN src.outbox u ON u.tbl = ? AND u.key = t.{key} "
                            "WHERE u.seq <= ?",
                            (table, last),
                        )
                out.execute("DETACH DATABASE src")
            finally:
                out.close()
            folder = _segments(durable)
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(3):
                with _locked(durable.with_name(durable.name + ".lock")) as still_ours:
                    tmp = folder / f"{name}.tmp"
                    shutil.copyfile(segment, tmp)
                    if not still_ours():  # broken meanwhile: a compaction may be under way
                        tmp.unlink(missing_ok=True)
                        continue
                    tmp.replace(folder / name)
                    # Lost meanwhile: the segment is in place; a later persist compacts.
                    with contextlib.suppress(LockLost):
                        self._maybe_compact(durable, work, still_ours)
                    break
            else:
                raise TimeoutError(f"{durable}: lost its lock three times while persisting")
            with self._db() as db:
                # Sent: our own segment is merged here already.
                db.execute("DELETE FROM outbox WHERE seq <= ?", (last,))
                db.execute("INSERT OR IGNORE INTO merged VALUES (?)", (name,))
        finally:
            segment.unlink(missing_ok=True)
            work.unlink(missing_ok=True)

    @staticmethod
    def _maybe_compact(durable: Path, work: Path, still_ours: Callable[[], bool]) -> None:
        folder = _segments(durable)
        sizes = []
        for part in folder.glob("*.sqlite"):
            with contextlib.suppress(FileNotFoundError):
                sizes.append(part.stat().st_size)
        base = durable.stat().st_size if durable.exists() else 0
        if len(sizes) >= _COMPACT_SEGMENTS or sum(sizes) >= max(base, _COMPACT_MIN_BYTES):
            _compact(durable, work, still_ours)

    def _unsent(self, db: sqlite3.Connection, table: str, keys: Iterable[str]) -> None:
        """Mark rows of ``table`` written here: the next persist sends them."""
        db.executemany(
            "INSERT OR REPLACE INTO outbox (tbl, key) VALUES (?, ?)", [(table, k) for k in keys]
        )

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(Path(self.path), timeout=60)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA + _LOCAL)
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'unsent'").fetchone():
                conn.executescript(_OLD_OUTBOX)
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
        durable = Path(self.persist_to) if self.persist_to else None
        if durable is not None and _parts(durable):
            # Base and segments merged into one new base without them, the segments deleted:
            # no file of the durable copy keeps a trace.
            for _ in range(3):
                with _locked(durable.with_name(durable.name + ".lock")) as still_ours:
                    work = durable.with_name(f"{durable.name}.{uuid.uuid4().hex}.forgetting")
                    try:
                        removed += _compact(durable, work, still_ours, keys)
                        break
                    except LockLost:
                        continue  # replaced nothing: again, with the lock and the files as now
                    finally:
                        work.unlink(missing_ok=True)
            else:
                raise TimeoutError(f"{durable}: lost its lock three times while erasing")
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
            self._unsent(db, "analyses", (k for k, _ in rows))

    # ---- tokens billed, until a written row records them -----------------------------------
    # Every call the provider billed, success or not, is kept here by the analysis key of its
    # text the moment its answer arrives, until a row that carries it is written (``recorded``):
    # a step that fails after paying (a later chunk down, a crash) leaves them here, and the
    # row its retry writes for that text (an answer from the cache by then) carries them.
    # Recorded entries stay marked, a while, so a merge of an older copy does not revive them.

    def bill(self, billed: Iterable[tuple[str, str, Tokens]]) -> None:
        """Keep what calls billed: ``(id, analysis key, tokens)`` each, ``id`` the provider's
        for what billed them (a batch's request, a Messages response). One already kept (a
        resumed batch's results read again) is not kept twice."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec=_ISO)
        rows = [
            (ledger_id, key, json.dumps(asdict(tokens)), now)
            for ledger_id, key, tokens in billed
            if tokens
        ]
        if not rows:
            return
        with self._db() as db:
            new = [
                row[0]
                for row in rows
                if db.execute("INSERT OR IGNORE INTO billed VALUES (?, ?, ?, ?, 0)", row).rowcount
            ]
            self._unsent(db, "billed", new)

    def unrecorded(self, keys: Iterable[str]) -> dict[str, Tokens]:
        """What was billed for each of ``keys`` and is in no written row yet."""
        out: dict[str, Tokens] = {}
        with self._db() as db:
            for chunk in _chunks(list(dict.fromkeys(keys))):
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT key, tokens FROM billed WHERE recorded = 0 AND key IN ({marks})"
                for key, tokens in db.execute(sql, chunk):
                    out[key] = out.get(key, Tokens()) + Tokens(**json.loads(tokens))
        return out

    def recorded(self, keys: Iterable[str]) -> None:
        """The tokens billed for ``keys`` are in written rows now: not to be counted again."""
        keys = list(dict.fromkeys(keys))
        old = (dt.datetime.now(dt.UTC) - _DONE_KEPT).isoformat(timespec=_ISO)
        with self._db() as db:
            for chunk in _chunks(keys):
                marks = ",".join("?" * len(chunk))
                ids = [
                    row[0]
                    for row in db.execute(
                        f"SELECT id FROM billed WHERE recorded = 0 AND key IN ({marks})", chunk
                    )
                ]
                db.executemany("UPDATE billed SET recorded = 1 WHERE id = ?", [(i,) for i in ids])
                self._unsent(db, "billed", ids)
            # Only those the durable copy knows are recorded (sent): it would bring them back
            # as unrecorded otherwise. The compaction prunes them there.
            db.execute(
                "DELETE FROM billed WHERE recorded = 1 AND created_at < ? AND id NOT IN "
                "(SELECT key FROM outbox WHERE tbl = 'billed')",
                (old,),
            )

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
            self._unsent(db, "embeddings", (k for k, _ in rows))

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
            self._unsent(db, "batch_items", (k for k, _, _ in rows))
        self.persist()  # a batch paid for must be found again, even after a lost cluster

    def forget_batch_items(self, request_keys: Iterable[str]) -> None:
        """Done with these requests (answered, or never sent): marked done, so that no merge
        of an older copy brings them back."""
        now = dt.datetime.now(dt.UTC)
        rows = [(k, _DONE, now.isoformat(timespec=_ISO)) for k in request_keys]
        with self._db() as db:
            db.executemany("INSERT OR REPLACE INTO batch_items VALUES (?, ?, ?)", rows)
            self._unsent(db, "batch_items", (k for k, _, _ in rows))
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
