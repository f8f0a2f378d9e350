"""Where the catalog's Delta tables and volumes live, per environment.

Tables: ``<root_uri>/<catalog>/<schema>/<table>`` (the layout dagster-deltalake uses with
``root_uri=<root_uri>/<catalog>``, and the LOCATION of the Unity Catalog external tables).
Volumes: ``<volumes_root>/<catalog>/<schema>/<volume>``, i.e. ``/Volumes/...`` on Databricks.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pyarrow as pa
from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from voyce_assets.catalog import Table, Volume
from voyce_assets.ddl import table_properties
from voyce_assets.lake import WriteStats, delta_batches, replace_partitions


def _storage_configs() -> ModuleType:
    """dagster-deltalake's typed storage configs, ``dagster_deltalake.config``, loaded alone.

    The package's ``__init__`` also imports its IO manager, whose ``pyarrow.dataset`` imports
    pandas (about 0.9 s and 55 MB), in every process that only wants these four Config
    classes. The module is registered under its own name, so an ``import dagster_deltalake``
    before or after reuses it: one class per config either way.
    """
    name = "dagster_deltalake.config"
    if name not in sys.modules:
        package = importlib.util.find_spec("dagster_deltalake")
        assert package is not None and package.origin is not None, "dagster-deltalake"
        path = Path(package.origin).with_name("config.py")
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None, path
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


if TYPE_CHECKING:
    from dagster_deltalake import AzureConfig, GcsConfig, LocalConfig, S3Config
else:
    _configs = _storage_configs()
    AzureConfig, GcsConfig, LocalConfig, S3Config = (
        _configs.AzureConfig,
        _configs.GcsConfig,
        _configs.LocalConfig,
        _configs.S3Config,
    )


class Lakehouse(ConfigurableResource):
    """Locations of the Delta tables and volumes of one catalog."""

    catalog: str = Field(description="Unity Catalog name, e.g. voice_feedback_prod.")
    root_uri: str = Field(description="Folder or cloud URI that holds one folder per catalog.")
    volumes_root: str = Field(description="Folder that holds the volumes; /Volumes on Databricks.")
    storage: S3Config | AzureConfig | GcsConfig | LocalConfig = Field(
        default_factory=LocalConfig,
        discriminator="provider",
        description="Typed credentials of the storage behind root_uri (dagster-deltalake's "
        "configs); fields left empty fall back to the cloud's own environment and identity.",
    )
    extra_storage_options: dict[str, str] = Field(
        default_factory=dict, description="Further delta-rs storage options."
    )

    @property
    def storage_options(self) -> dict[str, str]:
        """The delta-rs storage options: the typed credentials, then the extra options."""
        options = {} if isinstance(self.storage, LocalConfig) else self.storage.str_dict()
        options.pop("provider", None)
        return {**options, **self.extra_storage_options}

    @property
    def catalog_uri(self) -> str:
        return f"{self.root_uri.rstrip('/')}/{self.catalog}"

    def table_uri(self, table: Table) -> str:
        return f"{self.catalog_uri}/{table.path}"

    def volume_path(self, volume: Volume) -> Path:
        return Path(self.volumes_root) / self.catalog / volume.schema / volume.name

    def exists(self, table: Table) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(
            self.table_uri(table), storage_options=self.storage_options or None
        )

    def create_table(self, table: Table) -> str:
        """Create the empty Delta table of the spec: its schema, DATE partitioning, properties."""
        from deltalake import DeltaTable

        uri = self.table_uri(table)
        DeltaTable.create(
            uri,
            schema=table.arrow_schema(),
            partition_by=[table.partition_column],
            name=table.name,
            description=table.description,
            configuration=table_properties(table),
            storage_options=self.storage_options or None,
        )
        return uri

    def read(
        self,
        table: Table,
        dates: Sequence[dt.date] | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """The rows of ``dates`` (every row when None), ``columns`` only if given; an empty
        table in the spec's schema when the table was never written."""
        schema = pa.schema([f.with_nullable(True) for f in table.arrow_schema()])
        if columns is not None:
            schema = pa.schema([schema.field(c) for c in columns])
        if not self.exists(table):
            return schema.empty_table()
        batches = list(
            delta_batches(
                self.table_uri(table),
                table,
                None if dates is None else list(dates),
                columns and list(columns),
                self.storage_options,
                # All of it is wanted at once: read several files at a time.
                fragments_ahead=8,
            )
        )
        return pa.Table.from_batches(batches, schema) if batches else schema.empty_table()

    def ensure_table(self, table: Table) -> str:
        """The table's URI, creating the table first if catalog_setup has not run yet."""
        if not self.exists(table):
            self.create_table(table)
        return self.table_uri(table)

    def write_partitions(
        self,
        table: Table,
        data: pa.Table | Iterable[pa.RecordBatch],
        dates: Sequence[dt.date],
    ) -> WriteStats:
        """Make ``dates`` of the table hold exactly ``data`` (one Delta commit, see
        ``lake.replace_partitions``), creating the table first if catalog_setup has not run
        yet; rows that break the spec's NOT NULL columns are held back and counted."""
        batches = data.to_batches() if isinstance(data, pa.Table) else data
        return replace_partitions(
            self.ensure_table(table), table, batches, list(dates), self.storage_options
        )


# Per cloud, the settings of its typed config read from the environment when set (shown in
# the UI as their variable, never their value). Keys held as secrets stay in the environment.
CLOUD_SETTINGS = {
    "s3": (
        S3Config,
        {
            "region": "AWS_REGION",
            "access_key_id": "AWS_ACCESS_KEY_ID",
            "secret_access_key": "AWS_SECRET_ACCESS_KEY",
        },
    ),
    "abfss": (
        AzureConfig,
        {
            "client_id": "AZURE_CLIENT_ID",
            "tenant_id": "AZURE_TENANT_ID",
            "client_secret": "AZURE_CLIENT_SECRET",
        },
    ),
    "gs": (GcsConfig, {"service_account": "GOOGLE_SERVICE_ACCOUNT"}),
}


def cloud_storage(root_uri: str) -> S3Config | AzureConfig | GcsConfig | LocalConfig:
    """The typed storage config for ``root_uri``'s scheme (s3://, abfss://, gs://)."""
    import os

    scheme = root_uri.partition("://")[0] if "://" in root_uri else ""
    if scheme not in CLOUD_SETTINGS:
        return LocalConfig()
    kind, settings = CLOUD_SETTINGS[scheme]
    fields = {k: EnvVar(v) for k, v in settings.items() if os.environ.get(v, "").strip()}
    if kind is AzureConfig:
        # abfss://<container>@<account>.dfs.core.windows.net/...
        host = root_uri.split("://", 1)[1].split("/", 1)[0]
        fields["account_name"] = host.partition("@")[2].split(".", 1)[0]
    return kind(**fields)
