"""Where a full sync too big for one COPY stream runs: the ``big_sync`` resource.

The mirror asks it which engine a run takes (``choose``: data, never the environment) and,
for Spark, to run the sync (``sync``). Swapped per environment (``ingestion/resources.py``):

- local: ``LocalSparkSync``, a pyspark ``local[2]`` session in the run's process, with the
  PostgreSQL JDBC driver (Debian's ``libpostgresql-jdbc-java``, or ``VOYCE_JDBC_JAR``);
- prod: ``DatabricksSparkSync``, a one-time run on a new CPU job cluster (the GPU steps'
  launch path, a second cluster spec: ``CpuJobCluster``), where the same ``sync_table`` runs
  on the cluster's driver with the cluster's session and sends its result back over Pipes.

Either way the rows are written by deltalake from the Spark driver, through the host path's
writer and checks (``spark_sync.py`` says why one writer).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from abc import abstractmethod
from contextlib import contextmanager
from typing import Any, Literal

from dagster import ConfigurableResource
from psycopg import sql
from pydantic import Field, PrivateAttr

from voyce_assets.catalog import Table
from voyce_assets.ingestion.spark_sync import SparkJdbcReader, jdbc_source, loopback_bridge
from voyce_assets.ingestion.sync import SyncResult, source_counts, sync_table
from voyce_assets.spark import jdbc_jar

DEFAULT_MIN_ROWS = 5_000_000


class BigSync(ConfigurableResource):
    """A run's engine (``choose``) and, for Spark, its sync (``sync``)."""

    # No pydantic bounds: fields fed by an EnvVar are validated against a stand-in at load.
    min_rows: int = Field(
        default=DEFAULT_MIN_ROWS,
        description="VOYCE_SPARK_SYNC_MIN_ROWS: a full sync of at least this many source rows "
        "(all its days together: an initial load or backfill adds them up) reads with Spark; "
        "0: never.",
    )
    num_partitions: int = Field(
        default=8,
        description="VOYCE_SPARK_SYNC_PARTITIONS: JDBC queries (time slices) per chunk of "
        "days, read side by side; each is one connection to the app database.",
    )
    fetch_size: int = Field(default=10_000, description="Rows per JDBC round trip.")
    chunk_rows: int = Field(
        default=500_000,
        description="Rows brought back to the driver at once (its memory holds one chunk): "
        "a bigger day is read in parts, smaller days together.",
    )

    def choose(
        self, conn, table: Table, dates: list[dt.date], pg_schema: str = "public"
    ) -> tuple[str, str]:
        """("host" or "spark", why) for a full sync of ``dates``: the planner's estimate of
        the whole table first (free), then, only if the table may be that big, the run's
        rows counted on the created_at index."""
        if self.min_rows <= 0:
            return "host", "the Spark path is off (VOYCE_SPARK_SYNC_MIN_ROWS=0)"
        estimate = conn.execute(
            "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)",
            (sql.Identifier(pg_schema, table.name).as_string(conn),),
        ).fetchone()
        # -1: never analysed, so unknown; the count decides.
        if estimate and 0 <= estimate[0] < self.min_rows:
            return "host", f"the table holds about {int(estimate[0])} rows (< {self.min_rows})"
        rows = sum(source_counts(conn, table, dates, pg_schema).values())
        if rows >= self.min_rows:
            return "spark", f"{rows} rows in the run's days (>= {self.min_rows})"
        return "host", f"{rows} rows in the run's days (< {self.min_rows})"

    @abstractmethod
    def sync(
        self,
        context,
        app_db,
        table: Table,
        uri: str,
        dates: list[dt.date],
        pg_schema: str,
        storage_options: dict[str, str] | None,
        bounds: tuple[dt.date, dt.date] | None,
        tombstones: frozenset[str],
    ) -> SyncResult:
        """Sync ``dates`` of ``table`` reading with Spark (the run's context, for a remote
        run's logs)."""


class LocalSparkSync(BigSync):
    """Spark in the run's own process: a local session, the rows read over JDBC from the app
    database (the embedded server through a loopback bridge), written by this process."""

    master: str = Field(default="local[2]", description="VOYCE_SPARK_SYNC_MASTER.")
    driver_memory: str = Field(
        default="2g", description="The local session's JVM heap (driver and executors)."
    )

    _session: Any = PrivateAttr(default=None)

    def session(self):
        from voyce_assets.spark import is_live

        if not is_live(self._session):
            from pyspark.sql import SparkSession

            # Python workers run the interpreter of this process (the project's venv).
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            self._session = (
                SparkSession.builder.appName("voyce-big-sync")
                .master(self.master)
                .config("spark.jars", jdbc_jar())
                .config("spark.driver.memory", self.driver_memory)
                .config("spark.ui.enabled", "false")
                .config("spark.sql.session.timeZone", "UTC")
                # java.sql.Date is read in the JVM's zone: pin it, whatever the machine's is.
                .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
                .config("spark.sql.execution.arrow.maxRecordsPerBatch", "65536")
                .getOrCreate()
            )
            # getOrCreate hands back a session this process already runs, as it was built:
            # one without the driver jar cannot load it (say so before reading anything).
            jars = self._session.sparkContext.getConf().get("spark.jars", "")
            if jdbc_jar() not in jars.split(","):
                raise RuntimeError(
                    "a Spark session without the PostgreSQL JDBC driver already runs in this "
                    "process; stop it (or run the big sync in a step of its own)"
                )
        return self._session

    @contextmanager
    def reader(self, conn):
        """A ``SparkJdbcReader`` for ``conn``'s database (while the block runs)."""
        params = conn.info.get_parameters()
        host = params.get("host", "")
        spark = self.session()
        settings = dict(
            num_partitions=self.num_partitions,
            fetch_size=self.fetch_size,
            chunk_rows=self.chunk_rows,
        )
        if host.startswith("/"):
            with loopback_bridge(host, int(params.get("port") or 5432)) as port:
                yield SparkJdbcReader(spark, jdbc_source(conn, "127.0.0.1", port), **settings)
        else:
            yield SparkJdbcReader(spark, jdbc_source(conn), **settings)

    def sync(
        self, context, app_db, table, uri, dates, pg_schema, storage_options, bounds, tombstones
    ) -> SyncResult:
        with app_db.connect() as conn, self.reader(conn) as reader:
            return sync_table(
                conn,
                table,
                uri,
                dates,
                None,
                pg_schema,
                storage_options,
                bounds=bounds,
                tombstones=tombstones,
                reader=reader,
            )


# A general-purpose node type per cloud (4 cores, 16 GB): the JDBC reads are I/O and the
# driver's writer wants memory more than cores.
CPU_NODE_TYPES = {"aws": "m5d.xlarge", "azure": "Standard_D4ds_v5", "gcp": "n2-standard-4"}


class CpuJobCluster(ConfigurableResource):
    """The CPU job cluster of a big sync: created for the run, ended with it (the GPU steps'
    ``GpuJobCluster``, second spec)."""

    spark_version: str = Field(
        default="15.4.x-scala2.12", description="VOYCE_CPU_SPARK_VERSION: a standard runtime."
    )
    node_type_id: str | None = Field(
        default=None, description="VOYCE_CPU_NODE_TYPE; unset: the cloud's in CPU_NODE_TYPES."
    )
    driver_node_type_id: str | None = Field(
        default=None,
        description="VOYCE_CPU_DRIVER_NODE_TYPE: the driver writes Delta (one chunk of days "
        "in memory); the worker type when unset.",
    )
    num_workers: int = Field(
        default=2,
        description="VOYCE_CPU_WORKERS: fixed size (a sync's slices are known up front).",
    )
    cloud: Literal["aws", "azure", "gcp"] = Field(default="aws")
    spot: bool = Field(default=True, description="Spot workers with an on-demand driver.")

    def new_cluster(self) -> dict[str, Any]:
        from voyce_assets.resources.gpu_cluster import SPOT_ATTRIBUTES

        if self.num_workers < 1:
            raise ValueError(f"num_workers must be 1 or more, got {self.num_workers}")
        node_type = self.node_type_id or CPU_NODE_TYPES[self.cloud]
        spec: dict[str, Any] = {
            "spark_version": self.spark_version,
            "node_type_id": node_type,
            "driver_node_type_id": self.driver_node_type_id or node_type,
            "num_workers": self.num_workers,
            "custom_tags": {"voyce": "big-sync"},
            "spark_conf": {"spark.sql.session.timeZone": "UTC"},
            # The JDBC driver in Databricks runtimes is PostgreSQL's own: nothing to install.
            "spark_env_vars": {"TZ": "UTC"},
        }
        if self.spot:
            key, attributes = SPOT_ATTRIBUTES[self.cloud]
            spec[key] = attributes
        return spec
