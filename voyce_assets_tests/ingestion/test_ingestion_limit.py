"""The ingestion limit holds for every run that reads the app tables (issue 24, item 4): a
backfill launched from the UI, which carries none of the sensors' tags, waits in the queue
while another ingestion run holds the app database's pool, and runs once it lets go.

A real instance configured by a copy of each shipped file, the real code location (a gRPC
server loading ``voyce_assets.definitions``), real run workers, and the queued run
coordinator's own iterations. The holder is a CDC-like run whose syncs of as many tables as the
pool has slots wait on locks another connection holds in the app database: steps holding
every slot for as long as the test wants, with nothing of ours faked.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from dagster import AssetKey, DagsterInstance, DagsterRunStatus
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from voyce_assets.demo.seed import generate, load_rows
from voyce_assets.resources.app_db import APP_DB_POOL, libpq_url, sqlalchemy_url
from voyce_assets_tests.ingestion.conftest import CONFIG, DAYS
from voyce_assets_tests.test_run_monitoring import (
    REPO,
    _instance_dir,
    _let_go,
    _status,
    _submit,
    _wait,
    shipped,  # noqa: F401 (the fixture: each shipped instance config)
)

LOCATION = "voyce_assets"


def _app_database(pg_server) -> str:
    """A second database on the session's server, for the app (the first holds Dagster's
    storage under the prod config)."""
    _, server_url = pg_server
    name = f"app_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return libpq_url(server_url.set(database=name), show_password=True)


# Locked in the app database, one per slot of the pool (the local config has 1, prod 2).
LOCKED = ["tags", "users"]


def _held_by(instance: DagsterInstance) -> set[str]:
    """The runs holding a slot of the app database's pool."""
    return instance.event_log_storage.get_concurrency_info(APP_DB_POOL).active_run_ids


def _lock_waiters(engine) -> int:
    """Queries of the app database waiting on the test's locks."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = ANY(CAST(:t AS regclass[]))"
            ),
            {"t": LOCKED},
        ).scalar_one()


def test_a_ui_backfill_waits_behind_the_ingestion_limit(
    tmp_path,
    shipped,  # noqa: F811 (the fixture imported above)
    voyce_home,
    pg_server,
    monkeypatch,
):
    app_url = _app_database(pg_server)
    engine = sa.create_engine(sqlalchemy_url(app_url))
    load_rows(engine, generate(CONFIG))
    # The code server and the run workers read the app database and the lakehouse from here.
    monkeypatch.setenv("VOYCE_SOURCE_URL", app_url)
    monkeypatch.setenv("VOYCE_PARTITIONS_START", DAYS[0])
    home, limit = _instance_dir(tmp_path, shipped)
    assert limit <= len(LOCKED)
    runs: list[str] = []
    with (
        DagsterInstance.from_config(str(home)) as instance,
        WorkspaceProcessContext(
            instance,
            ModuleTarget(
                module_name="voyce_assets.definitions",
                attribute="defs",
                working_directory=str(REPO),
                location_name=LOCATION,
            ),
        ) as context,
        QueuedRunCoordinatorDaemon(interval_seconds=1) as dequeuer,
        engine.connect() as locker,
    ):

        def dequeue():
            list(dequeuer.run_iteration(context))

        try:
            # App tables locked: the holder's syncs of them wait, holding every slot.
            for name in LOCKED[:limit]:
                locker.execute(sa.text(f"LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE"))
            holder = _submit(
                context,
                "raw_full_sync_job",
                {"dagster/partition": DAYS[0], "voyce/ingestion": "cdc"},
                LOCATION,
            )
            runs.append(holder)
            _wait(
                "the holder's syncs to wait on the locks",
                lambda: _lock_waiters(engine) == limit,
                tick=dequeue,
            )
            assert _held_by(instance) == {holder}
            # What the UI's backfill of the mirrors launches: its tags, none of ours.
            backfill = _submit(
                context,
                "raw_full_sync_job",
                {
                    "dagster/backfill": "ui0001",
                    "dagster/asset_partition_range_start": DAYS[0],
                    "dagster/asset_partition_range_end": DAYS[-1],
                },
                LOCATION,
            )
            runs.append(backfill)
            for _ in range(3):
                dequeue()
            assert _status(instance, backfill) == DagsterRunStatus.QUEUED
            assert _status(instance, holder) == DagsterRunStatus.STARTED
            assert _held_by(instance) == {holder}

            locker.rollback()  # the lock goes: the holder syncs, lets go, the backfill runs
            _wait(
                "the holder to finish",
                lambda: instance.get_run_by_id(holder).is_finished,
                tick=dequeue,
            )
            _wait(
                "the backfill to finish",
                lambda: instance.get_run_by_id(backfill).is_finished,
                tick=dequeue,
            )
            assert _status(instance, holder) == DagsterRunStatus.SUCCESS
            assert _status(instance, backfill) == DagsterRunStatus.SUCCESS
            records = instance.fetch_materializations(AssetKey(["raw_data", "tags"]), limit=100)
            assert {r.partition_key for r in records.records if r.run_id == backfill} == set(DAYS)
        finally:
            locker.rollback()
            _let_go(context, runs, LOCATION)
            engine.dispose()
