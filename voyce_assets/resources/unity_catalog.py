"""Creating the catalog: local Delta tables and folders, or Unity Catalog DDL on Databricks.

Both implementations are idempotent and report, per object, whether it was created or was
already there, so ``catalog_setup`` can be re-run at any time.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import pyarrow as pa
from dagster import ConfigurableResource
from pydantic import Field

from voyce_assets.catalog import TABLES, VOLUMES, Table
from voyce_assets.ddl import databricks_ddl
from voyce_assets.resources.databricks_sql import StatementFailed, execute, head
from voyce_assets.resources.lakehouse import Lakehouse


@dataclass(frozen=True)
class SetupAction:
    kind: str  # catalog | schema | table | volume | statement
    name: str
    action: str  # created | exists | evolved | executed
    detail: str = ""


class CatalogSetupError(Exception):
    """An existing object disagrees with the spec in a way setup will not fix silently."""


class UnityCatalog(ConfigurableResource):
    """Creates every schema, table and volume of the catalog spec."""

    @abstractmethod
    def setup(self) -> list[SetupAction]:
        """Create what is missing; report every object."""

    @abstractmethod
    def ddl(self) -> list[str]:
        """The Databricks DDL this catalog corresponds to."""


class LocalUnityCatalog(UnityCatalog):
    """Empty, partitioned Delta tables and volume folders under the local lakehouse."""

    lakehouse: Lakehouse

    def ddl(self) -> list[str]:
        return databricks_ddl(self.lakehouse.catalog)

    def setup(self) -> list[SetupAction]:
        actions = [self._ensure_table(t) for t in TABLES]
        for vol in VOLUMES:
            path = self.lakehouse.volume_path(vol)
            existed = path.is_dir()
            path.mkdir(parents=True, exist_ok=True)
            actions.append(
                SetupAction(
                    "volume", vol.full_name(self.lakehouse.catalog), _verb(existed), str(path)
                )
            )
        return actions

    def _ensure_table(self, table: Table) -> SetupAction:
        from deltalake import DeltaTable

        uri = self.lakehouse.table_uri(table)
        name = table.full_name(self.lakehouse.catalog)
        opts = self.lakehouse.storage_options or None
        if not self.lakehouse.exists(table):
            self.lakehouse.create_table(table)
            return SetupAction("table", name, "created", uri)

        dt = DeltaTable(uri, storage_options=opts)
        if dt.metadata().partition_columns != [table.partition_column]:
            raise CatalogSetupError(
                f"{table.path}: partitioned by {dt.metadata().partition_columns}, "
                f"spec says [{table.partition_column!r}]"
            )
        existing = {f.name: f.type for f in dt.schema().to_arrow()}
        missing = []
        for field in table.arrow_schema():
            if field.name not in existing:
                missing.append(field)
            elif existing[field.name] != field.type:
                raise CatalogSetupError(
                    f"{table.path}: column {field.name} is {existing[field.name]} in Delta, "
                    f"spec says {field.type}"
                )
        if not missing:
            return SetupAction("table", name, "exists", uri)
        _add_columns(dt, missing)
        return SetupAction(
            "table", name, "evolved", "added columns " + ", ".join(f.name for f in missing)
        )


def _add_columns(dt, fields) -> None:
    """Columns the spec gained since the table was created; added as nullable."""
    from deltalake import Field as DeltaField
    from deltalake import Schema as DeltaSchema

    delta_fields = DeltaSchema.from_arrow(pa.schema(fields)).fields
    dt.alter.add_columns([DeltaField(f.name, f.type, nullable=True) for f in delta_fields])


def _verb(existed: bool) -> str:
    return "exists" if existed else "created"


class DatabricksUnityCatalog(UnityCatalog):
    """Runs the Databricks DDL on a SQL warehouse via the Statement Execution API."""

    host: str = Field(description="Workspace URL (DATABRICKS_HOST).")
    token: str = Field(description="Personal access or service principal token (DATABRICKS_TOKEN).")
    warehouse_id: str = Field(description="SQL warehouse that runs the DDL.")
    catalog: str = Field(description="Catalog to create, e.g. voice_feedback_prod.")
    location_root: str | None = Field(
        default=None,
        description="Cloud URI for external tables (<root>/<catalog>/<schema>/<table>); "
        "managed tables when unset.",
    )
    timeout_seconds: int = Field(default=600, description="Per statement, then it is cancelled.")
    poll_interval_seconds: float = Field(
        default=0.5, description="First wait between status polls; doubles up to 5 s."
    )

    def ddl(self) -> list[str]:
        return databricks_ddl(self.catalog, self.location_root)

    def setup(self) -> list[SetupAction]:
        from databricks.sdk import WorkspaceClient

        client = WorkspaceClient(host=self.host, token=self.token)
        return [self._execute(client, stmt) for stmt in self.ddl()]

    def _execute(self, client, statement: str) -> SetupAction:
        try:
            resp = execute(
                client,
                self.warehouse_id,
                statement,
                timeout_seconds=self.timeout_seconds,
                poll_interval_seconds=self.poll_interval_seconds,
            )
        except StatementFailed as exc:
            raise CatalogSetupError(str(exc)) from None
        return SetupAction("statement", head(statement), "executed", resp.statement_id or "")
