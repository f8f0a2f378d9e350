"""The reconciliation sweep finds what CDC and the daily full sync cannot, and repairs it."""

import datetime as dt
import json

from dagster import AssetKey, DagsterInstance, materialize

from voyce_assets.catalog import table
from voyce_assets.ingestion.mirrors import build_mirror, raw_mirrors
from voyce_assets.ingestion.reconciliation import _ranges
from voyce_assets.ingestion.sweep import scrub_slice
from voyce_assets_tests.ingestion.conftest import (
    DAYS,
    QUICK_RETRY,
    RANGE,
    delta_rows,
    source_rows,
    sql_rows,
    sweep,
)

FEEDBACK = AssetKey(["raw_data", "voice_feedback"])


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


def _passed(metadata) -> bool:
    return metadata["passed"].value


def test_a_changed_row_with_equal_counts_is_found_by_its_checksum_and_repaired(env):
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
        found = _by_table(tick)
        assert not _passed(found["voice_feedback"])
        mismatch = found["voice_feedback"]["mismatched"].value
        assert mismatch == {
            DAYS[0]: {
                "source_rows": len(source_rows(engine, "raw_data/voice_feedback", DAYS[0])),
                "mirror_rows": len(source_rows(engine, "raw_data/voice_feedback", DAYS[0])),
                "checksum_equal": False,
            }
        }
        assert all(_passed(m) for name, m in found.items() if name != "voice_feedback")
        assert found["voice_feedback"]["partitions_checksummed"].value == len(DAYS)
        [request] = tick.run_requests
        assert request.asset_selection == [FEEDBACK]
        assert (
            request.tags["dagster/asset_partition_range_start"],
            request.tags["dagster/asset_partition_range_end"],
        ) == (DAYS[0], DAYS[0])
        # The same day's tick again: the day is swept, nothing requested twice.
        again = sweep(instance, resources, cursor=tick.cursor, every_days=1)
        assert not again.run_requests and not again.asset_events

        assert _run(resources, request).success
        mirrored = delta_rows(resources, "raw_data/voice_feedback", DAYS[0]).to_pylist()
        assert next(r["status"] for r in mirrored if r["id"] == changed) == "failed"
        after = sweep(instance, resources, cursor=_next_day(tick.cursor), every_days=1)
        found = _by_table(after)
        assert all(_passed(m) for m in found.values()) and not after.run_requests
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
        [request] = tick.run_requests
        assert request.asset_selection == [AssetKey(["raw_data", "feedback_tags"])]
        # The same finding tomorrow, if it could not be repaired: the same run key.
        tomorrow = sweep(instance, resources, cursor=_next_day(tick.cursor))
        assert [r.run_key for r in tomorrow.run_requests] == [request.run_key]
        assert request.run_key.startswith("sweep:") and DAYS[0] in request.run_key
        assert _run(resources, request).success
        after = _by_table(sweep(instance, resources, cursor=_next_day(tick.cursor)))
        assert all(_passed(m) for m in after.values())
    assert sorted(
        r["id"] for r in delta_rows(resources, "raw_data/feedback_tags", DAYS[0]).to_pylist()
    ) == sorted(str(r[0]) for r in source_rows(engine, "raw_data/feedback_tags", DAYS[0]))


def test_a_failed_incremental_run_is_requested_again_as_a_full_sync(env):
    _, resources = env
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    feedback = build_mirror(table("raw_data/voice_feedback"), retry_policy=QUICK_RETRY)
    with DagsterInstance.ephemeral() as instance:
        first = sweep(instance, resources)
        failed = materialize(
            [feedback],
            resources=resources,
            partition_key=DAYS[1],
            instance=instance,
            tags={"voyce/sync_mode": "incremental", "voyce/tables": "raw_data/voice_feedback"},
            run_config={
                "ops": {
                    "raw_data__voice_feedback": {
                        "config": {
                            "mode": "incremental",
                            "since_ts": "2026-03-01T00:00:00+00:00",
                            "since_id": "00000000-0000-0000-0000-000000000000",
                            "pg_schema": "no_such_schema",
                        }
                    }
                }
            },
            raise_on_error=False,
        )
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
