"""The prod ``big_sync``: a big full sync as a one-time run on a new CPU job cluster.

The GPU steps' Pipes launch path (``resources/pipes_launcher.py``) with a second cluster
spec (``big_sync.CpuJobCluster``): the runner script and the code zip are staged on the
Unity Catalog volume, Dagster Pipes starts the run and follows it, and the sync's result
comes back as one custom message. On the cluster ``remote/big_sync_main.py`` runs the same
``sync_table`` as a local run, with the cluster's SparkSession reading over JDBC and the
driver writing Delta with deltalake, so every check is the host path's.

Only the mirror's step waits on the host (its snapshot and evidence are taken on the cluster,
next to the rows). Secrets never travel: the cluster reads the app database's credentials
from the ``voice-feedback`` secret scope (``{{secrets/...}}`` references in its environment)
and writes Delta with its own identity.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from dagster import EnvVar
from pydantic import Field

from voyce_assets.catalog import Table
from voyce_assets.ingestion.big_sync import BigSync, CpuJobCluster
from voyce_assets.ingestion.placement import Outside
from voyce_assets.ingestion.source import SourceShape
from voyce_assets.ingestion.sync import SyncResult
from voyce_assets.lake import WriteStats
from voyce_assets.settings import SECRET_KEYS, SECRET_SCOPE, from_env, secret_env

RUNNER = Path(__file__).parent / "remote" / "big_sync_main.py"
# What the cluster's side rebuilds its resources from (never secrets: see ``secret_refs``).
FORWARDED = (
    "VOYCE_ENV",
    "VOYCE_CATALOG",
    "VOYCE_LAKEHOUSE_ROOT",
    "VOYCE_VOLUMES_ROOT",
    "VOYCE_PARTITIONS_START",
    "AWS_REGION",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "GOOGLE_SERVICE_ACCOUNT",
)
RESULT_MESSAGE = "voyce/big_sync_result"


def secret_refs() -> dict[str, str]:
    """The app database's settings as Databricks secret references: resolved by the cluster
    when it starts, so no value is ever part of the run's spec."""
    return {
        secret_env(k): f"{{{{secrets/{SECRET_SCOPE}/{k}}}}}"
        for k in SECRET_KEYS
        if k.startswith("postgres-")
    }


def encode_result(result: SyncResult) -> str:
    """The sync's result as JSON text: data only, never code (the message is read back from
    the volume, which others may write to; see ``decode_result``)."""
    stats = dataclasses.asdict(result.stats)
    stats["rows_per_partition_organization"] = [
        [day, org, n] for (day, org), n in result.stats.rows_per_partition_organization.items()
    ]
    return json.dumps(
        {
            "table": result.table.path,
            "mode": result.mode,
            "dates": [d.isoformat() for d in result.dates],
            "shape": dataclasses.asdict(result.shape),
            "stats": stats,
            "source_seconds": result.source_seconds,
            "total_seconds": result.total_seconds,
            "source_counts": result.source_counts,
            "mirror_counts": result.mirror_counts,
            "duplicate_ids": result.duplicate_ids,
            "duplicate_count": result.duplicate_count,
            "duplicate_rows_dropped": result.duplicate_rows_dropped,
            "checksummed": result.checksummed,
            "outside": None if result.outside is None else dataclasses.asdict(result.outside),
            "unrepresentable": dataclasses.asdict(result.unrepresentable),
            "future": dataclasses.asdict(result.future),
            "engine": result.engine,
            "repaired": result.repaired,
            "withheld": result.withheld,
        },
        default=str,
    )


def decode_result(text: str) -> SyncResult:
    """The ``SyncResult`` of ``encode_result``'s text. JSON only, read into the known fields:
    whoever can write the volume can spoil a result, never run code here."""
    from voyce_assets.catalog import table as table_spec

    data = json.loads(text)

    def counts(value: dict) -> dict[str, tuple[int, int]]:
        return {day: tuple(pair) for day, pair in value.items()}

    stats = dict(data["stats"])
    stats["rows_per_partition_organization"] = {
        (day, org): n for day, org, n in stats["rows_per_partition_organization"]
    }
    return SyncResult(
        table=table_spec(data["table"]),
        mode=data["mode"],
        dates=[dt.date.fromisoformat(d) for d in data["dates"]],
        shape=SourceShape(**data["shape"]),
        stats=WriteStats(**stats),
        source_seconds=data["source_seconds"],
        total_seconds=data["total_seconds"],
        source_counts=counts(data["source_counts"]),
        mirror_counts=counts(data["mirror_counts"]),
        duplicate_ids=data["duplicate_ids"],
        duplicate_count=data["duplicate_count"],
        duplicate_rows_dropped=data["duplicate_rows_dropped"],
        checksummed=data["checksummed"],
        outside=None if data["outside"] is None else Outside(**data["outside"]),
        unrepresentable=Outside(**data["unrepresentable"]),
        future=Outside(**data["future"]),
        engine=data["engine"],
        repaired=data["repaired"],
        withheld=data["withheld"],
    )


class DatabricksSparkSync(BigSync):
    """Runs a big sync on a new CPU job cluster through Dagster Pipes."""

    host: str = Field(description="DATABRICKS_HOST, with its scheme.")
    token: str = Field(description="DATABRICKS_TOKEN (from the environment; never shown).")
    volume: str | None = Field(
        default=None,
        description="VOYCE_PIPES_VOLUME: staging and Pipes messages; unset, big syncs stay "
        "on the host (a deployment without it still syncs).",
    )
    cluster: CpuJobCluster = Field(description="The CPU job cluster (VOYCE_CPU_*).")
    wheel: str | None = Field(default=None, description="VOYCE_WHEEL, installed on the cluster.")
    poll_interval_seconds: float = Field(default=10.0)
    max_wait_seconds: int = Field(default=6 * 3600, description="Then the run is cancelled.")
    cancel_wait_seconds: int = Field(default=600)

    def choose(self, conn, table, dates, pg_schema="public") -> tuple[str, str]:
        engine, why = super().choose(conn, table, dates, pg_schema)
        if engine == "spark" and not self.volume:
            return "host", f"{why}, but no VOYCE_PIPES_VOLUME to stage the CPU cluster's run on"
        return engine, why

    def task(self, staging: str, params: dict[str, Any]) -> dict[str, Any]:
        """The submitted task: the runner on the CPU cluster, the project as its libraries."""
        from voyce_assets.resources.gpu_cluster import project_requirements

        cluster = self.cluster.new_cluster()
        cluster["spark_env_vars"] = {
            **cluster.get("spark_env_vars", {}),
            **{k: os.environ[k] for k in FORWARDED if k in os.environ},
            **secret_refs(),
        }
        libraries: list[dict[str, Any]] = [{"pypi": {"package": r}} for r in project_requirements()]
        if self.wheel:
            libraries.insert(0, {"whl": self.wheel})
        return {
            "task_key": "voyce-big-sync",
            "new_cluster": cluster,
            "libraries": libraries,
            "spark_python_task": {
                "python_file": f"{staging}/{RUNNER.name}",
                "parameters": [f"{staging}/code.zip"],
            },
            "timeout_seconds": self.max_wait_seconds,
        }

    def sync(
        self, context, app_db, table, uri, dates, pg_schema, storage_options, bounds, tombstones
    ) -> SyncResult:
        from dagster_databricks.pipes import (
            PipesUnityCatalogVolumesContextInjector,
            PipesUnityCatalogVolumesMessageReader,
        )
        from dagster_pyspark.utils import build_pyspark_zip
        from databricks.sdk import WorkspaceClient
        from databricks.sdk.service import jobs

        from voyce_assets.resources.databricks_runs import end_live_runs
        from voyce_assets.resources.gpu_cluster import code_package_dir
        from voyce_assets.resources.pipes_launcher import _client_class

        client = WorkspaceClient(host=self.host, token=self.token)
        name = f"voyce big sync {run_label(table, dates)}"
        end_live_runs(
            client, name, context.log, self.cancel_wait_seconds, self.poll_interval_seconds
        )
        staging = f"{self.volume.rstrip('/')}/dagster_staging/{context.run_id}/big_sync"
        client.files.upload(
            f"{staging}/{RUNNER.name}", io.BytesIO(RUNNER.read_bytes()), overwrite=True
        )
        with tempfile.TemporaryDirectory() as tmp:
            zip_path = os.path.join(tmp, "code.zip")
            build_pyspark_zip(zip_path, str(code_package_dir()))
            with open(zip_path, "rb") as handle:
                client.files.upload(f"{staging}/code.zip", handle, overwrite=True)
        pipes = _client_class()(
            client=client,
            context_injector=PipesUnityCatalogVolumesContextInjector(
                client=client, volume_path=self.volume
            ),
            message_reader=PipesUnityCatalogVolumesMessageReader(
                client=client, volume_path=self.volume, include_stdio_in_messages=False
            ),
            poll_interval_seconds=self.poll_interval_seconds,
        )
        pipes.max_wait_seconds = self.max_wait_seconds
        params = {
            "table": table.path,
            "dates": [d.isoformat() for d in dates],
            "pg_schema": pg_schema,
            "num_partitions": self.num_partitions,
            "fetch_size": self.fetch_size,
            "chunk_rows": self.chunk_rows,
        }
        invocation = pipes.run(
            context=context,
            task=jobs.SubmitTask.from_dict(self.task(staging, params)),
            submit_args={"run_name": name},
            extras=params,
        )
        for message in invocation.get_custom_messages():
            if isinstance(message, dict) and message.get("kind") == RESULT_MESSAGE:
                return decode_result(message["result"])
        raise RuntimeError(f"the big sync run {name!r} ended without a result")


def prod_stores():
    """The app database and the lakehouse as prod builds them, on the cluster (their
    settings from the environment the run was given)."""
    from voyce_assets.resources import prod_resources

    resources = prod_resources()
    return (
        resources["app_db"].process_config_and_initialize(),
        resources["lakehouse"].process_config_and_initialize(),
    )


def run_remote(params: dict[str, Any], app_db, lakehouse, spark) -> SyncResult:
    """The sync a big-sync run makes where it runs: ``params`` (the Pipes extras ``sync``
    sends), the stores, and the session there."""
    from voyce_assets.catalog import table as table_spec
    from voyce_assets.ingestion.placement import partition_bounds
    from voyce_assets.ingestion.spark_sync import SparkJdbcReader, jdbc_source
    from voyce_assets.ingestion.sync import sync_table
    from voyce_assets.privacy.tombstones import erased_hashes

    table = table_spec(params["table"])
    dates = [dt.date.fromisoformat(d) for d in params["dates"]]
    uri = lakehouse.ensure_table(table)
    with app_db.connect() as conn:
        reader = SparkJdbcReader(
            spark,
            jdbc_source(conn),
            num_partitions=params["num_partitions"],
            fetch_size=params["fetch_size"],
            chunk_rows=params["chunk_rows"],
        )
        return sync_table(
            conn,
            table,
            uri,
            dates,
            None,
            params["pg_schema"],
            lakehouse.storage_options,
            bounds=partition_bounds(),
            tombstones=erased_hashes(lakehouse),
            reader=reader,
        )


def run_label(table: Table, dates: list[dt.date]) -> str:
    first, last = min(dates), max(dates)
    return f"{table.path} [{first}]" if first == last else f"{table.path} [{first}...{last}]"


def databricks_spark_sync(**settings) -> DatabricksSparkSync:
    """The prod ``big_sync``: settings from the environment, as the GPU launchers'."""
    from voyce_assets.resources.gpu_launcher import CLOUD_OF_SCHEME

    scheme = os.environ.get("VOYCE_LAKEHOUSE_ROOT", "").partition("://")[0]
    cluster = CpuJobCluster(
        cloud=CLOUD_OF_SCHEME.get(scheme, "aws"),
        **from_env(
            spark_version="VOYCE_CPU_SPARK_VERSION",
            node_type_id="VOYCE_CPU_NODE_TYPE",
            driver_node_type_id="VOYCE_CPU_DRIVER_NODE_TYPE",
            num_workers=("VOYCE_CPU_WORKERS", int),
        ),
    )
    return DatabricksSparkSync(
        host=EnvVar("DATABRICKS_HOST"),
        token=EnvVar("DATABRICKS_TOKEN"),
        cluster=cluster,
        **from_env(wheel="VOYCE_WHEEL", volume="VOYCE_PIPES_VOLUME"),
        **settings,
    )
