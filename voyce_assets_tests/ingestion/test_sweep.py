"""The reconciliation sweep finds what CDC and the daily full sync cannot, and repairs it:
counts in the sensor's tick, content checksums in a run that resumes where it stopped."""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import sqlalchemy as sa
from dagster import AssetKey, AssetObservation, AssetRecordsFilter, DagsterInstance, materialize

from voyce_assets.catalog import APP_TABLES, table
from voyce_assets.ingestion import reconciliation
from voyce_assets.ingestion.mirrors import MIRRORS, build_mirror, raw_mirrors
from voyce_assets.ingestion.reconciliation import (
    CHECKED,
    _ranges,
    checked_partitions,
    raw_reconciliation_checksum_job,
)
from voyce_assets.ingestion.sweep import checksum_batches, scrub_slice
from voyce_assets.resources.app_db import EmbeddedAppDatabase
from voyce_assets_tests.ingestion.conftest import (
    DAYS,
    QUICK_RETRY,
    RANGE,
    bulk_feedback,
    checksum_run,
    delta_rows,
    source_rows,
    sql_rows,
    sweep,
)

FEEDBACK = AssetKey(["raw_data", "voice_feedback"])
CHECKSUM_JOB = "raw_reconciliation_checksum_job"


def _next_day(cursor: str) -> str:
    """The cursor as the next day's first tick sees it (today's sweep not done yet)."""
    state = json.loads(cursor)
    state.pop("day")
    return json.dumps(state)


def _run(resources, request):
    mirrors = [a for a in raw_mirrors if a.key in set(request.asset_selection)]
    return materialize(mirrors, resources=resources, tags=request.tags)


def _by_table(result):
    """{table: the sweep's observation of its mirror}"""
    return {e.asset_key.path[-1]: e.metadata for e in result.asset_events}


def _split(tick):
    """(the checksum run requested, the full syncs requested) of a tick."""
    runs = [r for r in tick.run_requests if r.job_name == CHECKSUM_JOB]
    return (runs[0] if runs else None), [r for r in tick.run_requests if r.job_name != CHECKSUM_JOB]


def _summaries(run):
    """{table: the checksum run's observation of its mirror (the table's summary)}"""
    return {
        e.asset_key.path[-1]: e.metadata
        for e in (
            ev.asset_observation_data.asset_observation
            for ev in run.all_events
            if ev.is_asset_observation
        )
        if e.partition is None
    }


def _records(instance, sweep_day):
    """[(table, partition, run id, finding)] of every record the checksum runs made for the
    sweep day, repeats included."""
    out = []
    for spec in APP_TABLES:
        page = instance.fetch_observations(
            AssetRecordsFilter(asset_key=MIRRORS[spec.path].key), limit=10_000, ascending=True
        )
        for record in page.records:
            obs = record.asset_observation
            if (
                obs.partition
                and CHECKED in obs.metadata
                and obs.metadata["sweep_day"].value == sweep_day
            ):
                out.append((spec.path, obs.partition, record.run_id, obs.metadata["finding"].value))
    return out


def _passed(metadata) -> bool:
    return metadata["passed"].value


def test_a_changed_row_with_equal_counts_is_found_by_the_checksum_run_and_repaired_once(env):
    engine, resources = env
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    # Changed in the source without touching updated_at: the CDC cursor never sees it, and
    # every partition still has the same number of rows.
    changed = sql_rows(
        engine,
        f"SELECT id::text FROM voice_feedback WHERE (created_at AT TIME ZONE 'UTC')::date = "
        f"'{DAYS[0]}' ORDER BY id LIMIT 1",
    )[0][0]
    sql_rows(engine, "UPDATE voice_feedback SET status = 'failed' WHERE id = :i", i=changed)
    with DagsterInstance.ephemeral() as instance:
        tick = sweep(instance, resources, every_days=1)
        # The tick counts; the checksums are a run's: requested, not done in the tick.
        counted = _by_table(tick)
        assert all(_passed(m) for m in counted.values()), "the counts are equal"
        assert counted["voice_feedback"]["partitions_checksummed"].value == 0
        assert counted["voice_feedback"]["partitions_to_checksum"].value == len(DAYS)
        run, repairs = _split(tick)
        assert not repairs
        today = dt.datetime.now(dt.UTC).date().isoformat()
        assert run.run_key == f"sweep-checksums:{today}"
        assert run.tags["voyce/ingestion"] == "sweep"
        work = run.run_config["ops"]["reconciliation_checksums"]["config"]
        assert work["partitions"]["raw_data/voice_feedback"] == DAYS
        # The same day's tick again: counted, run requested, nothing requested twice.
        again = sweep(instance, resources, cursor=tick.cursor, every_days=1)
        assert not again.run_requests and not again.asset_events

        result = checksum_run(instance, resources, run)
        assert result.success
        found = _summaries(result)
        assert not _passed(found["voice_feedback"])
        n = len(source_rows(engine, "raw_data/voice_feedback", DAYS[0]))
        assert found["voice_feedback"]["mismatched"].value == {
            DAYS[0]: {"source_rows": n, "mirror_rows": n, "checksum_equal": False}
        }
        assert found["voice_feedback"]["partitions_checksummed"].value == len(DAYS)
        assert all(_passed(m) for name, m in found.items() if name != "voice_feedback")

        # The next tick reads the run's findings: one full sync of that partition.
        tick = sweep(instance, resources, cursor=again.cursor, every_days=1)
        run_again, [request] = _split(tick)
        assert run_again is None
        assert request.asset_selection == [FEEDBACK]
        assert (
            request.tags["dagster/asset_partition_range_start"],
            request.tags["dagster/asset_partition_range_end"],
        ) == (DAYS[0], DAYS[0])
        assert request.tags["voyce/ingestion"] == "sweep"
        assert not sweep(instance, resources, cursor=tick.cursor, every_days=1).run_requests

        assert _run(resources, request).success
        mirrored = delta_rows(resources, "raw_data/voice_feedback", DAYS[0]).to_pylist()
        assert next(r["status"] for r in mirrored if r["id"] == changed) == "failed"
        after = sweep(instance, resources, cursor=_next_day(tick.cursor), every_days=1)
        found = _by_table(after)
        assert all(_passed(m) for m in found.values())
        assert not _split(after)[1]
        assert found["voice_feedback"]["repaired_since_last_sweep"].value == [DAYS[0]]


def test_a_hard_delete_in_an_old_partition_is_found_by_counts_and_repaired(env):
    engine, resources = env
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    # feedback_tags: rows on every day of the seed (a table without one on DAYS[0] would
    # delete nothing, and the test would say nothing about the sweep).
    deleted = sql_rows(
        engine,
        f"DELETE FROM feedback_tags WHERE id = (SELECT id FROM feedback_tags WHERE "
        f"(created_at AT TIME ZONE 'UTC')::date = '{DAYS[0]}' ORDER BY id LIMIT 1) RETURNING id",
    )
    assert len(deleted) == 1
    with DagsterInstance.ephemeral() as instance:
        tick = sweep(instance, resources)  # weekly scrub: the counts find it today
        found = _by_table(tick)
        assert not _passed(found["feedback_tags"])
        [request] = _split(tick)[1]
        assert request.asset_selection == [AssetKey(["raw_data", "feedback_tags"])]
        # The same finding tomorrow, if it could not be repaired: the same run key.
        tomorrow = sweep(instance, resources, cursor=_next_day(tick.cursor))
        assert [r.run_key for r in _split(tomorrow)[1]] == [request.run_key]
        assert request.run_key.startswith("sweep:") and DAYS[0] in request.run_key
        assert _run(resources, request).success
        after = _by_table(sweep(instance, resources, cursor=_next_day(tick.cursor)))
        assert all(_passed(m) for m in after.values())
    assert sorted(
        r["id"] for r in delta_rows(resources, "raw_data/feedback_tags", DAYS[0]).to_pylist()
    ) == sorted(str(r[0]) for r in source_rows(engine, "raw_data/feedback_tags", DAYS[0]))


def _failed_incremental(feedback, resources, instance, tags=None, partition_key=None, **config):
    """An incremental run of ``feedback`` that fails (its schema does not exist), as the CDC
    sensor would have requested it (its tags, its cursor, ``config``'s extra fields)."""
    return materialize(
        [feedback],
        resources=resources,
        partition_key=partition_key,
        instance=instance,
        tags={
            **(tags or {}),
            "voyce/sync_mode": "incremental",
            "voyce/tables": "raw_data/voice_feedback",
        },
        run_config={
            "ops": {
                "raw_data__voice_feedback": {
                    "config": {
                        "mode": "incremental",
                        "since_ts": "2026-03-01T00:00:00+00:00",
                        "since_id": "00000000-0000-0000-0000-000000000000",
                        "pg_schema": "no_such_schema",
                        **config,
                    }
                }
            }
        },
        raise_on_error=False,
    )


def test_a_failed_incremental_run_is_requested_again_as_a_full_sync(env):
    _, resources = env
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    feedback = build_mirror(table("raw_data/voice_feedback"), retry_policy=QUICK_RETRY)
    with DagsterInstance.ephemeral() as instance:
        first = sweep(instance, resources)
        failed = _failed_incremental(feedback, resources, instance, partition_key=DAYS[1])
        assert not failed.success
        tick = sweep(instance, resources, cursor=first.cursor)
        [request] = tick.run_requests
        assert request.run_key == f"full-after-failed:{failed.run_id}"
        assert request.partition_key == DAYS[1] and request.asset_selection == [FEEDBACK]
        assert request.tags["voyce/sync_mode"] == "full"
        # Later ticks look back a little (records commit out of order) and ask again with
        # the same run key, which Dagster launches once.
        again = sweep(instance, resources, cursor=tick.cursor)
        assert [r.run_key for r in again.run_requests] == [request.run_key]


def test_a_failed_incremental_run_over_a_range_resyncs_only_its_changed_days(env):
    """A CDC run over a range (more changed days than cdc_max_runs) fails: the full syncs
    requested cover the days it was to merge, not the days of the range between them."""
    _, resources = env
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    feedback = build_mirror(table("raw_data/voice_feedback"), retry_policy=QUICK_RETRY)
    with DagsterInstance.ephemeral() as instance:
        first = sweep(instance, resources)
        failed = _failed_incremental(
            feedback, resources, instance, tags=RANGE, days=[DAYS[0], DAYS[2]]
        )
        assert not failed.success
        tick = sweep(instance, resources, cursor=first.cursor)
    resyncs = [r for r in tick.run_requests if r.run_key.startswith("full-after-failed:")]
    assert sorted(r.partition_key for r in resyncs) == [DAYS[0], DAYS[2]]
    assert all(r.asset_selection == [FEEDBACK] for r in resyncs)
    assert len({r.run_key for r in resyncs}) == 2


def test_every_partition_is_checksummed_within_the_scrub_period():
    partitions = [(dt.date(2025, 1, 1) + dt.timedelta(days=k)).isoformat() for k in range(1000)]
    for every in (1, 3, 7):
        seen: list[str] = []
        for k in range(every):
            seen += scrub_slice(partitions, dt.date(2026, 11, 26) + dt.timedelta(days=k), every)
        assert sorted(seen) == partitions, every  # each exactly once per period


def test_repairs_are_grouped_into_runs_of_at_most_31_days():
    days = [(dt.date(2026, 1, 1) + dt.timedelta(days=k)).isoformat() for k in range(40)]
    days += ["2026-03-01", "2026-03-03"]
    assert _ranges(days) == [
        ("2026-01-01", "2026-01-31"),
        ("2026-02-01", "2026-02-09"),
        ("2026-03-01", "2026-03-01"),
        ("2026-03-03", "2026-03-03"),
    ]


def test_partitions_inside_the_full_sync_window_are_left_to_it(env):
    engine, resources = env
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    today = dt.datetime.now(dt.UTC)
    sql_rows(
        engine,
        "INSERT INTO tags (id, name, category, created_at) "
        "VALUES (gen_random_uuid(), 'fresh', 'custom', :t)",
        t=today,
    )
    with DagsterInstance.ephemeral() as instance:
        found = _by_table(sweep(instance, resources))
    assert _passed(found["tags"]), "today's partition is the daily full sync's, not a finding"


CHILD = """
import json, sys
from dagster import DagsterInstance
from voyce_assets.ingestion.reconciliation import raw_reconciliation_checksum_job
from voyce_assets.ingestion.resources import IngestionSettings
from voyce_assets.resources.app_db import EmbeddedAppDatabase
from voyce_assets.resources.lakehouse import Lakehouse

home, url, lake, config = sys.argv[1:]
raw_reconciliation_checksum_job.execute_in_process(
    run_config=json.loads(config),
    instance=DagsterInstance.local_temp(tempdir=home),
    resources={
        "app_db": EmbeddedAppDatabase(source_url=url, data_dir=home + "/unused"),
        "lakehouse": Lakehouse(catalog="c", root_uri=lake, volumes_root=lake + "-v"),
        "ingestion_settings": IngestionSettings(),
    },
)
"""


def test_a_checksum_run_killed_mid_way_resumes_where_it_stopped(env, tmp_path):
    engine, resources = env
    # A day big enough that its checksum is still running when the run is killed: the last
    # partition of the last table checked (the run goes through the tables by path).
    bulk_feedback(engine, DAYS[2], 300_000)
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    # Two differences the counts cannot see, one before the kill and one likely after.
    sql_rows(
        engine,
        "UPDATE feedback_tags SET confidence_score = 0.123 WHERE id = (SELECT id FROM "
        f"feedback_tags WHERE (created_at AT TIME ZONE 'UTC')::date = '{DAYS[1]}' "
        "ORDER BY id LIMIT 1)",
    )
    sql_rows(
        engine,
        "UPDATE voice_feedback SET status = 'failed' WHERE id = (SELECT id FROM voice_feedback "
        f"WHERE (created_at AT TIME ZONE 'UTC')::date = '{DAYS[2]}' ORDER BY id LIMIT 1)",
    )
    home = str(tmp_path / "dagster")
    os.makedirs(home)
    with DagsterInstance.local_temp(tempdir=home) as instance:
        tick = sweep(instance, resources, every_days=1)
        run, _ = _split(tick)
        day = run.run_config["ops"]["reconciliation_checksums"]["config"]["sweep_day"]
        expected = {
            (path, p)
            for path, keys in run.run_config["ops"]["reconciliation_checksums"]["config"][
                "partitions"
            ].items()
            for p in keys
        }
        assert len(expected) > 10
        lake = resources["lakehouse"]
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                home,
                resources["app_db"].source_url,
                lake.root_uri,
                json.dumps(run.run_config),
            ],
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        # Killed once it has recorded the small partitions of the last table: the big one
        # is being checksummed.
        deadline = time.monotonic() + 120
        while not checked_partitions(instance, "raw_data/voice_feedback", day):
            assert child.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
        before = _records(instance, day)
        first = {(path, p) for path, p, _, _ in before}
        assert first < expected and ("raw_data/voice_feedback", DAYS[2]) not in first

        # Requested again (or re-executed): only what is not recorded is checksummed.
        result = checksum_run(instance, resources, run)
        assert result.success
        records = _records(instance, day)
        later = [(path, p) for path, p, run_id, _ in records if run_id == result.run_id]
        assert sorted(later) == sorted(expected - first), "each partition checked once"
        assert {(path, p) for path, p, _, _ in records} == expected
        assert len(records) == len(expected)
        findings = {(path, p) for path, p, _, finding in records if finding}
        assert findings == {
            ("raw_data/feedback_tags", DAYS[1]),
            ("raw_data/voice_feedback", DAYS[2]),
        }
        # The summary covers the whole day, the killed run's records included.
        summary = _summaries(result)["voice_feedback"]
        assert list(summary["mismatched"].value) == [DAYS[2]]
        assert summary["partitions_checksummed"].value == len(DAYS)
        # The sensor turns each finding into one full sync, once.
        tick = sweep(instance, resources, cursor=tick.cursor, every_days=1)
        repairs = sorted(
            (r.asset_selection[0].path[-1], r.tags["dagster/asset_partition_range_start"])
            for r in _split(tick)[1]
        )
        assert repairs == [("feedback_tags", DAYS[1]), ("voice_feedback", DAYS[2])]
        assert not sweep(instance, resources, cursor=tick.cursor, every_days=1).run_requests


def test_a_checksum_run_with_nothing_left_reads_no_source_and_records_nothing(env):
    _, resources = env
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    with DagsterInstance.ephemeral() as instance:
        run, _ = _split(sweep(instance, resources, every_days=1))
        assert checksum_run(instance, resources, run).success
        day = run.run_config["ops"]["reconciliation_checksums"]["config"]["sweep_day"]
        records = _records(instance, day)
        # Everything recorded: a second run does not even connect to the app database.
        unreachable = EmbeddedAppDatabase(
            source_url="postgresql://nobody@127.0.0.1:9/none", data_dir="/nonexistent"
        )
        again = checksum_run(instance, {**resources, "app_db": unreachable}, run)
        assert again.success
        assert _records(instance, day) == records
        assert not _summaries(again)


def test_counts_over_the_tick_budget_are_left_to_the_checksum_run(env, monkeypatch):
    engine, resources = env
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    sql_rows(
        engine,
        "DELETE FROM voice_feedback WHERE id = (SELECT id FROM voice_feedback WHERE "
        f"(created_at AT TIME ZONE 'UTC')::date = '{DAYS[0]}' ORDER BY id LIMIT 1)",
    )
    monkeypatch.setattr(reconciliation, "SWEEP_BUDGET_SECONDS", 2.0)
    with DagsterInstance.ephemeral() as instance, engine.connect() as lock:
        # A count that cannot finish in the tick (here: it waits on a lock).
        lock.exec_driver_sql("LOCK TABLE voice_feedback IN ACCESS EXCLUSIVE MODE")
        cursor, run = None, None
        for _ in range(4):
            started = time.monotonic()
            tick = sweep(instance, resources, cursor=cursor, every_days=1)
            assert time.monotonic() - started < 10, "the tick kept to its budget"
            assert "voice_feedback" not in _by_table(tick)
            cursor, run = tick.cursor, run or _split(tick)[0]
        lock.rollback()
        work = run.run_config["ops"]["reconciliation_checksums"]["config"]
        assert work["count"] == ["raw_data/voice_feedback"]
        assert checksum_run(instance, resources, run).success
        [request] = _split(sweep(instance, resources, cursor=cursor, every_days=1))[1]
        assert request.asset_selection == [FEEDBACK]
        assert request.tags["dagster/asset_partition_range_start"] == DAYS[0]


def test_checksum_batches_hold_a_big_partition_alone():
    rows = {"2026-03-01": 10, "2026-03-02": 3_000_000, "2026-03-03": 10, "2026-03-04": 10}
    assert checksum_batches(sorted(rows), rows) == [
        ["2026-03-01"],
        ["2026-03-02"],
        ["2026-03-03", "2026-03-04"],
    ]


def test_a_tick_keeps_to_one_deadline_however_many_statements_a_table_takes(env, monkeypatch):
    """Each statement of a table's counts is slow (a row-level security policy that sleeps
    once per statement, for a reader that is not the owner): none alone outlasts the
    budget, together they would; the tick still ends at its deadline."""
    engine, resources = env
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    first = APP_TABLES[0].name  # the tick counts it first, with the whole budget
    role = f"slow_{uuid.uuid4().hex[:8]}"
    budget, pause = 2.0, 1.8
    sql_rows(engine, f"CREATE ROLE {role} LOGIN PASSWORD 'slow'")
    try:
        sql_rows(
            engine,
            f"GRANT USAGE ON SCHEMA public TO {role}; "
            f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}; "
            "CREATE FUNCTION slow_gate() RETURNS boolean LANGUAGE plpgsql AS "
            f"$$ BEGIN PERFORM pg_sleep({pause}); RETURN true; END $$; "
            f"ALTER TABLE {first} ENABLE ROW LEVEL SECURITY; "
            # A scalar subquery: evaluated once per statement that reads a row.
            f"CREATE POLICY slow ON {first} FOR SELECT TO {role} USING ((SELECT slow_gate()))",
        )
        # A row no partition holds: the count of such rows reads one too (a second
        # statement that sleeps).
        sql_rows(
            engine,
            f"CREATE TEMP TABLE odd AS SELECT * FROM {first} LIMIT 1; "
            "UPDATE odd SET id = gen_random_uuid(), created_at = '2000-01-01'; "
            f"INSERT INTO {first} SELECT * FROM odd",
        )
        url = sa.engine.make_url(resources["app_db"].source_url).set(username=role, password="slow")
        slow = EmbeddedAppDatabase(
            source_url=url.render_as_string(hide_password=False), data_dir="/nonexistent"
        )
        monkeypatch.setattr(reconciliation, "SWEEP_BUDGET_SECONDS", budget)
        with DagsterInstance.ephemeral() as instance:
            started = time.monotonic()
            tick = sweep(instance, {**resources, "app_db": slow}, every_days=1)
            took = time.monotonic() - started
        state = json.loads(tick.cursor)
        assert took < budget + 1.0, f"the tick took {took:.1f} s on a {budget} s budget"
        # Not counted in time: left to the checksum run, as a table too big for a tick.
        assert state["count_in_job"] == [APP_TABLES[0].path]
    finally:
        sql_rows(engine, f"DROP OWNED BY {role}")
        sql_rows(engine, f"DROP ROLE {role}")


def test_a_finding_committed_out_of_storage_id_order_is_still_requested_once(env):
    _, resources = env
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    key = MIRRORS["raw_data/voice_feedback"].key
    today = dt.datetime.now(dt.UTC).date().isoformat()

    def finding(day):
        instance.report_runless_asset_event(
            AssetObservation(
                asset_key=key,
                partition=day,
                metadata={
                    "sweep_day": today,
                    CHECKED: "checksum",
                    "finding": True,
                    "source_rows": 2,
                    "mirror_rows": 2,
                    "checksum_equal": False,
                },
            )
        )

    with DagsterInstance.ephemeral() as instance:
        tick = sweep(instance, resources, every_days=1)
        finding(DAYS[0])
        finding(DAYS[1])
        # The next tick ran when DAYS[1]'s record had committed and DAYS[0]'s (a lower
        # storage id) had not: a storage-id cursor is already past both.
        state = json.loads(tick.cursor)
        state["seen"] = instance.event_log_storage.get_maximum_record_id()
        later = sweep(instance, resources, cursor=json.dumps(state), every_days=1)
        repairs = _split(later)[1]
        starts = [r.tags["dagster/asset_partition_range_start"] for r in repairs]
        assert DAYS[0] in starts
        assert sorted(starts) == sorted(set(starts))
        # Looking back again next tick, nothing is requested twice.
        assert not _split(sweep(instance, resources, cursor=later.cursor, every_days=1))[1]


def test_a_failed_checksum_run_is_requested_again_at_most_three_times_a_day(env):
    _, resources = env
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    with DagsterInstance.ephemeral() as instance:
        tick = sweep(instance, resources, every_days=1)
        run, _ = _split(tick)
        cursor, keys = tick.cursor, [run.run_key]
        # A run that succeeds is not requested again.
        assert not sweep(instance, resources, cursor=cursor, every_days=1).run_requests
        for _ in range(4):
            failed = instance.create_run_for_job(
                raw_reconciliation_checksum_job,
                run_config=run.run_config,
                tags={**run.tags, "dagster/run_key": keys[-1]},
            )
            instance.report_run_failed(failed)
            tick = sweep(instance, resources, cursor=cursor, every_days=1)
            cursor = tick.cursor
            again, repairs = _split(tick)
            assert not repairs
            if again is None:
                break
            # The same day's work: the run resumes where the failed one stopped.
            assert again.run_config == run.run_config
            assert again.tags["voyce/ingestion"] == "sweep"
            keys.append(again.run_key)
            # Requested once per failure.
            assert not sweep(instance, resources, cursor=cursor, every_days=1).run_requests
        assert len(keys) == 3 == len(set(keys))
