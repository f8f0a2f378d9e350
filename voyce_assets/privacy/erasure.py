"""Right to erasure: one subject (a user, a feedback, an organization) removed from every
table, store and index of the pipeline, and the request recorded in ``raw_data.erasure_log``.

The core owns the plan and the Delta deletes; each stage owns how its own store forgets a
subject (``voyce_assets/<stage>/erasure.py``: audio files, the text caches, the search index,
the auto-tags, MLflow input examples), handed in as ``StoreEraser``s through the
``erasure_stores`` resource, so that the core never imports a stage.

1. ``resolve``: the subject's ids from the lakehouse mirrors: a user's feedback
   (``voice_feedback.user_id``), an organization's users and feedback, a feedback itself;
   a feedback the mirror lost (the app deleted it) from every copy the mirror's folder
   still holds (``mirror_history``), its day from the pipeline's rows. ``find_by_hashes``:
   the subjects of ``subject_hash`` values, so that a run's config (kept in Dagster's run
   storage) needs no id.
2. Each stage's eraser, while the rows it reads (texts, audio paths) are still there.
3. ``delete_rows``: from every catalog table, every row naming an erased id, found by the
   spec's column types (no table named by hand): a UUID or STRING column equal to an erased
   id; an id only mentioned (a JSON column containing one, an ARRAY<STRING> listing one) is
   scrubbed and the row stays. The primary key of a row removed joins the erased ids (a
   transcription's id, then the sentiment rows that name it), until nothing new is found.
   Each table's days are rewritten in one overwrite commit naming the days only.
4. ``purge``: with ``--purge``, in every table, the superseded files (VACUUM, retention 0),
   the change-data files holding the subject, the log entries before a new checkpoint and
   the key index (``key_index``: ids; ``delete_rows`` drops it already where rows went).
5. ``log_row``: hashes only (``tombstones.subject_hash``), counts per store; the hashes of
   the subject's organizations, users and feedback are the tombstones every sync honours.

The analytics days that counted the subject are recomputed by the analytics stage (the
``feedback_days`` of the plan; the CLI materializes them, the job's sensor requests them).
Rerunning an erasure finds nothing more to remove: it is harmless.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from dagster import ResourceDefinition

from voyce_assets import key_index
from voyce_assets.catalog import (
    ARRAY_STRING,
    JSON,
    STRING,
    TABLES,
    UUID,
    Owner,
    Table,
    table,
)
from voyce_assets.ddl import DELTA_TABLE_PROPERTIES
from voyce_assets.lake import change_data_files, delta_batches, table_filesystem
from voyce_assets.privacy.tombstones import subject_hash

SUBJECT_TYPES = ("user", "feedback", "organization")
REASONS = ("request", "app_delete")
LOG = table("raw_data/erasure_log")
ORGANIZATIONS = table("raw_data/organizations")
USERS = table("raw_data/users")
FEEDBACK = table("raw_data/voice_feedback")
# What an erased id becomes where a row only mentions it (a JSON text).
ERASED = "[erased]"
# The app table that holds each kind of subject.
SUBJECT_TABLES = {"user": USERS, "feedback": FEEDBACK, "organization": ORGANIZATIONS}


def retention() -> dt.timedelta:
    """How long a superseded Delta file outlives its removal: the tables'
    ``delta.deletedFileRetentionDuration`` (``interval 7 days``), after which the weekly
    VACUUM (``operations/maintenance.py``) deletes it."""
    value = DELTA_TABLE_PROPERTIES["delta.deletedFileRetentionDuration"]
    _, amount, unit = value.split()
    return dt.timedelta(**{unit if unit.endswith("s") else unit + "s": int(amount)})


@dataclass(frozen=True)
class Subject:
    type: str
    id: str

    def __post_init__(self) -> None:
        if self.type not in SUBJECT_TYPES:
            raise ValueError(f"subject type must be one of {', '.join(SUBJECT_TYPES)}")
        try:
            normal = str(uuid.UUID(str(self.id)))
        except ValueError:
            raise ValueError(f"{self.type} id must be a UUID, got {self.id!r}") from None
        object.__setattr__(self, "id", normal)


@dataclass(frozen=True)
class ErasedFeedback:
    """One feedback the erasure removes, as the mirror held it (what the stores need)."""

    id: str
    event_date: dt.date
    organization_id: str | None = None
    user_id: str | None = None
    audio_file_path: str | None = None


@dataclass
class Plan:
    """What one erasure removes: the subject and every organization, user and feedback id
    erased with it (the tombstones), the feedback's days (what analytics recomputes)."""

    subject: Subject
    reason: str = "request"
    organizations: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)
    feedback: list[ErasedFeedback] = field(default_factory=list)

    @property
    def feedback_ids(self) -> set[str]:
        return {f.id for f in self.feedback}

    @property
    def feedback_days(self) -> list[dt.date]:
        return sorted({f.event_date for f in self.feedback})

    @property
    def ids(self) -> set[str]:
        """The subject's ids: the seed of the rows removed, and the tombstones."""
        return {self.subject.id} | self.organizations | self.users | self.feedback_ids


# ---- the stages' stores ------------------------------------------------------------------


@dataclass(frozen=True)
class StoreEraser:
    """How one stage's store forgets a plan's subject: ``forget(plan, resources)`` returns
    counts per store (``{"audio_files": 2, ...}``), and removes nothing it did not write.
    Called before the Delta deletes: the rows it reads (texts, audio paths) are still there.
    ``resource_keys``: the resources it reads from ``resources`` (attribute access)."""

    stage: str
    forget: Callable[[Plan, Any], Mapping[str, int]]
    resource_keys: frozenset[str] = frozenset()


class ErasureStores:
    """The ``erasure_stores`` resource: every stage's erasers, with the resources they need."""

    def __init__(self, erasers: Sequence[StoreEraser], resources: Any = None) -> None:
        self.erasers = tuple(erasers)
        self.resources = resources

    def forget(self, plan: Plan, log: Callable[[str], None] = lambda _: None) -> dict[str, int]:
        removed: dict[str, int] = {}
        for eraser in self.erasers:
            counts = dict(eraser.forget(plan, self.resources))
            log(f"{eraser.stage}: {counts}")
            for key, count in counts.items():
                removed[key] = removed.get(key, 0) + int(count)
        return removed


def erasure_stores_resource(erasers: Sequence[StoreEraser]) -> ResourceDefinition:
    """``erasure_stores`` bound to ``erasers``: it depends on the resources they need, so
    Dagster initializes those (the text cache restores its durable copy first)."""
    keys = frozenset().union(*(e.resource_keys for e in erasers)) if erasers else frozenset()
    return ResourceDefinition(
        resource_fn=lambda init: ErasureStores(erasers, init.resources),
        required_resource_keys=set(keys),
        description="How each stage's store (audio, caches, index, auto-tags, MLflow) forgets "
        "an erased subject: " + ", ".join(e.stage for e in erasers),
    )


# ---- resolve ------------------------------------------------------------------------------


def _read(lakehouse, spec: Table, columns: list[str]) -> list[dict]:
    return lakehouse.read(spec, None, columns).to_pylist()


def resolve(lakehouse, subject: Subject, reason: str = "request") -> Plan:
    """The subject's organizations, users and feedback, from the lakehouse mirrors."""
    plan = Plan(subject, reason)
    if subject.type == "organization":
        plan.organizations.add(subject.id)
        plan.users |= {
            r["id"]
            for r in _read(lakehouse, USERS, ["id", "organization_id"])
            if r["organization_id"] == subject.id
        }
    elif subject.type == "user":
        plan.users.add(subject.id)
    columns = ["id", "organization_id", "user_id", "audio_file_path", "event_date"]
    for row in _read(lakehouse, FEEDBACK, columns):
        if (
            row["id"] == subject.id
            or row["user_id"] in plan.users
            or row["organization_id"] in plan.organizations
        ):
            plan.feedback.append(ErasedFeedback(**row))
    if subject.type == "feedback":
        gone = {subject.id} - plan.feedback_ids
    else:
        # The subject's feedback the app deleted before (the mirror synced it away; the
        # pipeline's rows of it name no user): from every copy the mirror's folder still
        # holds (its superseded files and change feed, until VACUUM).
        if subject.type == "organization":
            plan.users |= {
                r["id"]
                for r in mirror_history(lakehouse, USERS, {"organization_id": plan.organizations})
            }
        wanted = {"user_id": plan.users, "organization_id": plan.organizations}
        gone = {r["id"] for r in mirror_history(lakehouse, FEEDBACK, wanted)}
        gone -= plan.feedback_ids
    if gone:
        # Gone from the mirror already (the app deleted it): its day and place from the
        # pipeline's own rows and the mirror's history.
        plan.feedback += vanished_feedback(lakehouse, gone)
    plan.feedback.sort(key=lambda f: (f.event_date, f.id))
    return plan


def _per_feedback_tables() -> list[Table]:
    """Pipeline tables with one row per feedback (partitioned by the feedback's day)."""
    return [
        t
        for t in TABLES
        if t.owner is Owner.PIPELINE
        and "voice_feedback_id" in t.column_names
        and t.partition_source == f"{FEEDBACK.name}.created_at"
    ]


def vanished_feedback(lakehouse, ids: Iterable[str]) -> list[ErasedFeedback]:
    """Feedback no longer in the mirror: the day the pipeline's rows put them on (else the
    mirror's), and their organization and audio path from the newest copy of their row the
    mirror's folder still holds (``mirror_history``); one held nowhere is left out."""
    wanted = set(ids)
    days: dict[str, dt.date] = {}
    for spec in _per_feedback_tables():
        if not lakehouse.exists(spec) or not wanted - set(days):
            continue
        for row in _read(lakehouse, spec, ["voice_feedback_id", spec.partition_column]):
            if row["voice_feedback_id"] in wanted:
                days.setdefault(row["voice_feedback_id"], row[spec.partition_column])
    found = {i: ErasedFeedback(i, d) for i, d in days.items()}
    for row in mirror_history(lakehouse, FEEDBACK, {"id": wanted}, HISTORY_COLUMNS):
        row["event_date"] = days.get(row["id"], row["event_date"])
        if row["event_date"] is None:
            continue
        found[row["id"]] = ErasedFeedback(**row)
    return list(found.values())


HISTORY_COLUMNS = ["id", "organization_id", "user_id", "audio_file_path"]


def mirror_history(
    lakehouse, spec: Table, wanted: Mapping[str, set[str]], columns: Sequence[str] = ("id",)
) -> list[dict]:
    """``columns`` and the partition column (from the file's path) of every row, in any data
    or change-data file the table's folder still holds (its current files, those superseded
    and not yet vacuumed, the change feed), whose column ``c`` is in ``wanted[c]`` for one of
    ``wanted``'s columns; oldest file first. Each file is read once, those columns only,
    however many versions the table has."""
    import pyarrow.parquet as pq
    from pyarrow import fs

    wanted = {c: pa.array(sorted(v), pa.string()) for c, v in wanted.items() if v}
    if not wanted or not lakehouse.exists(spec):
        return []
    filesystem, root = table_filesystem(lakehouse.table_uri(spec))
    selector = fs.FileSelector(root.rstrip("/"), recursive=True, allow_not_found=True)
    files = [
        i
        for i in filesystem.get_file_info(selector)
        if i.type == fs.FileType.File
        and i.path.endswith(".parquet")
        and "/_delta_log/" not in i.path
    ]
    files.sort(key=lambda i: (i.mtime_ns or 0, i.path))
    part = f"{spec.partition_column}="
    rows: list[dict] = []
    for info in files:
        present = set(pq.read_schema(info.path, filesystem=filesystem).names)
        names = [c for c in dict.fromkeys([*columns, *wanted]) if c in present]
        if not set(wanted) & present:
            continue
        batches = (
            pq.read_table(info.path, columns=names, filesystem=filesystem)
            .combine_chunks()
            .to_batches()
        )
        if not batches:
            continue
        (batch,) = batches
        hit = pa.array([False] * batch.num_rows, pa.bool_())
        for column, ids in wanted.items():
            if column in present:
                hit = pc.or_(hit, _matches(batch, column, "equal", ids))
        if not pc.any(hit).as_py():
            continue
        day = next((p[len(part) :] for p in info.path.split("/") if p.startswith(part)), None)
        for row in batch.filter(hit).to_pylist():
            out = {c: row.get(c) for c in columns}
            out[spec.partition_column] = dt.date.fromisoformat(day) if day else None
            rows.append(out)
    return rows


def _hash_sources(subject_type: str) -> list[tuple[Table, str]]:
    """Where an id of ``subject_type`` may still be found: its mirror, the columns that name
    it, and for a feedback the pipeline's per-feedback tables (after the app deleted it)."""
    if subject_type == "user":
        return [(USERS, "id"), (FEEDBACK, "user_id")]
    if subject_type == "organization":
        return [(ORGANIZATIONS, "id"), (USERS, "organization_id"), (FEEDBACK, "organization_id")]
    return [(FEEDBACK, "id"), *((t, "voice_feedback_id") for t in _per_feedback_tables())]


def find_by_hashes(lakehouse, subject_type: str, hashes: Iterable[str]) -> dict[str, Subject]:
    """``{hash: subject}`` of the ``hashes`` whose subject a table still holds, from the
    tables that may hold its id: each distinct id is hashed once, however many subjects are
    looked for; a hash none holds is left out (nothing left to erase)."""
    if subject_type not in SUBJECT_TYPES:
        raise ValueError(f"subject type must be one of {', '.join(SUBJECT_TYPES)}")
    wanted = set(hashes)
    found: dict[str, Subject] = {}
    seen: set[str] = set()
    for spec, column in _hash_sources(subject_type):
        if not wanted - set(found):
            break
        if not lakehouse.exists(spec):
            continue
        values = pc.unique(lakehouse.read(spec, None, [column]).column(0)).to_pylist()
        for value in values:
            if not value or value in seen:
                continue
            seen.add(value)
            hashed = subject_hash(value)
            if hashed in wanted and hashed not in found:
                found[hashed] = Subject(subject_type, value)
    return found


def find_by_hash(lakehouse, subject_type: str, hashed: str) -> Subject | None:
    """The subject whose ``subject_hash`` is ``hashed`` (``find_by_hashes``); None when no
    table holds its id."""
    return find_by_hashes(lakehouse, subject_type, [hashed]).get(hashed)


def tombstones_of(lakehouse, hashed: str) -> set[str]:
    """The hashes earlier erasures of the subject ``hashed`` removed (its feedback, an
    organization's users), from the log: what a purge still looks for."""
    if not lakehouse.exists(LOG):
        return {hashed}
    rows = lakehouse.read(LOG, None, ["subject_hash", "erased_id_hashes"]).to_pylist()
    return {hashed} | {
        h for r in rows if r["subject_hash"] == hashed for h in r["erased_id_hashes"]
    }


def tombstone_row(
    subject_type: str, hashed: str, reason: str, requested_at: dt.datetime, purged: bool
) -> dict:
    """The log row of a subject no table holds any more: nothing removed, its hash a
    tombstone all the same (a source that still holds it never brings it back)."""
    now = dt.datetime.now(dt.UTC)
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"voyce:erasure:{hashed}:{requested_at}")),
        "subject_type": subject_type,
        "subject_hash": hashed,
        "reason": reason,
        "requested_at": requested_at,
        "completed_at": now,
        "erased_id_hashes": [hashed],
        "removed": "{}",
        "purged": purged,
        "vacuum_after": None if purged else now + retention(),
        "app_still_holds": None,
        "created_at": now,
        "event_date": requested_at.date(),
    }


def app_still_holds(app_db, subject: Subject) -> bool | None:
    """Whether the app database still holds the subject; None when it cannot be reached."""
    spec = SUBJECT_TABLES[subject.type]
    try:
        with app_db.connect(snapshot=False) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT 1 FROM {spec.name} WHERE id = %s", (subject.id,))
            return cur.fetchone() is not None
    except Exception:
        return None


def held_by_app(app_db, subject_type: str, ids: Iterable[str]) -> set[str]:
    """Of ``ids``, those the app database still holds. A cascade of the app's deletes erases
    none of them: the mirror can lack a row the app holds because the sync held it back (a
    NULL in a required column, a repeated key, a timestamp Arrow cannot hold). Raises when
    the app cannot be reached: nothing is erased on a guess."""
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    spec = SUBJECT_TABLES[subject_type]
    with app_db.connect(snapshot=False) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id::text FROM {spec.name} WHERE id = ANY(%s::uuid[])", (wanted,))
        held = {str(row[0]) for row in cur.fetchall()}
        conn.rollback()
    return held


# ---- delete -------------------------------------------------------------------------------


def id_columns(spec: Table) -> dict[str, str]:
    """``{column: how it can hold an id}`` from the spec's types: ``equal`` (UUID and STRING
    columns: an id, or a user id written as text), ``contains`` (JSON), ``lists``
    (ARRAY<STRING>)."""
    how = {UUID.name: "equal", STRING.name: "equal", JSON.name: "contains"}
    how[ARRAY_STRING.name] = "lists"
    return {c.name: how[c.type.name] for c in spec.columns if c.type.name in how}


def _matches(batch: pa.RecordBatch, column: str, how: str, ids: pa.Array) -> pa.Array:
    values = batch.column(column)
    # Files of one table disagree on text types (string, large_string, string_view).
    if how == "lists":
        values = values.cast(pa.list_(pa.string()))
    elif not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    if how == "equal":
        return pc.fill_null(pc.is_in(values, value_set=ids), False)
    if how == "lists":
        flat = pc.list_flatten(values)
        hit = pc.fill_null(pc.is_in(flat, value_set=ids), False)
        parents = pc.list_parent_indices(values)
        rows = set(pc.filter(parents, hit).to_pylist())
        return pa.array([i in rows for i in range(len(batch))], pa.bool_())
    text = values
    out = pa.array([False] * len(batch), pa.bool_())
    for ident in ids.to_pylist():
        out = pc.or_(out, pc.fill_null(pc.match_substring(text, ident), False))
    return out


@dataclass
class Found:
    """A table's rows holding erased ids: those that name one (an id column: removed, their
    own key joins the erased ids) and those that only mention one (in JSON or a list: the id
    is scrubbed from them, the row stays), and their days."""

    rows: int = 0
    mentions: int = 0
    days: set = field(default_factory=set)
    keys: set[str] = field(default_factory=set)


def _split(columns: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    naming = {c: h for c, h in columns.items() if h == "equal"}
    return naming, {c: h for c, h in columns.items() if h != "equal"}


def find_rows(lakehouse, spec: Table, ids: set[str]) -> Found:
    """The rows of ``spec`` holding any of ``ids`` (read in batches, the id-bearing columns
    only)."""
    found = Found()
    if not ids or not lakehouse.exists(spec):
        return found
    columns = id_columns(spec)
    naming, mentioning = _split(columns)
    key = spec.primary_key[0] if len(spec.primary_key) == 1 else None
    names = list(dict.fromkeys([*columns, spec.partition_column, *([key] if key else [])]))
    for batch in delta_batches(
        lakehouse.table_uri(spec), spec, None, names, lakehouse.storage_options, 8
    ):
        rows = pa.Table.from_batches([batch])
        named = _holding(rows, naming, ids)
        mentioned = pc.and_(_holding(rows, mentioning, ids), pc.invert(named))
        touched = pc.or_(named, mentioned)
        if not pc.any(touched).as_py():
            continue
        found.rows += pc.sum(named).as_py() or 0
        found.mentions += pc.sum(mentioned).as_py() or 0
        found.days |= set(pc.filter(batch.column(spec.partition_column), touched).to_pylist())
        if key and spec.column(key).type is UUID:
            found.keys |= {k for k in pc.filter(batch.column(key), named).to_pylist() if k}
    return found


def _holding(rows: pa.Table, columns: Mapping[str, str], ids: set[str]) -> pa.Array:
    """Which of ``rows`` hold one of ``ids`` in one of ``columns`` (``id_columns``)."""
    wanted = pa.array(sorted(ids), pa.string())
    hit = pa.array([False] * rows.num_rows, pa.bool_())
    batch = rows.combine_chunks().to_batches()
    if not batch:
        return hit
    (batch,) = batch
    for column, how in columns.items():
        hit = pc.or_(hit, _matches(batch, column, how, wanted))
    return hit


@dataclass
class Deleted:
    """Rows removed and rows scrubbed per table (``schema/name``), and the days each had
    rewritten."""

    rows: dict[str, int] = field(default_factory=dict)
    scrubbed: dict[str, int] = field(default_factory=dict)
    days: dict[str, list[dt.date]] = field(default_factory=dict)
    # Every id erased: the plan's and the primary keys of the rows removed with them.
    ids: set[str] = field(default_factory=set)


def _scrub(value, how: str, ids: set[str]):
    """``value`` without ``ids``: a list loses them, a JSON text has each replaced."""
    if value is None:
        return None
    if how == "lists":
        return [v for v in value if v not in ids]
    for ident in ids:
        value = value.replace(ident, ERASED)
    return value


def _rewrite(lakehouse, spec: Table, days: set[dt.date], ids: set[str]) -> tuple[int, int]:
    """Rewrite ``days`` of the table without the rows naming ``ids`` and with ``ids``
    scrubbed from the rows that only mention them (one overwrite commit whose predicate
    names the days only: a DELETE's predicate, ids and all, would stay in the Delta log's
    commit info). (rows removed, rows scrubbed)."""
    rows = lakehouse.read(spec, sorted(days))
    if rows.num_rows == 0:
        return 0, 0
    naming, mentioning = _split(id_columns(spec))
    keep = rows.filter(pc.invert(_holding(rows, naming, ids)))
    scrubbed = _holding(keep, mentioning, ids)
    for column, how in mentioning.items():
        index = keep.schema.get_field_index(column)
        values = [_scrub(v, how, ids) for v in keep.column(column).to_pylist()]
        keep = keep.set_column(index, keep.field(index), pa.array(values, keep.field(index).type))
    lakehouse.write_partitions(spec, keep, sorted(days))
    return rows.num_rows - keep.num_rows, pc.sum(scrubbed).as_py() or 0


def delete_rows(lakehouse, plan: Plan, tables: Sequence[Table] = TABLES) -> Deleted:
    """Delete from every table every row naming an erased id, and scrub the erased ids from
    rows that only mention one (JSON, lists); primary keys of removed rows join the erased
    ids until none is new. The log itself is left alone (hashes only)."""
    erased = set(plan.ids)
    out = Deleted()
    scanned: dict[str, int] = {}
    pending = [t for t in tables if t.path != LOG.path]
    # The mirrors last: a failed run leaves the rows that resolve the subject, for a rerun.
    pending.sort(key=lambda t: t.owner is Owner.APP)
    while True:
        grew = False
        for spec in pending:
            if scanned.get(spec.path) == len(erased):
                continue
            scanned[spec.path] = len(erased)
            found = find_rows(lakehouse, spec, erased)
            if found.keys - erased:
                erased |= found.keys
                grew = True
            if not found.rows and not found.mentions:
                continue
            removed, scrubbed = _rewrite(lakehouse, spec, found.days, erased)
            if removed:
                out.rows[spec.path] = out.rows.get(spec.path, 0) + removed
                # Its key index holds the removed rows' ids: gone with them (a cache, built
                # again by the next MERGE from the mirror, which no longer holds them).
                key_index.drop(lakehouse.table_uri(spec), lakehouse.storage_options)
            if scrubbed:
                out.scrubbed[spec.path] = out.scrubbed.get(spec.path, 0) + scrubbed
            out.days[spec.path] = sorted(set(out.days.get(spec.path, [])) | found.days)
        if not grew:
            out.ids = erased
            return out


def _hashed_in(rows: pa.Table, columns: Mapping[str, str], hashes: set[str]) -> bool:
    """Whether an id column of ``rows`` holds an id whose ``subject_hash`` is in ``hashes``."""
    for column, how in columns.items():
        if how != "equal":
            continue
        values = pc.unique(rows.column(column).cast(pa.string())).to_pylist()
        if any(v and subject_hash(v) in hashes for v in values):
            return True
    return False


def _change_data_holding(lakehouse, spec: Table, ids: set[str], hashes: set[str]) -> int:
    """Delete the table's change-data files (the change feed) that hold one of ``ids``, or
    an id hashing into ``hashes`` (an earlier erasure's tombstones): a VACUUM by delta-rs
    never deletes them. Files deleted."""
    import pyarrow.parquet as pq

    filesystem, files = change_data_files(lakehouse.table_uri(spec))
    deleted = 0
    for info in files:
        if not info.path.endswith(".parquet"):
            continue
        rows = pq.read_table(info.path, filesystem=filesystem)
        columns = {c: h for c, h in id_columns(spec).items() if c in rows.column_names}
        if not columns:
            continue
        rows = rows.select(list(columns))
        if pc.any(_holding(rows, columns, ids)).as_py() or _hashed_in(rows, columns, hashes):
            filesystem.delete_file(info.path)
            deleted += 1
    return deleted


def _truncate_log(lakehouse, spec: Table) -> int:
    """Checkpoint the table, then delete the log entries before the checkpoint: their add
    actions carry min/max statistics of files that held the subject (the time travel they
    served is gone with the vacuumed files). Log files deleted."""
    from deltalake import DeltaTable
    from pyarrow import fs

    target = DeltaTable(
        lakehouse.table_uri(spec), storage_options=lakehouse.storage_options or None
    )
    version = target.version()
    target.create_checkpoint()
    filesystem, root = table_filesystem(lakehouse.table_uri(spec))
    deleted = 0
    for info in filesystem.get_file_info(fs.FileSelector(f"{root.rstrip('/')}/_delta_log")):
        name = info.path.rsplit("/", 1)[-1]
        head = name.split(".", 1)[0]
        if head.isdigit() and int(head) < version and name.endswith((".json", ".parquet", ".crc")):
            filesystem.delete_file(info.path)
            deleted += 1
    return deleted


def purge(
    lakehouse,
    ids: set[str],
    hashes: Iterable[str] = (),
    paths: Iterable[str] = tuple(t.path for t in TABLES),
) -> dict[str, int]:
    """Delete now what still holds the subject outside the tables' current state, in every
    table (a rerun of any stage may have left an older copy of its rows): the superseded
    files (VACUUM, retention 0), the change-data files holding one of ``ids`` (or an id
    hashing into ``hashes``: a subject an earlier erasure removed from the tables), the log
    entries before a new checkpoint, and the table's key index. No time travel to before this point; files another
    writer wrote but has not committed go too: run it when nothing else writes the tables."""
    from deltalake import DeltaTable

    counts = {
        "superseded_files_vacuumed": 0,
        "change_data_files": 0,
        "log_files": 0,
        "key_indexes_dropped": 0,
    }
    for path in sorted(set(paths)):
        spec = table(path)
        if not lakehouse.exists(spec):
            continue
        target = DeltaTable(
            lakehouse.table_uri(spec), storage_options=lakehouse.storage_options or None
        )
        counts["superseded_files_vacuumed"] += len(
            target.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
        )
        counts["change_data_files"] += _change_data_holding(lakehouse, spec, ids, set(hashes))
        counts["log_files"] += _truncate_log(lakehouse, spec)
        # The key index's files and log hold ids too (``delete_rows`` dropped it already
        # where rows went; a rebuild since read the mirror as it is now): none left.
        dropped = key_index.drop(lakehouse.table_uri(spec), lakehouse.storage_options)
        counts["key_indexes_dropped"] += dropped
    return counts


# ---- the log ------------------------------------------------------------------------------


def log_row(
    plan: Plan,
    requested_at: dt.datetime,
    removed: Mapping[str, int],
    purged: bool,
    still_holds: bool | None,
    completed_at: dt.datetime | None = None,
) -> dict:
    """The erasure log's row: hashes only, never an id or a text."""
    completed_at = completed_at or dt.datetime.now(dt.UTC)
    hashed = subject_hash(plan.subject.id)
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"voyce:erasure:{hashed}:{requested_at}")),
        "subject_type": plan.subject.type,
        "subject_hash": hashed,
        "reason": plan.reason,
        "requested_at": requested_at,
        "completed_at": completed_at,
        "erased_id_hashes": sorted({subject_hash(i) for i in plan.ids}),
        "removed": json.dumps(dict(sorted(removed.items())), sort_keys=True),
        "purged": purged,
        "vacuum_after": None if purged else completed_at + retention(),
        "app_still_holds": still_holds,
        "created_at": completed_at,
        "event_date": requested_at.date(),
    }


def append_log(lakehouse, rows: list[dict]) -> None:
    """Add ``rows`` to their day's partition of the erasure log (one Delta commit)."""
    days = sorted({r["event_date"] for r in rows})
    kept = lakehouse.read(LOG, days).to_pylist()
    new = {r["id"] for r in rows}
    everything = [r for r in kept if r["id"] not in new] + rows
    schema = pa.schema([f.with_nullable(True) for f in LOG.arrow_schema()])
    lakehouse.write_partitions(LOG, pa.Table.from_pylist(everything, schema=schema), days)


@dataclass
class Outcome:
    """One subject erased: the plan, what each store and table lost, and the log row."""

    plan: Plan
    removed: dict[str, int]
    deleted: Deleted
    row: dict


def erase(
    lakehouse,
    subject: Subject,
    stores: ErasureStores | None = None,
    *,
    app_db=None,
    reason: str = "request",
    purge_now: bool = False,
    requested_at: dt.datetime | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> Outcome:
    """Erase ``subject`` everywhere (steps 1-4 of the module's docstring) and return the log
    row to write; ``append_log`` writes it."""
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {', '.join(REASONS)}")
    requested_at = requested_at or dt.datetime.now(dt.UTC)
    plan = resolve(lakehouse, subject, reason)
    log(
        f"{subject.type}: {len(plan.users)} users, {len(plan.feedback)} feedback on "
        f"{len(plan.feedback_days)} days"
    )
    still_holds = app_still_holds(app_db, subject) if app_db is not None else None
    removed = stores.forget(plan, log) if stores is not None else {}
    deleted = delete_rows(lakehouse, plan)
    removed |= {f"rows:{path}": count for path, count in deleted.rows.items()}
    removed |= {f"scrubbed:{path}": count for path, count in deleted.scrubbed.items()}
    if purge_now:
        removed |= purge(lakehouse, deleted.ids, tombstones_of(lakehouse, subject_hash(subject.id)))
    row = log_row(plan, requested_at, removed, purge_now, still_holds)
    return Outcome(plan, removed, deleted, row)


def vanished_ids(lakehouse, days: Sequence[dt.date]) -> set[str]:
    """Feedback ids the pipeline's per-feedback tables hold for ``days`` that the feedback
    mirror no longer does (the app deleted them; a sync removed them from the mirror): read
    by partition, the id columns only."""
    if not days or not lakehouse.exists(FEEDBACK):
        return set()
    mirror = set(lakehouse.read(FEEDBACK, days, ["id"]).column("id").to_pylist())
    held: set[str] = set()
    for spec in _per_feedback_tables():
        if lakehouse.exists(spec):
            held |= set(lakehouse.read(spec, days, ["voice_feedback_id"]).column(0).to_pylist())
    missing = held - mirror - {None}
    if missing:
        # Moved, not deleted: the app edited its created_at, the mirror holds it on another
        # day while the pipeline's rows wait for theirs to be redone (one narrow scan).
        anywhere = lakehouse.read(FEEDBACK, None, ["id"]).column("id")
        missing -= set(
            pc.filter(anywhere, pc.is_in(anywhere, pa.array(sorted(missing)))).to_pylist()
        )
    return missing
