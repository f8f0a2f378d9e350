"""Rows the source should never hold, among good ones: each is reported by id and kept out
of the mirror, and no sensor, sweep or sync stops for it (a source without its constraints:
a NULL or far-future created_at, a primary key that repeats)."""

import datetime as dt
import uuid

from dagster import AssetKey, DagsterInstance, build_sensor_context, materialize

from voyce_assets.ingestion.mirrors import raw_mirrors
from voyce_assets.ingestion.resources import IngestionSettings
from voyce_assets.ingestion.sensors import raw_cdc_sensor
from voyce_assets_tests.ingestion.conftest import (
    DAYS,
    RANGE,
    checks_by_name,
    delta_rows,
    source_rows,
    sql_rows,
    sweep,
)
from voyce_assets_tests.ingestion.test_sweep import _by_table, _passed

FEEDBACK = AssetKey(["raw_data", "voice_feedback"])
TAGS = AssetKey(["raw_data", "tags"])


def _no_lag(resources):
    return {**resources, "ingestion_settings": IngestionSettings(cdc_lag_seconds=0)}


def _copy_feedback(engine, day: str, created_at, **changes) -> str:
    """A new voice_feedback row like one of ``day``'s, with ``created_at``; its id."""
    new_id = changes.pop("id", None) or str(uuid.uuid4())
    template = sql_rows(
        engine,
        f"SELECT organization_id::text, user_id::text FROM voice_feedback "
        f"WHERE (created_at AT TIME ZONE 'UTC')::date = '{day}' ORDER BY id LIMIT 1",
    )[0]
    sql_rows(
        engine,
        "INSERT INTO voice_feedback (id, organization_id, user_id, audio_file_path, status, "
        "created_at, updated_at) VALUES (:i, :o, :u, :p, :s, :c, :up)",
        i=new_id,
        o=template[0],
        u=template[1],
        p=changes.get("audio_file_path", "bad.wav"),
        s=changes.get("status", "pending"),
        c=created_at,
        up=changes.get("updated_at", dt.datetime.now(dt.UTC)),
    )
    return new_id


def _run(resources, request):
    mirrors = [a for a in raw_mirrors if a.key in set(request.asset_selection)]
    return materialize(
        mirrors,
        resources=resources,
        partition_key=request.partition_key,
        run_config=request.run_config,
    )


def test_rows_without_a_place_are_named_and_stop_nothing(env):
    """A NULL created_at and one in 2100, beside a good new row: the CDC tick requests the
    good row's partition, the full sync and the sweep name the two ids, none is mirrored."""
    engine, resources = env
    resources = _no_lag(resources)
    sql_rows(engine, "ALTER TABLE voice_feedback ALTER COLUMN created_at DROP NOT NULL")
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    with DagsterInstance.ephemeral() as instance:
        first = raw_cdc_sensor(build_sensor_context(instance=instance, resources=resources))
        undated = _copy_feedback(engine, DAYS[1], None)
        future = _copy_feedback(engine, DAYS[1], dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
        good = _copy_feedback(engine, DAYS[1], dt.datetime.fromisoformat(f"{DAYS[1]}T22:00Z"))
        tick = raw_cdc_sensor(
            build_sensor_context(cursor=first.cursor, instance=instance, resources=resources)
        )
        [request] = tick.run_requests
        assert request.partition_key == DAYS[1]
        run = _run(resources, request)
        assert run.success
        checks = checks_by_name(run)
        placed = checks[("voice_feedback", "rows_placed")]
        assert not placed.passed
        assert sorted(placed.metadata["ids"].value) == sorted([undated, future])
        assert placed.metadata["rows_outside_partitions"].value == 2
        assert checks[("voice_feedback", "reconciliation")].passed
        # The next tick is quiet: the two rows are not changes waiting for ever.
        again = raw_cdc_sensor(
            build_sensor_context(cursor=tick.cursor, instance=instance, resources=resources)
        )
        assert not again.run_requests

        # The full sync of the range: the same finding, the good rows all there.
        full = materialize(raw_mirrors, resources=resources, tags=RANGE)
        assert full.success
        found = checks_by_name(full)[("voice_feedback", "rows_placed")]
        assert not found.passed and sorted(found.metadata["ids"].value) == sorted([undated, future])
        assert checks_by_name(full)[("users", "rows_placed")].passed
        mirror = {r["id"] for r in delta_rows(resources, "raw_data/voice_feedback").to_pylist()}
        assert good in mirror and undated not in mirror and future not in mirror

        # The sweep goes through every table and names them too.
        swept = _by_table(sweep(instance, resources))
        assert set(swept) == {
            "organizations",
            "users",
            "voice_feedback",
            "tags",
            "feedback_tags",
            "action_items",
        }
        assert not _passed(swept["voice_feedback"])
        outside = swept["voice_feedback"]["rows_outside_partitions"].value
        assert sorted(outside["ids"]) == sorted([undated, future]) and outside["rows"] == 2
        assert _passed(swept["users"])


def test_a_future_stamp_never_carries_the_cursor_past_now(env):
    """Tags are followed by created_at: a tag stamped in 2100 must not move the cursor there,
    or every later tag would be invisible to the CDC until 2100."""
    engine, resources = env
    resources = _no_lag(resources)
    with DagsterInstance.ephemeral() as instance:
        first = raw_cdc_sensor(build_sensor_context(instance=instance, resources=resources))
        sql_rows(
            engine,
            "INSERT INTO tags (id, name, category, created_at) VALUES (:i, 'later', 'custom', :t)",
            i=str(uuid.uuid4()),
            t=dt.datetime(2100, 1, 1, tzinfo=dt.UTC),
        )
        quiet = raw_cdc_sensor(
            build_sensor_context(cursor=first.cursor, instance=instance, resources=resources)
        )
        assert not quiet.run_requests
        now = dt.datetime.now(dt.UTC)
        sql_rows(
            engine,
            "INSERT INTO tags (id, name, category, created_at) VALUES (:i, 'now', 'custom', :t)",
            i=str(uuid.uuid4()),
            t=now,
        )
        tick = raw_cdc_sensor(
            build_sensor_context(cursor=quiet.cursor, instance=instance, resources=resources)
        )
    assert [(r.partition_key, r.asset_selection) for r in tick.run_requests] == [
        (now.date().isoformat(), [TAGS])
    ]


def test_a_repeated_key_keeps_its_newest_row_and_is_reported(env):
    """The source lost its primary key and holds one id twice: the mirror keeps the copy
    changed last (the stated rule), the primary_key check names the id, reconciliation
    compares the rows the rule keeps; a CDC change of both copies merges one row."""
    engine, resources = env
    resources = _no_lag(resources)
    sql_rows(engine, "ALTER TABLE voice_feedback DROP CONSTRAINT voice_feedback_pkey CASCADE")
    twin, created = sql_rows(
        engine,
        f"SELECT id::text, created_at FROM voice_feedback "
        f"WHERE (created_at AT TIME ZONE 'UTC')::date = '{DAYS[1]}' ORDER BY id LIMIT 1",
    )[0]
    _copy_feedback(
        engine,
        DAYS[1],
        created,
        id=twin,
        status="completed",
        audio_file_path="newer.wav",
        updated_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1),
    )
    assert len(source_rows(engine, "raw_data/voice_feedback", DAYS[1])) == 7
    run = materialize(raw_mirrors, resources=resources, tags=RANGE)
    assert run.success
    checks = checks_by_name(run)
    pk = checks[("voice_feedback", "primary_key")]
    assert not pk.passed
    assert pk.metadata["duplicate_ids"].value == [twin]
    assert pk.metadata["rows_dropped"].value == 1
    assert checks[("voice_feedback", "reconciliation")].passed
    day = delta_rows(resources, "raw_data/voice_feedback", DAYS[1]).to_pylist()
    assert len(day) == 6
    assert [r["audio_file_path"] for r in day if r["id"] == twin] == ["newer.wav"]
    with DagsterInstance.ephemeral() as instance:
        swept = _by_table(sweep(instance, resources, every_days=1))
        assert all(_passed(m) for m in swept.values()), swept["voice_feedback"]
        first = raw_cdc_sensor(build_sensor_context(instance=instance, resources=resources))
        sql_rows(
            engine,
            "UPDATE voice_feedback SET audio_file_path = audio_file_path || '!', "
            "updated_at = now() - (CASE WHEN status = 'completed' THEN 0 ELSE 1 END) "
            "* interval '1 microsecond' WHERE id = :i",
            i=twin,
        )
        tick = raw_cdc_sensor(
            build_sensor_context(cursor=first.cursor, instance=instance, resources=resources)
        )
        [request] = tick.run_requests
        merged = _run(resources, request)
    assert merged.success
    day = delta_rows(resources, "raw_data/voice_feedback", DAYS[1]).to_pylist()
    assert [r["audio_file_path"] for r in day if r["id"] == twin] == ["newer.wav!"]


def test_an_infinite_timestamp_is_named_and_the_rest_mirrored(env):
    """PostgreSQL allows 'infinity' in a timestamptz; Arrow and Delta have no such value:
    the row is left out and named, the other rows and tables sync."""
    engine, resources = env
    odd = sql_rows(
        engine,
        f"SELECT id::text FROM users WHERE (created_at AT TIME ZONE 'UTC')::date = '{DAYS[0]}' "
        "ORDER BY id LIMIT 1",
    )[0][0]
    sql_rows(engine, "UPDATE users SET last_login = 'infinity' WHERE id = :i", i=odd)
    run = materialize(raw_mirrors, resources=resources, tags=RANGE)
    assert run.success
    placed = checks_by_name(run)[("users", "rows_placed")]
    assert not placed.passed
    assert placed.metadata["infinite_timestamp_ids"].value == [odd]
    assert checks_by_name(run)[("users", "reconciliation")].passed
    mirror = delta_rows(resources, "raw_data/users")["id"].to_pylist()
    expected = (
        sql_rows(
            engine,
            "SELECT count(*) FROM users WHERE (created_at AT TIME ZONE 'UTC')::date "
            "= ANY(CAST(:d AS date[]))",
            d=DAYS,
        )[0][0]
        - 1
    )
    assert odd not in mirror and len(mirror) == expected


def test_an_infinite_date_is_named_too(env):
    engine, resources = env
    odd = sql_rows(engine, "SELECT id::text FROM action_items ORDER BY id LIMIT 1")[0][0]
    sql_rows(engine, "UPDATE action_items SET due_date = 'infinity' WHERE id = :i", i=odd)
    run = materialize(raw_mirrors, resources=resources, tags=RANGE)
    assert run.success
    placed = checks_by_name(run)[("action_items", "rows_placed")]
    assert not placed.passed and placed.metadata["infinite_timestamp_ids"].value == [odd]
    assert odd not in delta_rows(resources, "raw_data/action_items")["id"].to_pylist()


def test_a_repeated_key_in_a_partitioned_source_drops_only_its_own_copy(env):
    """In a partitioned table a ctid repeats across the children: the rule must leave out
    the repeated key's copy, never the row of another child at the same ctid."""
    engine, resources = env
    sql_rows(engine, "CREATE SCHEMA parted")
    sql_rows(
        engine,
        "CREATE TABLE parted.voice_feedback (LIKE public.voice_feedback) "
        "PARTITION BY RANGE (created_at)",
    )
    for i, day in enumerate(DAYS):
        after = dt.date.fromisoformat(day) + dt.timedelta(days=1)
        sql_rows(
            engine,
            f"CREATE TABLE parted.vf{i} PARTITION OF parted.voice_feedback FOR VALUES FROM "
            f"('{day}T00:00:00+00') TO ('{after}T00:00:00+00')",
        )
    sql_rows(
        engine,
        "INSERT INTO parted.voice_feedback SELECT * FROM public.voice_feedback "
        "WHERE (created_at AT TIME ZONE 'UTC')::date BETWEEN CAST(:a AS date) AND CAST(:b AS date)",
        a=DAYS[0],
        b=DAYS[-1],
    )
    twin = sql_rows(engine, "SELECT id::text FROM parted.vf0 ORDER BY ctid LIMIT 1")[0][0]
    sql_rows(
        engine,
        "INSERT INTO parted.voice_feedback SELECT * FROM parted.vf0 WHERE id = :i",
        i=twin,
    )
    feedback = next(a for a in raw_mirrors if a.key == FEEDBACK)
    run = materialize(
        [feedback],
        resources=resources,
        tags=RANGE,
        run_config={"ops": {"raw_data__voice_feedback": {"config": {"pg_schema": "parted"}}}},
    )
    assert run.success
    checks = checks_by_name(run)
    assert checks[("voice_feedback", "primary_key")].metadata["rows_dropped"].value == 1
    assert checks[("voice_feedback", "reconciliation")].passed
    mirror = sorted(delta_rows(resources, "raw_data/voice_feedback")["id"].to_pylist())
    source = sorted(
        r[0] for r in sql_rows(engine, "SELECT DISTINCT id::text FROM parted.voice_feedback")
    )
    assert mirror == source


def test_a_source_repeating_too_many_keys_fails_its_sync_and_not_the_sweep(env):
    engine, resources = env
    from voyce_assets.ingestion.placement import MAX_DUPLICATE_ROWS

    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    sql_rows(engine, "ALTER TABLE tags DROP CONSTRAINT tags_pkey CASCADE")
    sql_rows(
        engine,
        "INSERT INTO tags (id, name, category, created_at) "
        "SELECT id, name || g, category, created_at FROM tags, generate_series(1, :n) g "
        "WHERE id = (SELECT id FROM tags ORDER BY id LIMIT 1)",
        n=MAX_DUPLICATE_ROWS,
    )
    with DagsterInstance.ephemeral() as instance:
        swept = _by_table(sweep(instance, resources))
    assert len(swept) == 6, "every table is swept"
    assert not _passed(swept["tags"]) and "restore its primary key" in swept["tags"]["error"].text
    assert _passed(swept["users"])
    tags = next(a for a in raw_mirrors if a.key == TAGS)
    run = materialize([tags], resources=resources, tags=RANGE, raise_on_error=False)
    assert not run.success


def test_rows_held_back_are_not_replaced_again_on_every_change(env):
    """A row the mirror holds back (a NULL required column) makes the day's counts differ
    the other way: an incremental run does not replace the partition for it (that changes
    nothing) and reconciliation says so, as before; a delete is what a replace repairs."""
    engine, resources = env
    resources = _no_lag(resources)
    sql_rows(engine, "ALTER TABLE voice_feedback ALTER COLUMN organization_id DROP NOT NULL")
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    with DagsterInstance.ephemeral() as instance:
        first = raw_cdc_sensor(build_sensor_context(instance=instance, resources=resources))
        gone = sql_rows(
            engine,
            f"SELECT id::text FROM voice_feedback WHERE (created_at AT TIME ZONE 'UTC')::date "
            f"= '{DAYS[2]}' ORDER BY id LIMIT 1",
        )[0][0]
        sql_rows(engine, "DELETE FROM voice_feedback WHERE id = :i", i=gone)
        _copy_feedback(engine, DAYS[2], dt.datetime.fromisoformat(f"{DAYS[2]}T20:00Z"))
        tick = raw_cdc_sensor(
            build_sensor_context(cursor=first.cursor, instance=instance, resources=resources)
        )
        [request] = tick.run_requests
        run = _run(resources, request)
        assert run.success
        meta = next(e.materialization.metadata for e in run.get_asset_materialization_events())
        assert meta["repaired_partitions"].value == [DAYS[2]]
        assert gone not in delta_rows(resources, "raw_data/voice_feedback")["id"].to_pylist()
        orphan = _copy_feedback(engine, DAYS[1], dt.datetime.fromisoformat(f"{DAYS[1]}T20:00Z"))
        sql_rows(engine, "UPDATE voice_feedback SET organization_id = NULL WHERE id = :i", i=orphan)
        tick = raw_cdc_sensor(
            build_sensor_context(cursor=tick.cursor, instance=instance, resources=resources)
        )
        [request] = tick.run_requests
        feedback = next(a for a in raw_mirrors if a.key == FEEDBACK)
        held = materialize(
            [feedback],
            resources=resources,
            partition_key=request.partition_key,
            run_config=request.run_config,
            raise_on_error=False,
        )
    meta = [e.materialization.metadata for e in held.get_asset_materialization_events()]
    assert all("repaired_partitions" not in m for m in meta)
    assert not checks_by_name(held)[("voice_feedback", "reconciliation")].passed


def test_a_day_holding_an_infinite_timestamp_still_takes_its_changes(env):
    """The 15-minute sync of a day that holds a row it cannot mirror keeps working: the
    incremental run's counts leave that row out, like the full sync's."""
    engine, resources = env
    resources = _no_lag(resources)
    odd = sql_rows(
        engine,
        f"SELECT id::text FROM voice_feedback WHERE (created_at AT TIME ZONE 'UTC')::date "
        f"= '{DAYS[1]}' ORDER BY id LIMIT 1",
    )[0][0]
    sql_rows(engine, "UPDATE voice_feedback SET updated_at = '-infinity' WHERE id = :i", i=odd)
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    with DagsterInstance.ephemeral() as instance:
        first = raw_cdc_sensor(build_sensor_context(instance=instance, resources=resources))
        new = _copy_feedback(engine, DAYS[1], dt.datetime.fromisoformat(f"{DAYS[1]}T21:00Z"))
        tick = raw_cdc_sensor(
            build_sensor_context(cursor=first.cursor, instance=instance, resources=resources)
        )
        [request] = tick.run_requests
        run = _run(resources, request)
    assert run.success
    checks = checks_by_name(run)
    assert checks[("voice_feedback", "reconciliation")].passed
    assert checks[("voice_feedback", "rows_placed")].metadata["infinite_timestamp_ids"].value == [
        odd
    ]
    mirror = delta_rows(resources, "raw_data/voice_feedback")["id"].to_pylist()
    assert new in mirror and odd not in mirror
