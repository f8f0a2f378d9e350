"""Erased subjects stay erased: the erasure log's tombstones are honoured by the full sync,
the CDC merge and the sweep, while the app database still holds the subject."""

import datetime as dt
import json
import uuid

import psycopg
import pyarrow as pa
import pytest
from dagster import DagsterInstance, build_sensor_context, materialize
from psycopg import sql

from voyce_assets.catalog import APP_TABLES, table
from voyce_assets.ingestion.erased import id_columns, resolve
from voyce_assets.ingestion.mirrors import raw_mirrors
from voyce_assets.ingestion.resources import IngestionSettings
from voyce_assets.ingestion.sensors import raw_cdc_sensor
from voyce_assets.privacy.tombstones import erased_hashes, subject_hash, subject_hash_sql
from voyce_assets_tests.ingestion.conftest import (
    RANGE,
    checks_by_name,
    delta_rows,
    full_sweep,
    materializations,
    sql_rows,
)

ERASURE_LOG = table("raw_data/erasure_log")


def _erase(resources, *subjects: list[str]) -> frozenset[str]:
    """Tombstones as the erasure job leaves them: one erasure_log row per subject, holding
    the hashes of the ids it erased (the subject's first). The app database is untouched."""
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "id": str(uuid.uuid4()),
            "subject_type": "user",
            "subject_hash": subject_hash(ids[0]),
            "reason": "request",
            "requested_at": now,
            "completed_at": now,
            "erased_id_hashes": [subject_hash(i) for i in ids],
            "removed": None,
            "purged": False,
            "vacuum_after": None,
            "app_still_holds": True,
            "created_at": now,
            "event_date": now.date(),
        }
        for ids in subjects
    ]
    schema = pa.schema([f.with_nullable(True) for f in ERASURE_LOG.arrow_schema()])
    resources["lakehouse"].write_partitions(
        ERASURE_LOG, pa.Table.from_pylist(rows, schema), [now.date()]
    )
    return erased_hashes(resources["lakehouse"])


def _subjects(engine) -> list[list[str]]:
    """Two users of the demo, each with the ids an erasure of them removes (their own and
    their feedback's): the one who recorded the most feedback, and one whom an action item is
    assigned to (so every kind of id column is exercised)."""
    recorder = sql_rows(
        engine,
        "SELECT user_id::text FROM voice_feedback GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
    )[0][0]
    owner = sql_rows(
        engine,
        "SELECT assigned_to::text FROM action_items WHERE assigned_to <> :u ORDER BY 1 LIMIT 1",
        u=recorder,
    )[0][0]
    out = []
    for user in (recorder, owner):
        feedback = sql_rows(
            engine, "SELECT id::text FROM voice_feedback WHERE user_id = :u ORDER BY 1", u=user
        )
        out.append([user, *(r[0] for r in feedback)])
    return out


def _source(engine, path) -> list[dict]:
    """Every row of the app table, as the mirror holds it (ids as text)."""
    spec = table(path)
    cols = [c.name for c in spec.source_columns]
    rows = sql_rows(engine, f"SELECT {', '.join(cols)} FROM {spec.name}")
    return [
        {c: str(v) if isinstance(v, uuid.UUID) else v for c, v in zip(cols, r, strict=True)}
        for r in rows
    ]


def _holds_erased(row: dict, tombstones: frozenset[str]) -> bool:
    """Whether any value of the row (every column, not only the id columns) is an erased id."""
    return any(v is not None and subject_hash(str(v)) in tombstones for v in row.values())


def _mirror(resources, path) -> list[dict]:
    return delta_rows(resources, path).to_pylist()


def _assert_mirrors_are_the_source_without(engine, resources, tombstones) -> dict[str, int]:
    """Every mirror holds exactly the app's rows less those holding an erased id (their
    values: the reconciliation checksums, which the callers require to pass); returns
    {table: rows left out}."""
    left_out = {}
    for spec in APP_TABLES:
        source = _source(engine, spec.path)
        expected = [r for r in source if not _holds_erased(r, tombstones)]
        mirror = _mirror(resources, spec.path)
        assert not [r for r in mirror if _holds_erased(r, tombstones)], spec.path
        key = spec.primary_key[0]
        assert sorted(r[key] for r in mirror) == sorted(r[key] for r in expected), spec.path
        left_out[spec.name] = len(source) - len(expected)
    return left_out


def _withheld(result) -> dict[str, int]:
    """{table: rows the run withheld as erased}, from each partition's materialization."""
    return {
        spec.name: sum(
            m.metadata["erased_rows_withheld"].value for m in materializations(result, spec.name)
        )
        for spec in APP_TABLES
    }


def _all_passed(result) -> bool:
    checks = checks_by_name(result)
    return bool(checks) and all(c.passed for c in checks.values())


def test_postgres_hashes_an_id_as_subject_hash_does(pg_database):
    """In SQL, the same hash: of a uuid's text (lowercase already: hashed without lower()),
    and of any text (lowercased first, as subject_hash does)."""
    cases = [(str(uuid.uuid4()), False), ("Auto", True), ("ÄBC-déf", True)]
    with psycopg.connect(pg_database) as conn:
        for value, lowercase in cases:
            digest = conn.execute(
                sql.SQL("SELECT encode({}, 'hex')").format(
                    subject_hash_sql(sql.Literal(value), lowercase)
                )
            ).fetchone()[0]
            assert digest == subject_hash(value), value


def test_id_columns_are_the_keys_and_references_of_the_spec():
    names = {spec.name: [c.name for c in id_columns(spec)] for spec in APP_TABLES}
    assert names["voice_feedback"] == ["id", "organization_id", "user_id"]
    assert names["action_items"] == ["id", "voice_feedback_id", "assigned_to"]
    # assigned_by holds 'auto' or the id of the user who tagged.
    assert names["feedback_tags"] == ["id", "voice_feedback_id", "tag_id", "assigned_by"]
    assert names["organizations"] == ["id"]


def test_without_tombstones_nothing_is_queried_and_nothing_is_left_out():
    erased = resolve(None, table("raw_data/voice_feedback"), frozenset(), sql.SQL("TRUE"))
    assert not erased and erased.withheld(None, sql.SQL("TRUE")) == {}
    assert erased.kept().as_string(None) == "TRUE"


def test_a_full_sync_leaves_out_every_row_of_an_erased_subject_the_app_still_holds(env):
    engine, resources = env
    subjects = _subjects(engine)
    tombstones = _erase(resources, *subjects)
    result = materialize(raw_mirrors, resources=resources, tags=RANGE)
    assert result.success and _all_passed(result)
    left_out = _assert_mirrors_are_the_source_without(engine, resources, tombstones)
    # The users, their feedback, its tags and action items, the tags one of them assigned
    # and the action items assigned to the other: all of it still in the app database.
    assert (
        left_out["users"] == 2
        and left_out["voice_feedback"] == len(subjects[0]) - 1 + len(subjects[1]) - 1
    )
    assert left_out["action_items"] >= 1 and left_out["feedback_tags"] >= 1
    # Counted in the run's metadata (and never named: no id of theirs in any metadata).
    assert _withheld(result) == left_out
    runs = {m.metadata["run_erased_rows_withheld"].value for m in materializations(result, "users")}
    assert runs == {2}
    for event in result.all_events:
        text = str(event.event_specific_data)
        assert not any(i in text for ids in subjects for i in ids)


def test_a_cdc_change_of_an_erased_row_is_skipped_and_the_others_merged(env):
    engine, resources = env
    subjects = _subjects(engine)
    tombstones = _erase(resources, *subjects)
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    erased_feedback = subjects[0][1]
    day = sql_rows(
        engine,
        "SELECT (created_at AT TIME ZONE 'UTC')::date FROM voice_feedback WHERE id = :i",
        i=erased_feedback,
    )[0][0]
    other = sql_rows(
        engine,
        "SELECT id::text FROM voice_feedback WHERE (created_at AT TIME ZONE 'UTC')::date = :d "
        "AND user_id <> ALL(CAST(:u AS uuid[])) ORDER BY id LIMIT 1",
        d=day,
        u=[s[0] for s in subjects],
    )[0][0]
    resources = {**resources, "ingestion_settings": IngestionSettings(cdc_lag_seconds=0)}
    with DagsterInstance.ephemeral() as instance:
        first = raw_cdc_sensor(build_sensor_context(instance=instance, resources=resources))
        # The app edits the erased user's feedback, their profile, and someone else's feedback.
        sql_rows(
            engine,
            "UPDATE voice_feedback SET status = 'failed', updated_at = now() WHERE id IN (:a, :b)",
            a=erased_feedback,
            b=other,
        )
        sql_rows(
            engine,
            "UPDATE users SET full_name = 'Still Here', updated_at = now() WHERE id = :u",
            u=subjects[0][0],
        )
        tick = raw_cdc_sensor(
            build_sensor_context(cursor=first.cursor, instance=instance, resources=resources)
        )
    assert tick.run_requests
    withheld = {}
    for request in tick.run_requests:
        selected = [a for a in raw_mirrors if a.key in set(request.asset_selection)]
        run = materialize(
            selected,
            resources=resources,
            partition_key=request.partition_key,
            run_config=request.run_config,
        )
        # The reconciliation compares the day without the erased rows: it passes.
        assert run.success and _all_passed(run), request.partition_key
        for name, n in _withheld(run).items():
            withheld[name] = withheld.get(name, 0) + n
    assert withheld["voice_feedback"] >= 1 and withheld["users"] >= 1
    _assert_mirrors_are_the_source_without(engine, resources, tombstones)
    merged = delta_rows(resources, "raw_data/voice_feedback").to_pylist()
    assert next(r["status"] for r in merged if r["id"] == other) == "failed"


@pytest.mark.parametrize("every_days", [1, 7])
def test_the_sweep_compares_the_app_without_the_erased_rows(env, every_days):
    """An erased subject the app still holds is no mismatch and requests no sync, whether
    its partitions are checksummed today or only counted."""
    engine, resources = env
    tombstones = _erase(resources, *_subjects(engine))
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    with DagsterInstance.ephemeral() as instance:
        found, syncs, _ = full_sweep(instance, resources, every_days=every_days)
    assert set(found) == {s.name for s in APP_TABLES}
    assert all(m["passed"].value for ms in found.values() for m in ms), {
        k: [m["mismatched"].value for m in ms] for k, ms in found.items()
    }
    assert not syncs
    assert found["voice_feedback"][0]["erased_rows_withheld"].value >= 1
    _assert_mirrors_are_the_source_without(engine, resources, tombstones)


def test_a_mirror_still_holding_an_erased_subject_is_found_and_resynced_without_it(env):
    """Mirrored before the erasure (and not yet removed from the mirror): the sweep's
    comparison without the erased rows finds those partitions (their checksums: the counts
    are equal); its full syncs leave them out; the next sweep passes."""
    engine, resources = env
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    tombstones = _erase(resources, *_subjects(engine))
    with DagsterInstance.ephemeral() as instance:
        found, syncs, cursor = full_sweep(instance, resources, every_days=1)
        assert not all(m["passed"].value for m in found["voice_feedback"]) and syncs
        for request in syncs:
            selected = [a for a in raw_mirrors if a.key in set(request.asset_selection)]
            assert materialize(selected, resources=resources, tags=request.tags).success
        _assert_mirrors_are_the_source_without(engine, resources, tombstones)
        tomorrow = {**json.loads(cursor), "day": None}
        again, syncs, _ = full_sweep(
            instance, resources, json.dumps(tomorrow), every_days=1, sweep_day="2000-01-01"
        )
    assert all(m["passed"].value for ms in again.values() for m in ms) and not syncs


def test_tombstones_of_ids_the_app_does_not_hold_change_nothing(env):
    """The same sync with no erasure log, and with one whose ids the app never held: equal
    mirrors, equal checks, nothing withheld."""
    _, resources = env
    plain = materialize(raw_mirrors, resources=resources, tags=RANGE)
    before = {s.path: _mirror(resources, s.path) for s in APP_TABLES}
    _erase(resources, [str(uuid.uuid4()), str(uuid.uuid4())])
    again = materialize(raw_mirrors, resources=resources, tags=RANGE)
    assert plain.success and again.success and _all_passed(plain) and _all_passed(again)
    for spec in APP_TABLES:
        key = spec.primary_key[0]
        assert sorted(_mirror(resources, spec.path), key=lambda r: r[key]) == sorted(
            before[spec.path], key=lambda r: r[key]
        )
    assert set(_withheld(plain).values()) == {0} and set(_withheld(again).values()) == {0}
    assert _withheld(plain) == _withheld(again)
