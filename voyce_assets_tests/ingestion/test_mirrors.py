"""The raw layer against real PostgreSQL and real Delta: full syncs, merges, checks, bad input."""

import datetime as dt
import threading
import time
import uuid

import pytest
import sqlalchemy as sa
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    RetryPolicy,
    build_schedule_context,
    build_sensor_context,
    materialize,
)
from dagster._core.definitions.backfill_policy import BackfillPolicyType
from deltalake import DeltaTable

from voyce_assets.catalog import APP_TABLES, table
from voyce_assets.demo.seed import generate, load_rows
from voyce_assets.ingestion.big_sync import LocalSparkSync
from voyce_assets.ingestion.cdc import find_changes
from voyce_assets.ingestion.mirrors import build_mirror, raw_mirrors
from voyce_assets.ingestion.resources import IngestionSettings
from voyce_assets.ingestion.schedules import raw_daily_full_sync
from voyce_assets.ingestion.sensors import raw_cdc_sensor
from voyce_assets.ingestion.sync import Cursor
from voyce_assets.resources.app_db import EmbeddedAppDatabase, sqlalchemy_url
from voyce_assets.resources.lakehouse import Lakehouse
from voyce_assets.resources.pricing import Pricing
from voyce_assets_tests.ingestion.conftest import (
    CONFIG,
    DAYS,
    QUICK_RETRY,
    RANGE,
    bulk_feedback,
    checks_by_name,
    delta_rows,
    materializations,
    source_rows,
    sql_rows,
)


def _preview_column(markdown: str, column: str) -> set[str]:
    """The values of one column of a markdown preview table."""
    header, _, *rows = markdown.strip().splitlines()
    index = [c.strip() for c in header.strip("|").split("|")].index(column)
    return {row.strip("|").split("|")[index].strip() for row in rows}


def test_full_sync_mirrors_every_table_exactly_and_is_idempotent(env):
    engine, resources = env
    result = materialize(raw_mirrors, resources=resources, tags=RANGE)
    assert result.success
    checks = checks_by_name(result)
    assert len(checks) == 30 and all(c.passed for c in checks.values()), [
        k for k, c in checks.items() if not c.passed
    ]
    for spec in APP_TABLES:
        for day in DAYS:
            source = source_rows(engine, spec.path, day)
            mirror = delta_rows(resources, spec.path, day)
            assert mirror.num_rows == len(source), (spec.path, day)
            ids = {str(r[0]) for r in source}
            assert set(mirror.column(spec.primary_key[0]).to_pylist()) == ids
    # Values survive exactly: JSON text, timestamps with time zone, booleans, NULLs.
    vf = delta_rows(resources, "raw_data/voice_feedback").to_pylist()
    row = next(r for r in vf if r["metadata"])
    src = sql_rows(
        engine,
        "SELECT metadata::text, created_at, user_id::text FROM voice_feedback WHERE id = :i",
        i=row["id"],
    )[0]
    assert row["metadata"] == src[0] and row["created_at"] == src[1] and row["user_id"] == src[2]
    assert row["event_date"] == src[1].astimezone(dt.UTC).date()

    # A run over three partitions records each partition's own numbers, never the range's.
    mats = materializations(result, "voice_feedback")
    assert sorted(m.partition for m in mats) == DAYS
    for mat in mats:
        day_rows = len(source_rows(engine, "raw_data/voice_feedback", mat.partition))
        meta = mat.metadata
        assert meta["dagster/partition_row_count"].value == day_rows == CONFIG.per_day
        assert meta["rows_synced"].value == day_rows
        assert meta["bytes"].value > 0
        assert _preview_column(meta["preview"].value, "event_date") == {mat.partition}
        costs = meta["cost_rows"].value
        assert {r["metadata"]["partition"] for r in costs} == {mat.partition}
        ingestion = [r for r in costs if r["resource_type"] == "ingestion"]
        assert sum(r["quantity"] for r in ingestion) == day_rows
        orgs = {r["organization_id"] for r in ingestion}
        assert None not in orgs and len(orgs) >= 2
        assert all(r["unit_cost"] == "0.000100" for r in ingestion)
        # The whole table's size, after the run, is the same fact on every partition.
        assert meta["dagster/row_count"].value == CONFIG.days * CONFIG.per_day
        assert meta["source_query_seconds"].value >= 0
    assert len({r["id"] for m in mats for r in m.metadata["cost_rows"].value}) == sum(
        len(m.metadata["cost_rows"].value) for m in mats
    ), "cost rows of different partitions never share an id"
    users_preview = materializations(result, "users")[0].metadata["preview"].value
    assert "***" in users_preview and "@" not in users_preview, "personal data is masked"
    tag_costs = [
        r
        for m in materializations(result, "tags")
        for r in m.metadata["cost_rows"].value
        if r["resource_type"] == "ingestion"
    ]
    assert {r["organization_id"] for r in tag_costs} == {None}

    versions = {
        s.path: DeltaTable(resources["lakehouse"].table_uri(s)).version() for s in APP_TABLES
    }
    again = materialize(raw_mirrors, resources=resources, tags=RANGE)
    assert again.success
    for spec in APP_TABLES:
        assert delta_rows(resources, spec.path).num_rows == sum(
            len(source_rows(engine, spec.path, d)) for d in DAYS
        )
        # One commit per run: the replacement is atomic.
        assert (
            DeltaTable(resources["lakehouse"].table_uri(spec)).version() == versions[spec.path] + 1
        )


def test_full_sync_reflects_deletes_and_updates_only_in_its_partition(env):
    engine, resources = env
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    victim, changed = sql_rows(
        engine,
        f"SELECT id::text FROM voice_feedback WHERE (created_at AT TIME ZONE 'UTC')::date = '{DAYS[1]}' ORDER BY id LIMIT 2",
    )
    sql_rows(engine, "DELETE FROM voice_feedback WHERE id = :i", i=victim[0])
    sql_rows(
        engine,
        "UPDATE voice_feedback SET status = 'failed', updated_at = now() WHERE id = :i",
        i=changed[0],
    )
    before_other = delta_rows(resources, "raw_data/voice_feedback", DAYS[0]).sort_by("id")
    result = materialize(raw_mirrors, resources=resources, partition_key=DAYS[1])
    assert result.success and all(c.passed for c in checks_by_name(result).values())
    day = delta_rows(resources, "raw_data/voice_feedback", DAYS[1])
    assert victim[0] not in day.column("id").to_pylist()
    assert (
        dict(zip(day.column("id").to_pylist(), day.column("status").to_pylist(), strict=True))[
            changed[0]
        ]
        == "failed"
    )
    # Cascaded deletes in child tables are mirrored too.
    tags = delta_rows(resources, "raw_data/feedback_tags").column("voice_feedback_id").to_pylist()
    assert victim[0] not in tags
    assert (
        delta_rows(resources, "raw_data/voice_feedback", DAYS[0]).sort_by("id").equals(before_other)
    )


def test_cdc_sensor_and_incremental_merge(env):
    engine, resources = env
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    with DagsterInstance.ephemeral() as instance:
        first = raw_cdc_sensor(build_sensor_context(instance=instance, resources=resources))
        assert not first.run_requests and first.cursor
        # Two ticks in a row with no change: no run requested, cursor unchanged.
        for _ in range(2):
            tick = raw_cdc_sensor(
                build_sensor_context(cursor=first.cursor, instance=instance, resources=resources)
            )
            assert not tick.run_requests and tick.cursor == first.cursor

        # An update to a feedback created days ago, and a new tag on the last day.
        old_id = sql_rows(
            engine,
            f"SELECT id::text FROM voice_feedback WHERE (created_at AT TIME ZONE 'UTC')::date = '{DAYS[0]}' LIMIT 1",
        )[0][0]
        sql_rows(
            engine,
            "UPDATE voice_feedback SET status = 'failed', updated_at = now() WHERE id = :i",
            i=old_id,
        )
        tag_id = str(uuid.uuid4())
        sql_rows(
            engine,
            "INSERT INTO tags (id, name, category, created_at) VALUES (:i, 'refund', 'custom', :t)",
            i=tag_id,
            t=dt.datetime.fromisoformat(DAYS[2] + "T12:00:00+00:00") + dt.timedelta(days=30),
        )
        # The tag (stamped a while ago) is requested now; the update stamped just now waits
        # for a later tick (VOYCE_CDC_LAG_SECONDS), so a late commit stays ahead of the cursor.
        early = raw_cdc_sensor(
            build_sensor_context(cursor=first.cursor, instance=instance, resources=resources)
        )
        assert [r.asset_selection for r in early.run_requests] == [[AssetKey(["raw_data", "tags"])]]
        resources = {**resources, "ingestion_settings": IngestionSettings(cdc_lag_seconds=0)}
        tick = raw_cdc_sensor(
            build_sensor_context(cursor=early.cursor, instance=instance, resources=resources)
        )
        requests = {r.partition_key: r for r in tick.run_requests}
        assert list(requests) == [DAYS[0]], "the older partition of the updated row is re-synced"
        request = requests[DAYS[0]]
        assert request.asset_selection == [AssetKey(["raw_data", "voice_feedback"])]
        assert request.tags["voyce/sync_mode"] == "incremental"
        assert request.tags["voyce/tables"] == "raw_data/voice_feedback"
        repeat = raw_cdc_sensor(
            build_sensor_context(cursor=early.cursor, instance=instance, resources=resources)
        )
        assert [r.run_key for r in repeat.run_requests] == [r.run_key for r in tick.run_requests]

        before = delta_rows(resources, "raw_data/voice_feedback", DAYS[0]).num_rows
        run = materialize(
            [a for a in raw_mirrors if a.key == AssetKey(["raw_data", "voice_feedback"])],
            resources=resources,
            partition_key=DAYS[0],
            run_config=request.run_config,
        )
        assert run.success
        meta = materializations(run, "voice_feedback")[0].metadata
        assert meta["sync_mode"].value == "incremental" and meta["rows_synced"].value == 1
        assert meta["merge"].value["num_target_rows_updated"] == 1
        assert all(c.passed for c in checks_by_name(run).values())
        day = delta_rows(resources, "raw_data/voice_feedback", DAYS[0])
        assert day.num_rows == before
        assert (
            dict(zip(day.column("id").to_pylist(), day.column("status").to_pylist(), strict=True))[
                old_id
            ]
            == "failed"
        )

        after = raw_cdc_sensor(
            build_sensor_context(cursor=tick.cursor, instance=instance, resources=resources)
        )
        assert not after.run_requests, "the cursor moved past what was requested"


def test_cursor_tie_breaking_never_skips_rows_sharing_a_timestamp(env):
    engine, resources = env
    stamp = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
    ids = sorted(str(uuid.uuid4()) for _ in range(3))
    for i in ids:
        sql_rows(
            engine,
            "INSERT INTO tags (id, name, category, created_at) VALUES (:i, 'x', 'custom', :t)",
            i=i,
            t=stamp,
        )
    with resources["app_db"].connect() as conn:
        changes = find_changes(conn, table("raw_data/tags"), Cursor(stamp.isoformat(), ids[0]))
    assert changes.rows == 2 and changes.high_water == Cursor(stamp.isoformat(), ids[2])


def test_null_primary_key_and_duplicate_ids_fail_the_checks(env):
    engine, resources = env
    # A source without the app's constraints (a broken replica, a view): the checks must notice.
    sql_rows(
        engine,
        "CREATE SCHEMA loose; CREATE TABLE loose.voice_feedback AS SELECT * FROM voice_feedback",
    )
    dup = sql_rows(
        engine,
        f"SELECT id::text FROM voice_feedback WHERE (created_at AT TIME ZONE 'UTC')::date = '{DAYS[1]}' LIMIT 1",
    )[0][0]
    sql_rows(
        engine, "INSERT INTO loose.voice_feedback SELECT * FROM voice_feedback WHERE id = :i", i=dup
    )
    sql_rows(
        engine,
        "INSERT INTO loose.voice_feedback SELECT NULL, organization_id, user_id, 'orphan.wav', audio_duration_seconds, "
        "audio_format, file_size_bytes, upload_source, metadata, status, created_at, updated_at FROM voice_feedback WHERE id = :i",
        i=dup,
    )
    asset = build_mirror(table("raw_data/voice_feedback"), retry_policy=QUICK_RETRY)
    result = materialize(
        [asset],
        resources=resources,
        partition_key=DAYS[1],
        run_config={"ops": {"raw_data__voice_feedback": {"config": {"pg_schema": "loose"}}}},
        raise_on_error=False,
    )
    checks = checks_by_name(result)
    pk = checks[("voice_feedback", "primary_key")]
    assert not pk.passed
    assert pk.metadata["duplicate_ids"].value == [dup]
    assert pk.metadata["null_keys"].value == 1
    assert pk.metadata["rows_with_null_key"].value[0]["audio_file_path"] == "orphan.wav"
    # The repeated id is mirrored once (the rule drops the other copy in the source's count
    # too); the row without a key is held back, so the partition's counts differ by it.
    assert pk.metadata["rows_dropped"].value == 1
    ids = delta_rows(resources, "raw_data/voice_feedback", DAYS[1])["id"].to_pylist()
    assert ids.count(dup) == 1 and None not in ids
    recon = checks[("voice_feedback", "reconciliation")]
    mismatch = recon.metadata["mismatched_partitions"].value[DAYS[1]]
    assert not recon.passed and (mismatch["source_rows"], mismatch["mirror_rows"]) == (7, 6)
    assert checks[("voice_feedback", "required_columns")].passed


def test_schema_drift(env):
    engine, resources = env
    sql_rows(engine, "CREATE SCHEMA drift; CREATE TABLE drift.users AS SELECT * FROM users")
    sql_rows(
        engine,
        "ALTER TABLE drift.users ADD COLUMN nickname text; ALTER TABLE drift.users DROP COLUMN department",
    )
    users = build_mirror(table("raw_data/users"), retry_policy=QUICK_RETRY)
    config = {"ops": {"raw_data__users": {"config": {"pg_schema": "drift"}}}}
    result = materialize([users], resources=resources, partition_key=DAYS[0], run_config=config)
    assert result.success
    drift = checks_by_name(result)[("users", "schema_drift")]
    assert not drift.passed and drift.severity.value == "WARN"
    assert drift.metadata["new_source_columns"].value == ["nickname"]
    assert drift.metadata["missing_nullable_columns"].value == ["department"]
    assert checks_by_name(result)[("users", "reconciliation")].passed
    assert set(delta_rows(resources, "raw_data/users").column("department").to_pylist()) == {None}

    # An app that keeps roles in a PostgreSQL enum mirrors just the same.
    sql_rows(engine, "CREATE TYPE drift.role AS ENUM ('admin', 'manager', 'member', 'viewer')")
    sql_rows(
        engine, "ALTER TABLE drift.users ALTER COLUMN role TYPE drift.role USING role::drift.role"
    )
    again = materialize([users], resources=resources, partition_key=DAYS[0], run_config=config)
    assert again.success and checks_by_name(again)[("users", "reconciliation")].passed

    sql_rows(
        engine, "CREATE SCHEMA bad; CREATE TABLE bad.voice_feedback AS SELECT * FROM voice_feedback"
    )
    sql_rows(engine, "ALTER TABLE bad.voice_feedback ALTER COLUMN file_size_bytes TYPE text")
    feedback = build_mirror(table("raw_data/voice_feedback"), retry_policy=QUICK_RETRY)
    bad = {"ops": {"raw_data__voice_feedback": {"config": {"pg_schema": "bad"}}}}
    failed = materialize(
        [feedback], resources=resources, partition_key=DAYS[0], run_config=bad, raise_on_error=False
    )
    assert not failed.success
    message = failed.failure_data_for_node("raw_data__voice_feedback").error.to_string()
    assert "raw_data/voice_feedback: column file_size_bytes changed type to text" in message

    sql_rows(
        engine,
        "ALTER TABLE bad.voice_feedback ALTER COLUMN file_size_bytes TYPE bigint USING file_size_bytes::bigint",
    )
    sql_rows(engine, "ALTER TABLE bad.voice_feedback DROP COLUMN status")
    failed = materialize(
        [feedback], resources=resources, partition_key=DAYS[0], run_config=bad, raise_on_error=False
    )
    message = failed.failure_data_for_node("raw_data__voice_feedback").error.to_string()
    assert "raw_data/voice_feedback: required column status is missing in the app DB" in message


def test_unreachable_database_fails_clearly_and_leaves_the_partition(env, tmp_path):
    _, resources = env
    assert materialize(raw_mirrors, resources=resources, partition_key=DAYS[0]).success
    before = delta_rows(resources, "raw_data/users")
    broken = {
        **resources,
        "app_db": EmbeddedAppDatabase(
            source_url="postgresql://u:pw@127.0.0.1:9/voyce", data_dir=str(tmp_path)
        ),
    }
    users = build_mirror(table("raw_data/users"), retry_policy=QUICK_RETRY)
    result = materialize([users], resources=broken, partition_key=DAYS[0], raise_on_error=False)
    assert not result.success
    events = [e.event_type for e in result.all_events]
    assert DagsterEventType.STEP_UP_FOR_RETRY in events
    message = result.failure_data_for_node("raw_data__users").error.to_string()
    assert "VOYCE_SOURCE_URL: cannot connect to postgresql://u:***@127.0.0.1:9/voyce" in message
    assert "pw@" not in message
    assert delta_rows(resources, "raw_data/users").equals(before)


def test_connection_lost_mid_sync_is_retried_and_never_half_written(env):
    engine, resources = env
    assert materialize(raw_mirrors, resources=resources, partition_key=DAYS[2]).success
    # Enough rows that COPY runs long enough to be cut off while streaming.
    bulk_feedback(engine, DAYS[2], 60000)
    version = DeltaTable(
        resources["lakehouse"].table_uri(table("raw_data/voice_feedback"))
    ).version()
    killed = []

    def kill_copy():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            rows = sql_rows(
                engine,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'COPY (SELECT%' AND datname = current_database() "
                "AND pid <> pg_backend_pid()",  # the text is cut at 1 kB: no table name
            )
            if rows:
                killed.append(True)
            time.sleep(0.005)

    killer = threading.Thread(target=kill_copy)
    killer.start()
    asset = build_mirror(table("raw_data/voice_feedback"), retry_policy=QUICK_RETRY)
    result = materialize([asset], resources=resources, partition_key=DAYS[2], raise_on_error=False)
    killer.join()
    assert killed, "the COPY was never seen running"
    events = [e.event_type for e in result.all_events]
    assert DagsterEventType.STEP_UP_FOR_RETRY in events
    assert result.success, "the retry succeeds"
    # Exactly one new commit: the failed attempt left nothing behind.
    dt_ = DeltaTable(resources["lakehouse"].table_uri(table("raw_data/voice_feedback")))
    assert dt_.version() == version + 1
    assert delta_rows(resources, "raw_data/voice_feedback", DAYS[2]).num_rows == len(
        source_rows(engine, "raw_data/voice_feedback", DAYS[2])
    )
    assert all(c.passed for c in checks_by_name(result).values())


def test_daily_schedule_and_backfill_policy(env):
    _, resources = env
    for asset in raw_mirrors:
        assert asset.backfill_policy.policy_type == BackfillPolicyType.MULTI_RUN
        assert asset.backfill_policy.max_partitions_per_run >= 30  # a 30-day backfill: one run
        assert asset.op.retry_policy.max_retries == 3
    context = build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 3, 3, 1, 30, tzinfo=dt.UTC),
        resources={"ingestion_settings": IngestionSettings(full_sync_days=3)},
    )
    request = raw_daily_full_sync(context)
    assert request.run_key == "full-sync:2026-03-03"
    assert request.tags["dagster/asset_partition_range_start"] == "2026-03-01"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-03-03"
    result = materialize(raw_mirrors, resources=resources, tags=request.tags)
    assert result.success and all(c.passed for c in checks_by_name(result).values())


def test_prices_come_from_the_price_table(env):
    _, resources = env
    pricier = {**resources, "pricing": Pricing(prices={"ingestion.record": 0.0002})}
    tags = build_mirror(table("raw_data/tags"))
    result = materialize([tags], resources=pricier, partition_key=DAYS[0])
    rows = materializations(result, "tags")[0].metadata["cost_rows"].value
    ingestion = next(r for r in rows if r["resource_type"] == "ingestion")
    assert ingestion["unit_cost"] == "0.000200" and ingestion["total_cost"] == "0.002400"
    assert ingestion["quantity"] == 12 and ingestion["currency"] == "USD"


def test_postgres_restarted_mid_sync_is_retried(tmp_path):
    """A real server restart while COPY streams: the attempt fails, the retry syncs cleanly."""

    from voyce_assets.resources.app_db import (
        ensure_embedded_server,
        libpq_url,
        stop_embedded_server,
        temporary_embedded_server,
    )

    with temporary_embedded_server("vr") as (data_dir, server_url):
        url = libpq_url(server_url, show_password=True)
        engine = sa.create_engine(sqlalchemy_url(url))
        load_rows(engine, generate(CONFIG))
        bulk_feedback(engine, DAYS[2], 40000)
        expected = len(source_rows(engine, "raw_data/voice_feedback", DAYS[2]))
        engine.dispose()
        resources = {
            "app_db": EmbeddedAppDatabase(source_url=url, data_dir=str(tmp_path / "unused")),
            "lakehouse": Lakehouse(
                catalog="c", root_uri=str(tmp_path / "lake"), volumes_root=str(tmp_path / "v")
            ),
            "pricing": Pricing(),
            "big_sync": LocalSparkSync(),
        }
        restarted = []

        def restart_during_copy():
            watcher = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with watcher.connect() as conn:
                    active = conn.execute(
                        sa.text(
                            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY (SELECT%'"
                        )
                    ).scalar()
                if active:
                    stop_embedded_server(data_dir)
                    ensure_embedded_server(data_dir)
                    restarted.append(True)
                    return
                time.sleep(0.005)

        thread = threading.Thread(target=restart_during_copy)
        thread.start()
        asset = build_mirror(
            table("raw_data/voice_feedback"), retry_policy=RetryPolicy(max_retries=3, delay=1)
        )
        result = materialize(
            [asset], resources=resources, partition_key=DAYS[2], raise_on_error=False
        )
        thread.join()
        assert restarted, "the COPY was never seen running"
        assert DagsterEventType.STEP_UP_FOR_RETRY in [e.event_type for e in result.all_events]
        assert result.success
        assert delta_rows(resources, "raw_data/voice_feedback", DAYS[2]).num_rows == expected
        assert (
            DeltaTable(resources["lakehouse"].table_uri(table("raw_data/voice_feedback"))).version()
            == 1
        )


def test_sensor_sees_the_first_rows_of_a_table_empty_at_its_first_tick(env):
    engine, resources = env
    resources = {**resources, "ingestion_settings": IngestionSettings(cdc_lag_seconds=0)}
    sql_rows(engine, "DELETE FROM action_items")
    with DagsterInstance.ephemeral() as instance:
        first = raw_cdc_sensor(build_sensor_context(instance=instance, resources=resources))
        assert not first.run_requests
        fid = sql_rows(
            engine,
            f"SELECT id::text FROM voice_feedback WHERE (created_at AT TIME ZONE 'UTC')::date = '{DAYS[1]}' LIMIT 1",
        )[0][0]
        sql_rows(
            engine,
            "INSERT INTO action_items (id, voice_feedback_id, description, priority, status, created_at, updated_at) "
            "VALUES (gen_random_uuid(), :f, 'call back', 'high', 'open', :t, :t)",
            f=fid,
            t=dt.datetime.fromisoformat(DAYS[1] + "T20:00:00+00:00"),
        )
        tick = raw_cdc_sensor(
            build_sensor_context(cursor=first.cursor, instance=instance, resources=resources)
        )
        assert [(r.partition_key, r.asset_selection) for r in tick.run_requests] == [
            (DAYS[1], [AssetKey(["raw_data", "action_items"])])
        ]


def test_values_that_look_like_null_stay_values(env):
    engine, resources = env
    sql_rows(engine, "UPDATE tags SET description = 'N/A' WHERE name = 'praise'")
    sql_rows(engine, "UPDATE tags SET description = 'null' WHERE name = 'complaint'")
    sql_rows(engine, "UPDATE tags SET description = 'NaN' WHERE name = 'urgent'")
    sql_rows(engine, "UPDATE tags SET description = '' WHERE name = 'mobile'")
    sql_rows(
        engine,
        "UPDATE voice_feedback SET audio_duration_seconds = 'NaN' "
        "WHERE id = (SELECT id FROM voice_feedback LIMIT 1)",
    )
    result = materialize(raw_mirrors, resources=resources, tags=RANGE)
    assert result.success and all(c.passed for c in checks_by_name(result).values())
    tags = {r["name"]: r["description"] for r in delta_rows(resources, "raw_data/tags").to_pylist()}
    assert (tags["praise"], tags["complaint"], tags["urgent"], tags["mobile"]) == (
        "N/A",
        "null",
        "NaN",
        "",
    )
    durations = (
        delta_rows(resources, "raw_data/voice_feedback")
        .column("audio_duration_seconds")
        .to_pylist()
    )
    assert any(d != d for d in durations if d is not None), "NaN is kept, not turned into NULL"


def test_checksums_reconcile_every_source_type_the_mirror_accepts(env):
    """A source whose columns use the other types the spec accepts (padded character(n),
    varchar, an enum, json, numeric, integer): equal content gives equal checksums."""
    engine, resources = env
    sql_rows(
        engine,
        "CREATE SCHEMA alt; CREATE TYPE alt.source AS ENUM ('ios', 'android', 'web', 'api');"
        "CREATE TABLE alt.voice_feedback (id uuid, organization_id uuid, user_id uuid, "
        "audio_file_path character(160), audio_duration_seconds numeric, "
        "audio_format varchar(8), file_size_bytes integer, upload_source alt.source, "
        "metadata json, status character(12), created_at timestamptz, updated_at timestamptz);"
        "INSERT INTO alt.voice_feedback SELECT id, organization_id, user_id, audio_file_path, "
        "audio_duration_seconds::numeric(12, 3), audio_format, file_size_bytes::integer, "
        "upload_source::alt.source, metadata::json, status, created_at, updated_at "
        "FROM voice_feedback",
    )
    asset = build_mirror(table("raw_data/voice_feedback"), retry_policy=QUICK_RETRY)
    result = materialize(
        [asset],
        resources=resources,
        tags=RANGE,
        run_config={"ops": {"raw_data__voice_feedback": {"config": {"pg_schema": "alt"}}}},
        raise_on_error=False,
    )
    reconciliation = checks_by_name(result)[("voice_feedback", "reconciliation")]
    assert reconciliation.passed, reconciliation.metadata["mismatched_partitions"].value
    assert result.success
    # The mirror holds what a client of the app database reads: the padded value.
    path, status = sql_rows(
        engine, "SELECT audio_file_path, status FROM alt.voice_feedback ORDER BY id LIMIT 1"
    )[0]
    mirrored = delta_rows(resources, "raw_data/voice_feedback").sort_by("id").to_pylist()[0]
    assert (mirrored["audio_file_path"], mirrored["status"]) == (path, status)
    assert len(mirrored["audio_file_path"]) == 160


def test_source_checksums_read_the_same_snapshot_as_the_copy(env):
    """The rows stream on a second connection while PostgreSQL checksums them on the first:
    both must see the first one's snapshot, not a change committed after it was taken."""
    from voyce_assets.ingestion.sync import sync_table

    engine, resources = env
    spec = table("raw_data/voice_feedback")
    day = dt.date.fromisoformat(DAYS[1])
    uri = resources["lakehouse"].ensure_table(spec)
    before = source_rows(engine, "raw_data/voice_feedback", DAYS[1])
    with resources["app_db"].connect() as conn:
        conn.execute("SELECT 1")  # REPEATABLE READ: the snapshot is taken here
        sql_rows(
            engine,
            "UPDATE voice_feedback SET status = 'failed' "
            "WHERE (created_at AT TIME ZONE 'UTC')::date = :d",
            d=day,
        )
        result = sync_table(conn, spec, uri, [day])
    assert not result.mismatched, result.mismatched
    assert result.source_counts[DAYS[1]][0] == len(before)
    statuses = set(delta_rows(resources, "raw_data/voice_feedback", DAYS[1])["status"].to_pylist())
    assert statuses == {r[9] for r in before} != {"failed"}


def test_key_hashes_flag_only_repeated_keys():
    """Keys are compared by hash while they stream; only a repeat sends the sync to read the
    keys back (test_null_primary_key_and_duplicate_ids_fail_the_checks: the ids it reports)."""
    import numpy as np
    import pyarrow as pa

    from voyce_assets.ingestion.checksum import key_hashes
    from voyce_assets.ingestion.sync import _may_repeat

    ids = [str(uuid.uuid4()) for _ in range(1000)]
    unique = pa.array(ids)
    assert not _may_repeat([key_hashes(unique.slice(0, 400)), key_hashes(unique.slice(400))])
    # A repeat across batches, of one width or of several (FNV-1a either way), or integers.
    assert _may_repeat([key_hashes(unique.slice(0, 400)), key_hashes(pa.array([ids[7]]))])
    assert _may_repeat([key_hashes(pa.array(["a", "bb"])), key_hashes(pa.array(["bb"]))])
    assert _may_repeat([key_hashes(pa.array([3, 9])), key_hashes(pa.array([9]))])
    # Keys of one width (a byte matrix) hash as they do among keys of several widths.
    one_width = key_hashes(unique.slice(3, 5))
    assert (one_width == key_hashes(pa.array([*ids[3:8], "x"]))[:5]).all()
    assert not _may_repeat([np.array([1, 2], np.int64)]) and not _may_repeat([])


def _fenced_reader(engine, pg_database, guard: str, connection_limit: int = -1):
    """A login role (no superuser: row-level security applies to it) whose reads of
    voice_feedback run ``guard`` (PL/pgSQL) on every row of PostgreSQL's checksum query only
    (the one query computing md5), and its libpq URL."""
    from sqlalchemy.engine import make_url

    role = f"r_{uuid.uuid4().hex[:10]}"
    sql_rows(
        engine,
        f"CREATE ROLE {role} LOGIN CONNECTION LIMIT {connection_limit}; "
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}; "
        "CREATE FUNCTION checksum_guard() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$ "
        f"BEGIN IF current_query() LIKE '%md5(%' THEN {guard} END IF; RETURN true; END $$; "
        "ALTER TABLE voice_feedback ENABLE ROW LEVEL SECURITY; "
        f"CREATE POLICY guard ON voice_feedback FOR SELECT TO {role} USING (checksum_guard())",
    )
    url = make_url(pg_database.replace("postgresql://", "postgresql+psycopg://", 1))
    return role, url.set(username=role, password=None).render_as_string(False).replace(
        "postgresql+psycopg://", "postgresql://", 1
    )


def _snapshot_conn(url):
    import psycopg

    conn = psycopg.connect(url)
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    return conn


def _drop_role(engine, role):
    sql_rows(engine, f"DROP OWNED BY {role}; DROP ROLE {role}")


def test_a_failed_checksum_query_is_the_error_not_the_snapshot_it_aborted(env, pg_database):
    """PostgreSQL's checksum query runs on the connection whose snapshot the stream imports:
    failing first, it aborts that transaction. The sync's error is the query's own, not the
    stream's "could not import the requested snapshot"."""
    from voyce_assets.ingestion.sync import sync_table

    engine, resources = env
    spec = table("raw_data/voice_feedback")
    role, url = _fenced_reader(
        engine, pg_database, "RAISE EXCEPTION 'checksum guard refused the row';"
    )
    try:
        uri = resources["lakehouse"].ensure_table(spec)
        with _snapshot_conn(url) as conn, pytest.raises(Exception) as failed:
            sync_table(conn, spec, uri, [dt.date.fromisoformat(DAYS[1])])
    finally:
        _drop_role(engine, role)
    assert "checksum guard refused the row" in str(failed.value), repr(failed.value)
    assert "checksum guard refused the row" in str(failed.value.__cause__)


def test_a_stream_that_cannot_open_does_not_wait_for_the_checksum_query(env, pg_database):
    """The stream's connection is refused (the role may hold one connection) while
    PostgreSQL's checksum query would run for many seconds: the sync fails at once, with the
    stream's error, the query canceled."""
    import psycopg

    from voyce_assets.ingestion.sync import sync_table

    engine, resources = env
    spec = table("raw_data/voice_feedback")
    role, url = _fenced_reader(engine, pg_database, "PERFORM pg_sleep(2);", connection_limit=1)
    try:
        uri = resources["lakehouse"].ensure_table(spec)
        with _snapshot_conn(url) as conn:
            started = time.perf_counter()
            with pytest.raises(Exception) as failed:
                sync_table(conn, spec, uri, [dt.date.fromisoformat(DAYS[1])])
            seconds = time.perf_counter() - started
            conn.rollback()
            # The query was canceled, not left running on the server.
            running = sql_rows(
                engine,
                "SELECT count(*) FROM pg_stat_activity WHERE usename = :r AND state = 'active'",
                r=role,
            )[0][0]
    finally:
        _drop_role(engine, role)
    assert "too many connections" in str(failed.value), repr(failed.value)
    assert not isinstance(failed.value, psycopg.errors.QueryCanceled)
    assert seconds < 6, seconds  # the checksum query alone: 2 s a row, 6 rows or more
    assert running == 0


def test_the_full_sync_streams_in_index_order_without_a_sort(env):
    """A full sync's rows stream in created_at order from the first row: PostgreSQL reads
    them in the created_at index's order, never sorts them (a sort sends nothing before it
    has read every row). A condition the planner misjudges (``isfinite(x) IS NOT FALSE``: a
    fixed guess of a third of the rows each) made it a parallel scan and a sort."""
    from psycopg import sql

    from voyce_assets.ingestion.source import inspect_source
    from voyce_assets.ingestion.sync import _reads

    engine, resources = env
    spec = table("raw_data/voice_feedback")
    for day in DAYS:
        bulk_feedback(engine, day, 20_000)
    sql_rows(engine, "ANALYZE voice_feedback")
    with resources["app_db"].connect() as conn:
        shape = inspect_source(conn, spec, "public")
        day = dt.date.fromisoformat(DAYS[1])
        reads = _reads(conn, spec, [day], None, "public", frozenset(), shape, ordered=True)
        plan = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + reads.statement).fetchone()[0]
        conn.rollback()

    def nodes(node):
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    kinds = [n["Node Type"] for n in nodes(plan[0]["Plan"])]
    assert "Sort" not in kinds and "Incremental Sort" not in kinds, kinds
    assert any(k.startswith("Index") for k in kinds), kinds
