"""delta_maintenance_job: OPTIMIZE (Z-ORDER from the spec) then VACUUM, on real local Delta
tables (delta-rs) and as SQL through the Statement Execution API; the spec's z_order columns;
the weekly schedule."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DefaultScheduleStatus,
    build_schedule_context,
    validate_run_config,
)
from deltalake import DeltaTable, write_deltalake

from voyce_assets.catalog import TABLES, Column, Owner, Table, table
from voyce_assets.definitions import build_definitions
from voyce_assets.operations.maintenance import delta_maintenance_job, delta_maintenance_weekly
from voyce_assets.resources.lakehouse import Lakehouse
from voyce_assets.resources.unity_catalog import DatabricksUnityCatalog, LocalUnityCatalog
from voyce_assets.training.schedules import model_training_weekly
from voyce_assets_tests.fakes.databricks import FakeDatabricks

FEEDBACK = table("raw_data/voice_feedback")
COSTS = table("analytics/cost_tracking")
DAYS = (dt.date(2026, 11, 1), dt.date(2026, 11, 2))
# Organization ids that differ in their first character, as UUIDs mostly do.
ORGS = [f"{c}{i:031x}" for i, c in enumerate("16adf")]


def _config(retain_hours=None, allow_short_retention=None, recent_days_left=None):
    cfg = {}
    if recent_days_left is not None:
        cfg["recent_days_left"] = recent_days_left
    if retain_hours is not None:
        cfg["retain_hours"] = retain_hours
    if allow_short_retention is not None:
        cfg["allow_short_retention"] = allow_short_retention
    return {"ops": {"delta_maintenance": {"config": cfg}}}


def _run(catalog, **config):
    return delta_maintenance_job.execute_in_process(
        run_config=_config(**config), resources={"unity_catalog": catalog}, raise_on_error=False
    )


@pytest.fixture
def lakehouse(tmp_path):
    return Lakehouse(catalog="c", root_uri=str(tmp_path / "lake"), volumes_root=str(tmp_path))


def _feedback_batch(rng: random.Random, n: int) -> pa.Table:
    rows = []
    for _ in range(n):
        day = rng.choice(DAYS)
        at = dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(
            seconds=rng.randrange(86_400)
        )
        rows.append(
            {
                "id": f"{rng.getrandbits(128):032x}",
                "organization_id": rng.choice(ORGS),
                "user_id": None,
                "audio_file_path": f"{rng.getrandbits(32):08x}.wav",
                "audio_duration_seconds": rng.uniform(1, 300),
                "audio_format": "wav",
                "file_size_bytes": rng.randrange(1, 1 << 20),
                "upload_source": "ios",
                "metadata": None,
                "status": rng.choice(("pending", "processing", "completed", "failed")),
                "created_at": at,
                "updated_at": at,
                "event_date": day,
            }
        )
    return pa.Table.from_pylist(rows, schema=FEEDBACK.arrow_schema())


def _cost_batch(rng: random.Random, n: int) -> pa.Table:
    rows = []
    for _ in range(n):
        day = rng.choice(DAYS)
        rows.append(
            {
                "id": f"{rng.getrandbits(128):032x}",
                "organization_id": rng.choice(ORGS),
                "resource_type": "compute",
                "resource_id": None,
                "operation": "transcribe",
                "quantity": 1.0,
                "unit_cost": 1,
                "total_cost": 1,
                "currency": "USD",
                "cost_date": day,
                "metadata": None,
                "created_at": dt.datetime.combine(day, dt.time(), dt.UTC),
            }
        )
    return pa.Table.from_pylist(rows, schema=COSTS.arrow_schema())


def _small_appends(lakehouse, spec, batch, appends=24, rows=8, seed=7) -> str:
    """The spec's table (catalog_setup's properties) written in many small appends, the way
    a 15-minute CDC mirror leaves a table."""
    uri = lakehouse.create_table(spec)
    rng = random.Random(seed)
    for _ in range(appends):
        write_deltalake(uri, batch(rng, rows), mode="append")
    return uri


def _checksum(data: pa.Table) -> str:
    """Order-independent digest of every row and column."""
    rows = sorted(json.dumps(r, sort_keys=True, default=str) for r in data.to_pylist())
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def _data_files(uri: str) -> set[str]:
    return {str(p.relative_to(uri)) for p in Path(uri).rglob("*.parquet")}


def _referenced(uri: str, version: int | None = None) -> set[str]:
    table = DeltaTable(uri) if version is None else DeltaTable(uri, version=version)
    return {str(Path(f).relative_to(uri)) for f in table.file_uris()}


def _age_removals(uri: str, version: int, hours: float) -> set[str]:
    """Back-date the remove actions of commit ``version`` by ``hours``: the files it
    unreferenced then look as old to VACUUM as they would after that much time. The only way
    to let hours pass in a test; the log stays a valid Delta log."""
    commit = Path(uri) / "_delta_log" / f"{version:020d}.json"
    stamp = int((time.time() - hours * 3600) * 1000)
    actions = [json.loads(line) for line in commit.read_text().splitlines() if line.strip()]
    removed = set()
    for action in actions:
        if "remove" in action:
            action["remove"]["deletionTimestamp"] = stamp
            removed.add(action["remove"]["path"])
    commit.write_text("".join(json.dumps(a) + "\n" for a in actions))
    return removed


def _runs_of(rows: list[dict], columns: tuple[str, ...]) -> tuple[int, int]:
    """(runs of equal values in row order, distinct values) over ``columns``."""
    keys = [tuple(r[c] for c in columns) for r in rows]
    runs = sum(1 for i, k in enumerate(keys) if i == 0 or k != keys[i - 1])
    return runs, len(set(keys))


def _partition_rows_in_file_order(uri: str, version: int, day: dt.date) -> list[dict]:
    rows: list[dict] = []
    for f in DeltaTable(uri, version=version).file_uris():
        if f"event_date={day.isoformat()}" in f:
            rows += pq.read_table(f).to_pylist()
    return rows


def _last_optimize(delta: DeltaTable) -> dict:
    """The operation metrics of the newest OPTIMIZE commit (VACUUM commits follow it)."""
    return next(h for h in delta.history() if h["operation"] == "OPTIMIZE")["operationMetrics"]


def _observations(result, path: str) -> list[dict]:
    return [
        e.event_specific_data.asset_observation.metadata
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_OBSERVATION
        and e.event_specific_data.asset_observation.asset_key == AssetKey(path.split("/"))
    ]


# ---- the spec ------------------------------------------------------------------------------


def test_the_notebooks_z_order_columns_are_in_the_spec_and_exist():
    z = {t.path: t.z_order for t in TABLES if t.z_order}
    assert z == {
        "raw_data/voice_feedback": ("organization_id", "created_at", "status"),
        "raw_data/transcriptions": ("voice_feedback_id", "created_at"),
        "raw_data/sentiment_analysis": ("voice_feedback_id", "sentiment_label"),
    }
    for path, columns in z.items():
        assert set(columns) <= set(table(path).column_names)
    assert "ZORDER BY (organization_id, created_at, status)" in (
        FEEDBACK.column_schema().constraints.other
    )


@pytest.mark.parametrize(
    "z_order, message",
    [
        (("organization", "created_at"), "z_order column 'organization' is not a column"),
        (("event_date",), "is the partition column"),
        (("tags",), "is an array"),
        (("id", "id"), "repeats a column"),
    ],
)
def test_a_z_order_the_spec_cannot_honour_fails_when_declared(z_order, message):
    from voyce_assets.catalog import ARRAY_STRING, DATE

    columns = (
        Column("id"),
        Column("tags", ARRAY_STRING),
        Column("created_at"),
        Column("event_date", DATE),
    )
    kwargs = dict(
        schema="raw_data",
        name="t",
        owner=Owner.PIPELINE,
        description="",
        columns=columns,
        primary_key=("id",),
        partition_column="event_date",
        stage="voice",
    )
    assert Table(**kwargs, z_order=("id", "created_at")).z_order == ("id", "created_at")
    with pytest.raises(ValueError, match=message):
        Table(**kwargs, z_order=z_order)


# ---- local: delta-rs -----------------------------------------------------------------------


def test_optimize_then_vacuum_compacts_z_orders_keeps_rows_and_deletes_only_expired_files(
    lakehouse,
):
    uri = _small_appends(lakehouse, FEEDBACK, _feedback_batch)
    # Two days ago a rewrite of the first day (a partition re-materialized) unreferenced the
    # files that day's appends wrote: they are past a 24-hour retention.
    day = DAYS[0]
    rewrite = DeltaTable(uri).to_pyarrow_table(filters=[("event_date", "=", day)])
    before_rewrite = DeltaTable(uri).version()
    write_deltalake(uri, rewrite, mode="overwrite", predicate=f"event_date = '{day}'")
    expired = _age_removals(uri, before_rewrite + 1, hours=48)
    costs_uri = _small_appends(lakehouse, COSTS, _cost_batch, appends=10, seed=3)
    cost_files = len(_referenced(costs_uri))

    before = DeltaTable(uri)
    version, files_before = before.version(), _referenced(uri)
    checksum = _checksum(before.to_pyarrow_table())
    on_disk = _data_files(uri)
    assert len(files_before) > 20 and expired and expired <= on_disk - files_before
    # Appended in arrival order, a day's rows are scattered over organizations and statuses.
    scattered = _partition_rows_in_file_order(uri, version, DAYS[1])
    runs, groups = _runs_of(scattered, ("organization_id", "status"))
    assert runs > 2 * groups

    result = _run(
        LocalUnityCatalog(lakehouse=lakehouse), retain_hours=24, allow_short_retention=True
    )
    assert result.success

    after = DeltaTable(uri)
    files_after = _referenced(uri)
    assert len(files_after) == len(DAYS)  # one file per daily partition
    assert _checksum(after.to_pyarrow_table()) == checksum
    assert _last_optimize(after)["plannerStrategy"] == "zOrder"
    # Z-ordered: within each file every (organization, status) lies in one run, which makes
    # min/max statistics skip files for the notebooks' per-organization, per-status queries.
    for day in DAYS:
        rows = _partition_rows_in_file_order(uri, after.version(), day)
        runs, groups = _runs_of(rows, ("organization_id", "status"))
        assert runs == groups
    # VACUUM deleted exactly the files unreferenced longer than 24 hours ago ...
    assert _data_files(uri) == (on_disk - expired) | files_after
    # ... and time travel inside the retention still reads the pre-OPTIMIZE version ...
    assert _checksum(DeltaTable(uri, version=version).to_pyarrow_table()) == checksum
    # ... while the version before the expired rewrite lost its files.
    with pytest.raises(Exception, match=r"(?i)not found|no such file"):
        DeltaTable(uri, version=before_rewrite).to_pyarrow_table()

    # Plain compaction where the spec names no Z-ORDER columns; rows unchanged.
    costs = DeltaTable(costs_uri)
    assert _last_optimize(costs)["plannerStrategy"] != "zOrder"
    assert len(_referenced(costs_uri)) == len(DAYS)
    assert costs.to_pyarrow_table().num_rows == 80

    meta = next(
        e.event_specific_data.metadata
        for e in result.all_events
        if e.event_type == DagsterEventType.STEP_OUTPUT
    )
    assert meta["tables"].value == 2 and meta["tables_failed"].value == 0
    assert meta["files_vacuumed"].value == len(expired)
    assert meta["files_removed"].value == len(files_before) + cost_files
    assert "ZORDER BY (organization_id, created_at, status)" in meta["report"].value
    [obs] = _observations(result, "raw_data/voice_feedback")
    assert obs["files_removed"].value == len(files_before)
    assert obs["files_added"].value == len(files_after)
    assert obs["files_vacuumed"].value == len(expired)
    assert obs["optimize"].value == "ZORDER BY (organization_id, created_at, status)"
    [cost_obs] = _observations(result, "analytics/cost_tracking")
    assert cost_obs["optimize"].value == "compaction" and cost_obs["files_vacuumed"].value == 0


def test_optimize_leaves_today_and_yesterday_to_their_writers(lakehouse):
    """The hourly runs and the CDC sensor still rewrite the newest two days: OPTIMIZE leaves
    their files as they are (a concurrent rewrite would conflict); older days are compacted.
    With recent_days_left 0, every day is."""
    today = dt.datetime.now(dt.UTC).date()

    def batch(rng, n):
        data = _feedback_batch(rng, n)
        recent = rng.random() < 0.5
        if not recent:
            return data
        at = dt.datetime.combine(today, dt.time(), dt.UTC)
        data = data.set_column(
            data.schema.get_field_index("event_date"),
            "event_date",
            pa.array([today] * n, pa.date32()),
        )
        for name in ("created_at", "updated_at"):
            data = data.set_column(
                data.schema.get_field_index(name),
                name,
                pa.array([at] * n, pa.timestamp("us", tz="UTC")),
            )
        return data

    uri = _small_appends(lakehouse, FEEDBACK, batch, appends=16)

    def files_of(day):
        return {f for f in _referenced(uri) if f"event_date={day.isoformat()}" in f}

    todays, checksum = files_of(today), _checksum(DeltaTable(uri).to_pyarrow_table())
    assert len(todays) > 2 and all(len(files_of(d)) > 1 for d in DAYS)
    assert _run(LocalUnityCatalog(lakehouse=lakehouse)).success
    assert files_of(today) == todays  # untouched
    assert all(len(files_of(d)) == 1 for d in DAYS)  # compacted
    assert _checksum(DeltaTable(uri).to_pyarrow_table()) == checksum
    assert _run(LocalUnityCatalog(lakehouse=lakehouse), recent_days_left=0).success
    assert len(files_of(today)) == 1


def test_the_default_retention_keeps_every_file_of_the_last_seven_days(lakehouse):
    uri = _small_appends(lakehouse, FEEDBACK, _feedback_batch, appends=6)
    day = DAYS[0]
    rewrite = DeltaTable(uri).to_pyarrow_table(filters=[("event_date", "=", day)])
    first = DeltaTable(uri).version()
    write_deltalake(uri, rewrite, mode="overwrite", predicate=f"event_date = '{day}'")
    # Unreferenced two days ago: inside the default 168 hours, so VACUUM keeps them.
    _age_removals(uri, first + 1, hours=48)
    on_disk = _data_files(uri)

    result = _run(LocalUnityCatalog(lakehouse=lakehouse))
    assert result.success
    assert _data_files(uri) >= on_disk
    assert DeltaTable(uri, version=first).to_pyarrow_table().num_rows == 48
    [obs] = _observations(result, "raw_data/voice_feedback")
    assert obs["files_vacuumed"].value == 0 and obs["retain_hours"].value == 168


def test_a_retention_under_168_hours_without_the_override_is_refused_before_anything_runs(
    lakehouse,
):
    uri = _small_appends(lakehouse, FEEDBACK, _feedback_batch, appends=5)
    version, files = DeltaTable(uri).version(), _data_files(uri)
    result = _run(LocalUnityCatalog(lakehouse=lakehouse), retain_hours=24)
    assert not result.success
    failure = result.failure_data_for_node("delta_maintenance").error.to_string()
    assert "retain_hours=24 is below Delta's 168-hour floor" in failure
    assert "allow_short_retention" in failure
    assert DeltaTable(uri).version() == version and _data_files(uri) == files
    assert not _observations(result, "raw_data/voice_feedback")


def test_one_broken_table_fails_the_step_by_name_after_the_others_were_maintained(lakehouse):
    good = _small_appends(lakehouse, FEEDBACK, _feedback_batch, appends=6)
    costs = _small_appends(lakehouse, COSTS, _cost_batch, appends=6)
    broken = _small_appends(lakehouse, table("raw_data/transcriptions"), None, appends=0)
    # A torn write of the newest commit: the log no longer parses.
    newest = sorted((Path(broken) / "_delta_log").glob("*.json"))[-1]
    newest.write_text('{"add": {"path": ')
    cost_files = len(_referenced(costs))

    result = _run(LocalUnityCatalog(lakehouse=lakehouse))
    assert not result.success
    failure = result.failure_data_for_node("delta_maintenance")
    assert "failed for 1 of 3 tables: raw_data/transcriptions" in failure.error.to_string()
    # The tables before and after it in the spec's order were both maintained.
    assert len(_referenced(good)) == len(DAYS) and len(_referenced(costs)) == len(DAYS)
    [obs] = _observations(result, "raw_data/transcriptions")
    assert obs["error"].value.startswith("OPTIMIZE failed:")
    [ok] = _observations(result, "analytics/cost_tracking")
    assert "error" not in ok and ok["files_removed"].value == cost_files > len(DAYS)


def test_tables_catalog_setup_never_created_are_skipped(lakehouse):
    result = _run(LocalUnityCatalog(lakehouse=lakehouse))
    assert result.success
    assert not any(e.event_type == DagsterEventType.ASSET_OBSERVATION for e in result.all_events)
    lakehouse.create_table(FEEDBACK)  # created, never written: nothing to rewrite
    result = _run(LocalUnityCatalog(lakehouse=lakehouse))
    assert result.success
    [obs] = _observations(result, "raw_data/voice_feedback")
    assert obs["files_removed"].value == 0 and obs["files_vacuumed"].value == 0


# ---- prod: SQL on a Databricks warehouse ---------------------------------------------------

_OPTIMIZE_METRICS = {
    "numFilesAdded": 2,
    "numFilesRemoved": 31,
    "filesAdded": {"totalSize": 9000},
    "filesRemoved": {"totalSize": 150000},
}


def _warehouse(existing: list[str]):
    def query(statement, _parameters):
        if statement.startswith("SELECT table_schema, table_name FROM"):
            return (
                [("table_schema", "STRING", "string"), ("table_name", "STRING", "string")],
                [p.split("/") for p in existing],
            )
        assert statement.startswith("OPTIMIZE ")
        return (
            [("path", "STRING", "string"), ("metrics", "STRUCT", "struct<...>")],
            [["s3://lake/uc/...", json.dumps(_OPTIMIZE_METRICS)]],
        )

    return query


def test_databricks_runs_optimize_zorder_and_vacuum_statements_for_existing_tables():
    token = "dapi-maintenance-token"
    existing = ["raw_data/voice_feedback", "analytics/cost_tracking", "raw_data/not_in_spec"]
    with FakeDatabricks(token=token, query=_warehouse(existing)) as fake:
        uc = DatabricksUnityCatalog(
            host=fake.host,
            token=token,
            warehouse_id="wh-9",
            catalog="voice_feedback_prod",
            poll_interval_seconds=0.01,
        )
        result = _run(uc)
        assert result.success
        yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
        assert [s.statement for s in fake.statements] == [
            "SELECT table_schema, table_name FROM `voice_feedback_prod`.information_schema.tables",
            "OPTIMIZE `voice_feedback_prod`.`raw_data`.`voice_feedback` "
            f"WHERE `event_date` < DATE'{yesterday}' "
            "ZORDER BY (`organization_id`, `created_at`, `status`)",
            "VACUUM `voice_feedback_prod`.`raw_data`.`voice_feedback` RETAIN 168 HOURS",
            "OPTIMIZE `voice_feedback_prod`.`analytics`.`cost_tracking` "
            f"WHERE `cost_date` < DATE'{yesterday}'",
            "VACUUM `voice_feedback_prod`.`analytics`.`cost_tracking` RETAIN 168 HOURS",
        ]
        assert {s.warehouse_id for s in fake.statements} == {"wh-9"}
    [obs] = _observations(result, "raw_data/voice_feedback")
    assert obs["files_removed"].value == 31 and obs["files_added"].value == 2
    assert obs["bytes_removed"].value == 150000
    # Databricks' VACUUM reports no count: none is made up.
    assert "files_vacuumed" not in obs
    assert token not in str([e for e in result.all_events])


def test_databricks_quotes_the_catalog_name_it_is_configured_with():
    with FakeDatabricks(token="t", query=_warehouse(["raw_data/transcriptions"])) as fake:
        uc = DatabricksUnityCatalog(
            host=fake.host, token="t", warehouse_id="w", catalog="a`b", poll_interval_seconds=0.01
        )
        assert _run(uc, retain_hours=200).success
        assert fake.statements[-1].statement == (
            "VACUUM `a``b`.`raw_data`.`transcriptions` RETAIN 200 HOURS"
        )


def test_databricks_failure_of_one_table_names_it_and_the_others_still_run():
    existing = ["raw_data/voice_feedback", "raw_data/sentiment_analysis"]
    with FakeDatabricks(
        token="t", query=_warehouse(existing), fail_pattern=r"^VACUUM .*`voice_feedback`"
    ) as fake:
        uc = DatabricksUnityCatalog(
            host=fake.host, token="t", warehouse_id="w", catalog="cat", poll_interval_seconds=0.01
        )
        result = _run(uc)
        assert not result.success
        error = result.failure_data_for_node("delta_maintenance").error.to_string()
        assert "failed for 1 of 2 tables: raw_data/voice_feedback" in error
        assert fake.statements[-1].statement == (
            "VACUUM `cat`.`raw_data`.`sentiment_analysis` RETAIN 168 HOURS"
        )
    [obs] = _observations(result, "raw_data/voice_feedback")
    assert obs["error"].value.startswith("VACUUM failed:") and "PERMISSION_DENIED" in (
        obs["error"].value
    )


def test_databricks_refuses_the_short_retention_override_before_any_statement():
    with FakeDatabricks(token="t", query=_warehouse(["raw_data/voice_feedback"])) as fake:
        uc = DatabricksUnityCatalog(
            host=fake.host, token="t", warehouse_id="w", catalog="cat", poll_interval_seconds=0.01
        )
        result = _run(uc, retain_hours=24, allow_short_retention=True)
        assert not result.success
        error = result.failure_data_for_node("delta_maintenance").error.to_string()
        assert "cannot switch Delta's retention check off" in error
        assert fake.statements == []


# ---- the schedule --------------------------------------------------------------------------


def test_the_weekly_schedule_runs_sunday_at_four_after_training_with_seven_days_retention(
    voyce_home,
):
    defs = build_definitions("local")
    at = dt.datetime(2026, 11, 29, 4, 0, tzinfo=dt.UTC)  # a Sunday
    context = build_schedule_context(
        scheduled_execution_time=at, repository_def=defs.get_repository_def()
    )
    [request] = delta_maintenance_weekly.evaluate_tick(context).run_requests
    assert request.run_key == "delta_maintenance:2026-11-29"
    job = defs.resolve_job_def("delta_maintenance_job")
    validate_run_config(job, request.run_config)
    assert request.run_config["ops"]["delta_maintenance"]["config"]["retain_hours"] == 168
    assert delta_maintenance_weekly.default_status == DefaultScheduleStatus.STOPPED
    assert delta_maintenance_weekly.execution_timezone == "UTC"
    # Same weekday as training, a later hour: OPTIMIZE never races the weekly retrain.
    _, hour, _, _, weekday = delta_maintenance_weekly.cron_schedule.split()
    _, t_hour, _, _, t_weekday = model_training_weekly.cron_schedule.split()
    assert weekday == t_weekday == "0" and int(hour) > int(t_hour)
    assert defs.resolve_schedule_def("delta_maintenance_weekly").job_name == (
        "delta_maintenance_job"
    )


def test_vacuum_also_deletes_the_change_feeds_files_past_the_retention(lakehouse):
    """delta-rs' VACUUM leaves ``_change_data/``; Databricks' deletes it past the retention,
    and so does the local catalog (an erasure without purge relies on it)."""
    import os

    uri = _small_appends(lakehouse, FEEDBACK, _feedback_batch, appends=3)
    for day in DAYS:
        DeltaTable(uri).delete(f"event_date = '{day}' AND status = 'failed'")
    changes = sorted((Path(uri) / "_change_data").rglob("*.parquet"))
    assert len(changes) == 2
    old = time.time() - 8 * 24 * 3600
    os.utime(changes[0], (old, old))

    result = _run(LocalUnityCatalog(lakehouse=lakehouse))
    assert result.success
    assert [p.exists() for p in changes] == [False, True]
    [obs] = _observations(result, "raw_data/voice_feedback")
    assert obs["files_vacuumed"].value == 1
