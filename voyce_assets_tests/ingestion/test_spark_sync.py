"""Big syncs on Spark: the Spark JDBC path writes what the host path writes, with the same
evidence, and a run takes it only above the row threshold. One real local[2] session and the
Debian PostgreSQL JDBC driver, against the embedded server (through its loopback bridge)."""

import datetime as dt
import json
import uuid
from itertools import pairwise

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from dagster import AssetKey, materialize
from deltalake import DeltaTable

from voyce_assets.catalog import table
from voyce_assets.environments import resources_for
from voyce_assets.ingestion.big_sync import CPU_NODE_TYPES, LocalSparkSync
from voyce_assets.ingestion.big_sync_databricks import (
    RUNNER,
    DatabricksSparkSync,
    decode_result,
    encode_result,
    run_remote,
)
from voyce_assets.ingestion.mirrors import raw_mirrors
from voyce_assets.ingestion.spark_sync import JdbcSource, SparkJdbcReader, chunks, loopback_bridge
from voyce_assets.ingestion.sync import sync_table
from voyce_assets.privacy.tombstones import subject_hash
from voyce_assets.resources.app_db import EmbeddedAppDatabase
from voyce_assets.resources.lakehouse import Lakehouse
from voyce_assets_tests.ingestion.conftest import DAYS, RANGE, checks_by_name, sql_rows

FEEDBACK = table("raw_data/voice_feedback")
DATES = [dt.date.fromisoformat(d) for d in DAYS]


@pytest.fixture(scope="module")
def big_sync():
    """One local[2] session for the module (a start is ~8 s); a session another test file
    left running is stopped first, so this one has the JDBC driver on its class path."""
    from pyspark import SparkContext

    # The process's one SparkContext, whoever started it (getActiveSession sees only this
    # thread's): a context started without the JDBC jar cannot be given it.
    if SparkContext._active_spark_context is not None:
        SparkContext._active_spark_context.stop()
    # Chunks of 8 rows: a day in parts and several Spark jobs per sync, as on a big table.
    engine = LocalSparkSync(master="local[2]", num_partitions=3, chunk_rows=8)
    yield engine
    engine.session().stop()


def _edge_rows(engine) -> dict[str, str]:
    """Rows a sync must place, quarantine or leave out, among the demo's; {what: id}."""
    sql_rows(engine, "ALTER TABLE voice_feedback ALTER COLUMN organization_id DROP NOT NULL")
    template = sql_rows(
        engine, "SELECT organization_id::text, user_id::text FROM voice_feedback LIMIT 1"
    )[0]
    ids = {}

    def add(what, created_at, org=template[0], user=template[1], text="ok.wav", updated=None):
        ids[what] = str(uuid.uuid4())
        sql_rows(
            engine,
            "INSERT INTO voice_feedback (id, organization_id, user_id, audio_file_path, status, "
            "created_at, updated_at) VALUES (:i, :o, :u, :p, 'pending', :c, :up)",
            i=ids[what],
            o=org,
            u=user,
            p=text,
            c=created_at,
            up=updated or created_at,
        )

    add("midnight", f"{DAYS[1]} 00:00:00+00")  # the first instant of a day: that day
    add("last_instant", f"{DAYS[1]} 23:59:59.999999+00")  # the last instant: still that day
    add("null_org", f"{DAYS[0]} 12:00:00+00", org=None)  # a NOT NULL column NULL: quarantined
    add("infinite", f"{DAYS[2]} 08:00:00+00", updated="infinity")  # unrepresentable: named
    add("unicode", f"{DAYS[2]} 09:30:00+02", text="voix/été 声音 🎙️.wav")
    return ids


def _sorted_rows(uri: str) -> list[dict]:
    data = DeltaTable(uri).to_pyarrow_table()
    return data.take(pc.sort_indices(data, [("id", "ascending")])).to_pylist()


def _bounds(predicate: str) -> tuple[str, str]:
    return predicate.split("'")[1], predicate.split("'")[3]


def test_chunks_cover_each_day_once_in_time_order_and_bounded():
    days = [dt.date(2026, 3, 1) + dt.timedelta(days=i) for i in range(5)]
    # A big day cut in two, small days joined, a gap (03-04 not read) never bridged.
    counts = {days[0]: 100, days[1]: 100, days[2]: 900, days[4]: 0}
    plan = chunks(FEEDBACK, counts, per_chunk=3, chunk_rows=500)
    spans = [(_bounds(c[0])[0], _bounds(c[-1])[1]) for c in plan]
    assert spans == [
        ("2026-03-01T00:00:00+00:00", "2026-03-03T00:00:00+00:00"),
        ("2026-03-03T00:00:00+00:00", "2026-03-03T12:00:00+00:00"),
        ("2026-03-03T12:00:00+00:00", "2026-03-04T00:00:00+00:00"),
        ("2026-03-05T00:00:00+00:00", "2026-03-06T00:00:00+00:00"),
    ]
    assert plan[0][0].startswith("\"created_at\" >= '2026-03-01T00:00:00+00:00'")
    # Within a chunk each slice starts where the one before it stopped.
    for chunk in plan:
        assert len(chunk) == 3
        for a, b in pairwise(chunk):
            assert _bounds(a)[1] == _bounds(b)[0]


def test_spark_jdbc_sync_equals_the_host_sync(env, tmp_path, big_sync):
    engine, resources = env
    ids = _edge_rows(engine)
    # An erased subject the app still holds: the user with the fewest recordings.
    erased, held = sql_rows(
        engine,
        "SELECT user_id::text, count(*) FROM voice_feedback GROUP BY 1 ORDER BY 2, 1 LIMIT 1",
    )[0]
    tombstones = frozenset({subject_hash(erased)})
    results, uris = {}, {}
    for name in ("host", "spark"):
        lake = Lakehouse(catalog="c", root_uri=str(tmp_path / name), volumes_root=str(tmp_path))
        uris[name] = lake.ensure_table(FEEDBACK)
        with resources["app_db"].connect() as conn:
            if name == "host":
                results[name] = sync_table(conn, FEEDBACK, uris[name], DATES, tombstones=tombstones)
            else:
                with big_sync.reader(conn) as reader:
                    results[name] = sync_table(
                        conn, FEEDBACK, uris[name], DATES, tombstones=tombstones, reader=reader
                    )
    host, spark = results["host"], results["spark"]
    assert (host.engine, spark.engine) == ("host", "spark")
    # Same rows, value for value (timestamps, the day column, unicode text included).
    rows = _sorted_rows(uris["host"])
    assert rows == _sorted_rows(uris["spark"])
    by_id = {r["id"]: r for r in rows}
    assert by_id[ids["midnight"]]["event_date"] == DATES[1]
    assert by_id[ids["last_instant"]]["event_date"] == DATES[1]
    assert by_id[ids["unicode"]]["audio_file_path"] == "voix/été 声音 🎙️.wav"
    assert by_id[ids["unicode"]]["event_date"] == DATES[2]  # 07:30 UTC
    for left_out in ("null_org", "infinite"):
        assert ids[left_out] not in by_id
    assert not [r for r in rows if r["user_id"] == erased]
    # The same evidence: PostgreSQL's checksums, ours of the rows written, all equal.
    assert spark.source_counts == host.source_counts
    assert spark.mirror_counts == host.mirror_counts
    # ... and the same difference: the quarantined row's day only, one row short.
    assert spark.mismatched == host.mismatched
    assert list(spark.mismatched) == [DAYS[0]]
    assert spark.source_counts[DAYS[0]][0] - spark.mirror_counts[DAYS[0]][0] == 1
    assert all(checksum for _, checksum in spark.mirror_counts.values())
    assert spark.stats.rows_per_partition == host.stats.rows_per_partition
    assert (spark.stats.quarantined, spark.stats.quarantined_columns) == (
        1,
        {"organization_id": 1},
    )
    assert spark.stats.quarantine_preview == host.stats.quarantine_preview
    assert spark.unrepresentable.rows == host.unrepresentable.rows == 1
    assert spark.withheld == host.withheld and sum(spark.withheld.values()) == held


def test_the_spark_read_sees_the_sync_snapshot_only(env, tmp_path, big_sync):
    """Rows committed after the sync's snapshot was taken are not read: PostgreSQL's
    checksums (on the sync's connection) and Spark's rows describe one state."""
    engine, resources = env
    lake = Lakehouse(catalog="c", root_uri=str(tmp_path / "lake"), volumes_root=str(tmp_path))
    uri = lake.ensure_table(FEEDBACK)
    with resources["app_db"].connect() as conn:
        before = conn.execute("SELECT count(*) FROM voice_feedback").fetchone()[0]  # snapshot
        sql_rows(
            engine,
            "INSERT INTO voice_feedback (id, organization_id, user_id, audio_file_path, status, "
            "created_at, updated_at) SELECT gen_random_uuid(), organization_id, user_id, "
            "'late.wav', status, created_at, updated_at FROM voice_feedback",
        )
        with big_sync.reader(conn) as reader:
            result = sync_table(conn, FEEDBACK, uri, DATES, reader=reader)
    assert result.stats.rows_written == before
    assert not result.mismatched


def _engine_of(result) -> list[str]:
    return [
        m.metadata["sync_engine"].value
        for m in (e.materialization for e in result.get_asset_materialization_events())
    ]


def test_a_run_above_the_row_threshold_takes_the_spark_path(env, big_sync):
    engine, resources = env
    days = sql_rows(
        engine,
        "SELECT (created_at AT TIME ZONE 'UTC')::date::text, count(*) FROM voice_feedback "
        "GROUP BY 1 ORDER BY 1",
    )
    one_day = dict(days)[DAYS[0]]
    assert sum(n for d, n in days if d in DAYS) > one_day
    resources = {
        **resources,
        # Above one day's rows, below the three days' (the module's session, shared).
        "big_sync": LocalSparkSync(master="local[2]", num_partitions=3, min_rows=one_day + 1),
    }
    mirror = [a for a in raw_mirrors if a.key == AssetKey(["raw_data", "voice_feedback"])]
    small = materialize(mirror, resources=resources, partition_key=DAYS[0])
    assert small.success and set(_engine_of(small)) == {"host"}
    large = materialize(mirror, resources=resources, tags=RANGE)
    assert large.success and set(_engine_of(large)) == {"spark"}
    check = checks_by_name(large)[("voice_feedback", "reconciliation")]
    assert check.passed and check.metadata["compared"].value == "row count + content checksum"
    data = DeltaTable(resources["lakehouse"].table_uri(FEEDBACK)).to_pyarrow_table()
    assert data.num_rows == sum(n for d, n in days if d in DAYS)
    assert pa.compute.count_distinct(data["id"]).as_py() == data.num_rows


def test_the_cluster_side_sync_is_the_local_one(env, tmp_path, big_sync):
    """What the prod run executes on the CPU cluster (``run_remote``, fed the Pipes extras
    ``DatabricksSparkSync.sync`` sends), here with the local stores and session; its result
    crosses the Pipes message intact."""
    engine, resources = env
    lake = Lakehouse(catalog="c", root_uri=str(tmp_path / "lake"), volumes_root=str(tmp_path))
    params = {
        "table": FEEDBACK.path,
        "dates": DAYS,
        "pg_schema": "public",
        "num_partitions": 2,
        "fetch_size": 5,
        "chunk_rows": 10,
    }
    url = resources["app_db"].url()
    socket_dir, port = url.query["host"], url.port or 5432
    # On the cluster the database is reached over TCP; here through the loopback bridge.
    with loopback_bridge(socket_dir, port) as tcp:
        app_db = EmbeddedAppDatabase(
            source_url=str(url.set(host="127.0.0.1", port=tcp, query={})),
            data_dir=str(tmp_path / "unused"),
        )
        result = decode_result(encode_result(run_remote(params, app_db, lake, big_sync.session())))
    assert result.engine == "spark" and not result.mismatched
    assert result.stats.rows_written == len(sql_rows(engine, "SELECT 1 FROM voice_feedback"))
    assert _sorted_rows(lake.table_uri(FEEDBACK)) == sorted(
        delta_rows_after_host_sync(resources, tmp_path), key=lambda r: r["id"]
    )


def delta_rows_after_host_sync(resources, tmp_path) -> list[dict]:
    lake = Lakehouse(catalog="c", root_uri=str(tmp_path / "host"), volumes_root=str(tmp_path))
    uri = lake.ensure_table(FEEDBACK)
    with resources["app_db"].connect() as conn:
        sync_table(conn, FEEDBACK, uri, DATES)
    return _sorted_rows(uri)


def test_the_cpu_cluster_follows_its_settings_and_the_spec_holds_no_secret(prod_env, monkeypatch):
    # Without a staging volume the resource still builds (big syncs then stay on the host).
    monkeypatch.delenv("VOYCE_PIPES_VOLUME", raising=False)
    with resources_for("prod")["big_sync"].process_config_and_initialize_cm() as bare:
        assert bare.volume is None
    monkeypatch.setenv("VOYCE_LAKEHOUSE_ROOT", "abfss://lake@voyceprod.dfs.core.windows.net/uc")
    monkeypatch.setenv("VOYCE_PIPES_VOLUME", "/Volumes/voice_feedback_prod/ml_models/artifacts")
    monkeypatch.setenv("VOYCE_CPU_WORKERS", "6")
    monkeypatch.setenv("VOYCE_CPU_DRIVER_NODE_TYPE", "Standard_E8ds_v5")
    monkeypatch.setenv("VOYCE_SPARK_SYNC_MIN_ROWS", "2000000")
    # A nested resource (its cluster) is resolved in a context, as Dagster does for a run.
    with resources_for("prod")["big_sync"].process_config_and_initialize_cm() as sync:
        assert isinstance(sync, DatabricksSparkSync) and sync.min_rows == 2_000_000
        task = sync.task("/Volumes/v/staging", {})
    cluster = task["new_cluster"]
    assert RUNNER.is_file() and task["spark_python_task"]["python_file"].endswith(RUNNER.name)
    assert cluster["num_workers"] == 6 and "autoscale" not in cluster
    assert cluster["node_type_id"] == CPU_NODE_TYPES["azure"]
    assert cluster["driver_node_type_id"] == "Standard_E8ds_v5"
    assert cluster["azure_attributes"]["availability"] == "SPOT_WITH_FALLBACK_AZURE"
    assert "spark.task.resource.gpu.amount" not in cluster["spark_conf"]
    env = cluster["spark_env_vars"]
    # The cluster reads the app database's credentials from the scope itself.
    assert env["POSTGRES_PASSWORD"] == "{{secrets/voice-feedback/postgres-password}}"
    assert env["VOYCE_LAKEHOUSE_ROOT"] == "abfss://lake@voyceprod.dfs.core.windows.net/uc"
    spelled = json.dumps(task)
    for name in ("POSTGRES_PASSWORD", "DATABRICKS_TOKEN"):
        assert prod_env[name] not in spelled


def test_the_password_travels_as_a_property_never_in_the_url_or_a_repr():
    source = JdbcSource(url="jdbc:postgresql://db:5432/voyce", user="u", password="pw-never-shown")
    shown = source.url + repr(source) + repr(SparkJdbcReader(None, source))
    assert "pw-never-shown" not in shown
    assert source.properties(10, "")["password"] == "pw-never-shown"
