"""The CDC sensor's cursor (where it starts, what it leaves to later ticks) and the
incremental runs it requests."""

import datetime as dt
import uuid

import pytest
from dagster import AssetKey, DagsterInstance, build_sensor_context, materialize

from voyce_assets.ingestion.mirrors import raw_mirrors
from voyce_assets.ingestion.resources import IngestionSettings
from voyce_assets.ingestion.sensors import raw_cdc_sensor
from voyce_assets_tests.ingestion.conftest import (
    DAYS,
    RANGE,
    bulk_feedback,
    checks_by_name,
    delta_rows,
    source_rows,
    sql_rows,
)


def _with_lag(resources, seconds):
    return {**resources, "ingestion_settings": IngestionSettings(cdc_lag_seconds=seconds)}


def test_first_tick_leaves_rows_younger_than_the_lag_to_a_later_tick(env):
    engine, resources = env
    # A tag stamped a moment ago: its transaction may still be adding rows stamped earlier,
    # so the first cursor must stay behind it, as every later tick's would.
    today = dt.datetime.now(dt.UTC)
    sql_rows(
        engine,
        "INSERT INTO tags (id, name, category, created_at) VALUES (:i, 'fresh', 'custom', :t)",
        i=str(uuid.uuid4()),
        t=today,
    )
    with DagsterInstance.ephemeral() as instance:
        first = raw_cdc_sensor(
            build_sensor_context(instance=instance, resources=_with_lag(resources, 3600))
        )
        assert not first.run_requests
        later = raw_cdc_sensor(
            build_sensor_context(
                cursor=first.cursor, instance=instance, resources=_with_lag(resources, 0)
            )
        )
    assert [(r.partition_key, r.asset_selection) for r in later.run_requests] == [
        (today.date().isoformat(), [AssetKey(["raw_data", "tags"])])
    ]


FEEDBACK = AssetKey(["raw_data", "voice_feedback"])


def _change_and_sync(engine, resources, statement, **params):
    """The CDC sensor's first tick, then ``statement`` in the app database, then the one
    incremental run the next tick requests, executed: (its request, its result)."""
    resources = {**resources, "ingestion_settings": IngestionSettings(cdc_lag_seconds=0)}
    with DagsterInstance.ephemeral() as instance:
        first = raw_cdc_sensor(build_sensor_context(instance=instance, resources=resources))
        sql_rows(engine, statement, **params)
        tick = raw_cdc_sensor(
            build_sensor_context(cursor=first.cursor, instance=instance, resources=resources)
        )
    [request] = tick.run_requests
    feedback = next(a for a in raw_mirrors if a.key == FEEDBACK)
    run = materialize(
        [feedback],
        resources=resources,
        partition_key=request.partition_key,
        run_config=request.run_config,
    )
    return request, run


@pytest.mark.parametrize("days_later", [0, 1])
def test_a_row_moved_to_another_time_is_mirrored_once_where_it_now_belongs(env, days_later):
    """The app edits a feedback's created_at (to another day, or within its day): the CDC
    run moves the row; the mirror never holds it twice."""
    engine, resources = env
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    moved = sql_rows(
        engine,
        f"SELECT id::text, created_at FROM voice_feedback "
        f"WHERE (created_at AT TIME ZONE 'UTC')::date = '{DAYS[0]}' ORDER BY id LIMIT 1",
    )[0]
    new_created = moved[1] + dt.timedelta(days=days_later, minutes=7)
    target_day = new_created.astimezone(dt.UTC).date().isoformat()
    request, run = _change_and_sync(
        engine,
        resources,
        "UPDATE voice_feedback SET created_at = :c, updated_at = now() WHERE id = :i",
        c=new_created,
        i=moved[0],
    )
    assert request.partition_key == target_day
    assert run.success and all(c.passed for c in checks_by_name(run).values())
    mirror = delta_rows(resources, "raw_data/voice_feedback").to_pylist()
    copies = [r for r in mirror if r["id"] == moved[0]]
    assert len(copies) == 1, copies
    assert copies[0]["event_date"].isoformat() == target_day
    assert copies[0]["created_at"] == new_created
    for day in DAYS:  # every partition holds exactly the source's rows
        assert sorted(r["id"] for r in mirror if r["event_date"].isoformat() == day) == sorted(
            str(r[0]) for r in source_rows(engine, "raw_data/voice_feedback", day)
        )


def test_a_new_row_reaches_the_mirror_through_the_merge_insert_path(env):
    engine, resources = env
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    template = sql_rows(
        engine,
        f"SELECT organization_id::text, user_id::text FROM voice_feedback "
        f"WHERE (created_at AT TIME ZONE 'UTC')::date = '{DAYS[1]}' LIMIT 1",
    )[0]
    new_id = str(uuid.uuid4())
    request, run = _change_and_sync(
        engine,
        resources,
        "INSERT INTO voice_feedback (id, organization_id, user_id, audio_file_path, status, "
        "created_at, updated_at) VALUES (:i, :o, :u, 'late.wav', 'pending', :t, now())",
        i=new_id,
        o=template[0],
        u=template[1],
        t=dt.datetime.fromisoformat(f"{DAYS[1]}T23:59:00+00:00"),
    )
    assert request.partition_key == DAYS[1]
    assert run.success and all(c.passed for c in checks_by_name(run).values())
    merge = next(
        e.materialization.metadata["merge"].value for e in run.get_asset_materialization_events()
    )
    assert merge["num_target_rows_inserted"] == 1 and merge["num_target_rows_updated"] == 0
    day = delta_rows(resources, "raw_data/voice_feedback", DAYS[1]).to_pylist()
    assert [r["audio_file_path"] for r in day if r["id"] == new_id] == ["late.wav"]


def test_a_copy_left_behind_by_a_full_sync_is_removed_by_the_next_merge(env):
    """The row moved to another day was full-synced into its new partition while its old
    partition was not re-synced: two copies, until its next change; then exactly one."""
    engine, resources = env
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    feedback = next(a for a in raw_mirrors if a.key == FEEDBACK)
    moved, created = sql_rows(
        engine,
        f"SELECT id::text, created_at FROM voice_feedback "
        f"WHERE (created_at AT TIME ZONE 'UTC')::date = '{DAYS[0]}' ORDER BY id LIMIT 1",
    )[0]
    sql_rows(
        engine,
        "UPDATE voice_feedback SET created_at = :c, updated_at = now() WHERE id = :i",
        c=created + dt.timedelta(days=2),
        i=moved,
    )
    assert materialize([feedback], resources=resources, partition_key=DAYS[2]).success
    copies = [
        r for r in delta_rows(resources, "raw_data/voice_feedback").to_pylist() if r["id"] == moved
    ]
    assert len(copies) == 2  # the old partition was not re-synced (the sweep would find it)
    request, run = _change_and_sync(
        engine,
        resources,
        "UPDATE voice_feedback SET status = 'completed', updated_at = now() WHERE id = :i",
        i=moved,
    )
    assert request.partition_key == DAYS[2]
    assert run.success
    copies = [
        r for r in delta_rows(resources, "raw_data/voice_feedback").to_pylist() if r["id"] == moved
    ]
    assert [(r["event_date"].isoformat(), r["status"]) for r in copies] == [(DAYS[2], "completed")]


def test_a_day_changed_three_times_merges_each_time(env):
    """The full sync writes a day; three CDC changes to that day merge into it one after the
    other. delta-rs' MERGE writes text as string_view where the full sync wrote string: every
    later read of the day (the moved-row lookup, the checks) must see one type per column."""
    engine, resources = env
    resources = {**resources, "ingestion_settings": IngestionSettings(cdc_lag_seconds=0)}
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    feedback = next(a for a in raw_mirrors if a.key == FEEDBACK)
    ids = [
        r[0]
        for r in sql_rows(
            engine,
            f"SELECT id::text FROM voice_feedback "
            f"WHERE (created_at AT TIME ZONE 'UTC')::date = '{DAYS[1]}' ORDER BY id",
        )
    ]
    with DagsterInstance.ephemeral() as instance:
        cursor = raw_cdc_sensor(build_sensor_context(instance=instance, resources=resources)).cursor
        for round_, changed in enumerate([ids[:2], ids[2:3], ids[:1]]):
            sql_rows(
                engine,
                "UPDATE voice_feedback SET status = 'completed', "
                "audio_file_path = audio_file_path || :s, updated_at = now() "
                "WHERE id = ANY(CAST(:i AS uuid[]))",
                s=f"#{round_}",
                i=changed,
            )
            tick = raw_cdc_sensor(
                build_sensor_context(cursor=cursor, instance=instance, resources=resources)
            )
            cursor = tick.cursor
            [request] = tick.run_requests
            run = materialize(
                [feedback],
                resources=resources,
                partition_key=request.partition_key,
                run_config=request.run_config,
                raise_on_error=False,
            )
            assert run.success, f"round {round_}: the incremental run failed"
            assert all(c.passed for c in checks_by_name(run).values())
    mirror = sorted(
        (r["id"], r["audio_file_path"], r["status"])
        for r in delta_rows(resources, "raw_data/voice_feedback", DAYS[1]).to_pylist()
    )
    source = sorted(
        (str(r[0]), r[1], r[2])
        for r in sql_rows(
            engine,
            f"SELECT id, audio_file_path, status::text FROM voice_feedback "
            f"WHERE (created_at AT TIME ZONE 'UTC')::date = '{DAYS[1]}'",
        )
    )
    assert mirror == source


def test_changes_on_many_days_make_few_runs_that_merge_only_those_days(env):
    """Rows of 12 scattered days changed at once (logins bumping rows created over months):
    a tick requests at most ``cdc_max_runs`` runs, each over a range whose changed days it
    merges and whose other days it leaves as they are; afterwards every day equals the
    source."""
    engine, resources = env
    resources = {
        **resources,
        "ingestion_settings": IngestionSettings(cdc_lag_seconds=0, cdc_max_runs=3),
    }
    start = dt.date.fromisoformat(DAYS[0]) - dt.timedelta(days=60)
    offsets = (0, 1, 2, 9, 17, 30, 31, 40, 47, 52, 58, 59)
    changed = [start + dt.timedelta(days=d) for d in offsets]
    between = start + dt.timedelta(days=5)  # inside a range, with a row, not changed
    for day in [between, *changed]:
        sql_rows(
            engine,
            "INSERT INTO voice_feedback (id, organization_id, user_id, audio_file_path, "
            "metadata, status, created_at, updated_at) SELECT gen_random_uuid(), "
            "organization_id, user_id, 'old/' || :d || '.wav', metadata, 'pending', :t, :t "
            "FROM voice_feedback ORDER BY id LIMIT 1",
            d=day.isoformat(),
            t=dt.datetime.combine(day, dt.time(12), dt.UTC),
        )
    span = {
        "dagster/asset_partition_range_start": start.isoformat(),
        "dagster/asset_partition_range_end": DAYS[-1],
    }
    feedback = next(a for a in raw_mirrors if a.key == FEEDBACK)
    assert materialize([feedback], resources=resources, tags=span).success
    with DagsterInstance.ephemeral() as instance:
        first = raw_cdc_sensor(build_sensor_context(instance=instance, resources=resources))
        sql_rows(
            engine,
            "UPDATE voice_feedback SET status = 'completed', updated_at = now() "
            "WHERE audio_file_path LIKE 'old/%' AND audio_file_path <> :b",
            b=f"old/{between}.wav",
        )
        tick = raw_cdc_sensor(
            build_sensor_context(cursor=first.cursor, instance=instance, resources=resources)
        )
    assert 1 < len(tick.run_requests) <= 3
    covered = []
    for request in tick.run_requests:
        if request.partition_key:
            days = [request.partition_key]
            run = materialize(
                [feedback],
                resources=resources,
                partition_key=request.partition_key,
                run_config=request.run_config,
            )
        else:
            days = request.run_config["ops"][feedback.op.name]["config"]["days"]
            assert days[0] == request.tags["dagster/asset_partition_range_start"]
            assert days[-1] == request.tags["dagster/asset_partition_range_end"]
            run = materialize(
                [feedback], resources=resources, tags=request.tags, run_config=request.run_config
            )
        assert run.success and all(c.passed for c in checks_by_name(run).values())
        covered += days
        for event in run.get_asset_materialization_events():
            metadata = event.materialization.metadata
            if event.partition in days:
                assert metadata["rows_synced"].value == 1
            else:  # a day of the range without changes: left as it was
                assert metadata["unchanged"].value is True
    assert covered == [d.isoformat() for d in changed]  # each changed day in one run
    for day in [between, *changed]:
        key = day.isoformat()
        mirror = delta_rows(resources, "raw_data/voice_feedback", key).to_pylist()
        source = sql_rows(
            engine,
            "SELECT id::text, status::text FROM voice_feedback "
            "WHERE (created_at AT TIME ZONE 'UTC')::date = :d",
            d=day,
        )
        assert sorted((r["id"], r["status"]) for r in mirror) == sorted(map(tuple, source)), key


@pytest.mark.parametrize("seed", range(20))
def test_coalesced_groups_cover_each_changed_day_once_in_at_most_the_limit(seed):
    import random

    from voyce_assets.ingestion.sensors import coalesce

    rng = random.Random(seed)
    first = dt.date(2026, 1, 1)
    days = sorted(
        {
            (first + dt.timedelta(days=rng.randrange(120))).isoformat()
            for _ in range(rng.randrange(1, 40))
        }
    )
    limit = rng.randrange(1, 8)
    groups = coalesce(days, limit)
    assert len(groups) <= limit
    assert [d for g in groups for d in g] == days  # in order, each once
    if len(days) <= limit:  # few enough: a run each, as before
        assert groups == [[d] for d in days]
    elif len(groups) < limit:  # under the limit after joining neighbours: only those
        for group in groups:
            spans = dt.date.fromisoformat(group[-1]) - dt.date.fromisoformat(group[0])
            assert spans.days == len(group) - 1


def test_the_lag_condition_is_estimated_from_the_statistics(env):
    """The changes' queries select rows by ``_lagging``: PostgreSQL's estimate of it follows
    the column's statistics (nearly every row here), not a fixed guess for a function call
    (``isfinite(x)``: a third of the rows), on which it would plan their scans and groups."""
    from psycopg import sql

    from voyce_assets.ingestion.cdc import _lagging

    engine, resources = env
    for day in DAYS:
        bulk_feedback(engine, day, 1000)
    sql_rows(engine, "ANALYZE voice_feedback")
    rows = sql_rows(engine, "SELECT count(*) FROM voice_feedback")[0][0]
    with resources["app_db"].connect() as conn:
        lag = _lagging(sql.Identifier("updated_at"), 0)
        plan = conn.execute(
            sql.SQL("EXPLAIN (FORMAT JSON) SELECT id FROM voice_feedback WHERE {}").format(lag)
        ).fetchone()[0]
        kept = conn.execute(
            sql.SQL("SELECT count(*) FROM voice_feedback WHERE {}").format(lag)
        ).fetchone()[0]
        conn.rollback()
    assert kept == rows
    assert plan[0]["Plan"]["Plan Rows"] > 0.8 * rows, (plan[0]["Plan"]["Plan Rows"], rows)
