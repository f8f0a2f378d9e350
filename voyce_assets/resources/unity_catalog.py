"""Creating and maintaining the catalog: local Delta tables and folders (delta-rs), or Unity
Catalog DDL and OPTIMIZE / VACUUM on a Databricks SQL warehouse.

Setup is idempotent and reports, per object, whether it was created or was already there, so
``catalog_setup`` can be re-run at any time. Maintenance works on one spec table at a time and
reports what it rewrote and deleted; names in its SQL come from the catalog spec only.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from abc import abstractmethod
from dataclasses import dataclass

from dagster import ConfigurableResource
from pydantic import Field

from voyce_assets.catalog import TABLES, VOLUMES, Table
from voyce_assets.ddl import (
    COLUMN_EXISTS_ERROR,
    PII_READERS_GROUP,
    databricks_ddl,
    table_properties,
)
from voyce_assets.lake import add_columns, expire_change_data
from voyce_assets.resources.databricks_sql import StatementFailed, execute, head, result_table
from voyce_assets.resources.lakehouse import Lakehouse


@dataclass(frozen=True)
class SetupAction:
    kind: str  # catalog | schema | table | volume | statement
    name: str
    action: str  # created | exists | evolved | executed
    detail: str = ""


class CatalogSetupError(Exception):
    """An existing object disagrees with the spec in a way setup will not fix silently."""


# Delta's own floor for VACUUM (delta.deletedFileRetentionDuration defaults to 7 days): a
# reader or writer that started before VACUUM may still need a file removed within it.
DELTA_MIN_RETENTION_HOURS = 168


@dataclass(frozen=True)
class OptimizeResult:
    """What OPTIMIZE rewrote; None where the engine does not say."""

    z_order: tuple[str, ...]
    files_added: int | None
    files_removed: int | None
    bytes_added: int | None = None
    bytes_removed: int | None = None
    # The engine's own metrics, for the record.
    raw: dict = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class VacuumResult:
    """What VACUUM deleted; ``files_deleted`` None where the engine does not count them."""

    retain_hours: int
    files_deleted: int | None


class UnityCatalog(ConfigurableResource):
    """Creates every schema, table and volume of the catalog spec."""

    @abstractmethod
    def setup(self) -> list[SetupAction]:
        """Create what is missing; report every object."""

    @abstractmethod
    def ddl(self) -> list[str]:
        """The Databricks DDL this catalog corresponds to."""

    @abstractmethod
    def existing_tables(self) -> set[str]:
        """``schema/table`` of every spec table that exists in the catalog."""

    @abstractmethod
    def optimize(self, table: Table, before: datetime.date | None = None) -> OptimizeResult:
        """Compact the table's small files, Z-ordered by ``table.z_order`` when it has one;
        only partitions before ``before`` when given (recent days are still being written)."""

    @abstractmethod
    def vacuum(self, table: Table, retain_hours: int, enforce_retention: bool) -> VacuumResult:
        """Delete files the table stopped referencing more than ``retain_hours`` ago.
        ``enforce_retention=False`` lets ``retain_hours`` go below Delta's 168-hour floor."""

    def check_retention(self, retain_hours: int, enforce_retention: bool) -> None:
        """Raise ``ValueError`` when this catalog cannot VACUUM with these settings (asked
        before any table is touched)."""


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
        changes = []
        if missing:
            add_columns(dt, missing)
            changes.append("added columns " + ", ".join(f.name for f in missing))
        # Properties the spec gained since the table was made (e.g. which columns the log
        # keeps statistics of): set, so new commits follow them.
        wanted = table_properties(table)
        held = dt.metadata().configuration
        stale = {k: v for k, v in wanted.items() if held.get(k) != v}
        if stale:
            dt.alter.set_table_properties(stale)
            changes.append("set " + ", ".join(sorted(stale)))
        if not changes:
            return SetupAction("table", name, "exists", uri)
        return SetupAction("table", name, "evolved", "; ".join(changes))

    def existing_tables(self) -> set[str]:
        return {t.path for t in TABLES if self.lakehouse.exists(t)}

    def _delta(self, table: Table):
        from deltalake import DeltaTable

        return DeltaTable(
            self.lakehouse.table_uri(table), storage_options=self.lakehouse.storage_options or None
        )

    def optimize(self, table: Table, before: datetime.date | None = None) -> OptimizeResult:
        dt = self._delta(table)
        filters = [(table.partition_column, "<", before.isoformat())] if before else None
        if table.z_order:
            metrics = dt.optimize.z_order(list(table.z_order), partition_filters=filters)
        else:
            metrics = dt.optimize.compact(partition_filters=filters)
        added, removed = (json.loads(metrics[k]) for k in ("filesAdded", "filesRemoved"))
        return OptimizeResult(
            z_order=table.z_order,
            files_added=metrics["numFilesAdded"],
            files_removed=metrics["numFilesRemoved"],
            bytes_added=added["totalSize"],
            bytes_removed=removed["totalSize"],
            raw=metrics,
        )

    def vacuum(self, table: Table, retain_hours: int, enforce_retention: bool) -> VacuumResult:
        deleted = self._delta(table).vacuum(
            retention_hours=retain_hours,
            dry_run=False,
            enforce_retention_duration=enforce_retention,
        )
        # delta-rs leaves the change feed's files; Databricks' VACUUM deletes them too.
        expired = expire_change_data(self.lakehouse.table_uri(table), retain_hours)
        return VacuumResult(retain_hours=retain_hours, files_deleted=len(deleted) + expired)


def _verb(existed: bool) -> str:
    return "exists" if existed else "created"


class DatabricksUnityCatalog(UnityCatalog):
    """Runs the Databricks DDL, OPTIMIZE and VACUUM on a SQL warehouse via the Statement
    Execution API."""

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
    maintenance_timeout_seconds: int = Field(
        default=4 * 3600,
        description="Per OPTIMIZE or VACUUM: a first Z-ORDER of a large table takes hours.",
    )
    poll_interval_seconds: float = Field(
        default=0.5, description="First wait between status polls; doubles up to 5 s."
    )
    pii_readers_group: str = Field(
        default=PII_READERS_GROUP,
        description="Account group that reads personal data (the raw transcript, users' "
        "email, name, phone); everyone else sees *** (a Unity Catalog column mask).",
    )

    def ddl(self) -> list[str]:
        return databricks_ddl(self.catalog, self.location_root, self.pii_readers_group)

    def setup(self) -> list[SetupAction]:
        client = self._client()
        statements = databricks_ddl(
            self.catalog, self.location_root, self.pii_readers_group, self._columns(client)
        )
        return [self._execute(client, stmt) for stmt in statements]

    def _columns(self, client) -> dict[str, set[str]]:
        """The columns each table of the catalog holds now, by ``schema/table`` (none before
        the first setup): the tables made before the spec gained columns get them added.
        From ``system``'s information schema, which is there before the catalog is."""
        try:
            resp = self._run(
                client,
                "SELECT table_schema, table_name, column_name "
                "FROM system.information_schema.columns WHERE table_catalog = :catalog",
                {"catalog": self.catalog},
            )
        except StatementFailed as exc:
            raise CatalogSetupError(str(exc)) from None
        columns: dict[str, set[str]] = {}
        for r in result_table(client, resp).to_pylist():
            columns.setdefault(f"{r['table_schema']}/{r['table_name']}", set()).add(
                r["column_name"]
            )
        return columns

    def _client(self):
        from databricks.sdk import WorkspaceClient

        return WorkspaceClient(host=self.host, token=self.token)

    def _run(self, client, statement: str, parameters=None, timeout_seconds: int | None = None):
        return execute(
            client,
            self.warehouse_id,
            statement,
            parameters,
            timeout_seconds=timeout_seconds or self.timeout_seconds,
            poll_interval_seconds=self.poll_interval_seconds,
        )

    def existing_tables(self) -> set[str]:
        client = self._client()
        resp = self._run(
            client,
            f"SELECT table_schema, table_name FROM {_ident(self.catalog)}.information_schema.tables",
        )
        rows = result_table(client, resp).to_pylist()
        found = {f"{r['table_schema']}/{r['table_name']}" for r in rows}
        return {t.path for t in TABLES if t.path in found}

    def optimize(self, table: Table, before: datetime.date | None = None) -> OptimizeResult:
        client = self._client()
        resp = self._run(
            client,
            optimize_statement(table, self.catalog, before),
            timeout_seconds=self.maintenance_timeout_seconds,
        )
        rows = result_table(client, resp).to_pylist()
        # OPTIMIZE answers (path, metrics STRUCT), the struct as JSON in JSON_ARRAY results.
        metrics = rows[0].get("metrics") if rows else None
        raw = json.loads(metrics) if isinstance(metrics, str) else (metrics or {})
        return OptimizeResult(
            z_order=table.z_order,
            files_added=raw.get("numFilesAdded"),
            files_removed=raw.get("numFilesRemoved"),
            bytes_added=(raw.get("filesAdded") or {}).get("totalSize"),
            bytes_removed=(raw.get("filesRemoved") or {}).get("totalSize"),
            raw=raw,
        )

    def check_retention(self, retain_hours: int, enforce_retention: bool) -> None:
        if not enforce_retention:
            # The check is the Spark conf spark.databricks.delta.retentionDurationCheck.enabled;
            # a SQL warehouse accepts no such SET, and each API statement is its own session.
            raise ValueError(
                "a SQL warehouse cannot switch Delta's retention check off; lower the table's "
                "delta.deletedFileRetentionDuration instead of overriding the floor"
            )

    def vacuum(self, table: Table, retain_hours: int, enforce_retention: bool) -> VacuumResult:
        self.check_retention(retain_hours, enforce_retention)
        self._run(
            self._client(),
            vacuum_statement(table, self.catalog, retain_hours),
            timeout_seconds=self.maintenance_timeout_seconds,
        )
        # VACUUM (not DRY RUN) answers only the table's path: the count is not reported.
        return VacuumResult(retain_hours=retain_hours, files_deleted=None)

    def _execute(self, client, statement: str) -> SetupAction:
        try:
            resp = self._run(client, statement)
        except StatementFailed as exc:
            if " ADD COLUMNS (" in statement and COLUMN_EXISTS_ERROR in str(exc):
                # Added to the Delta log by the pipeline's writer already: nothing to do.
                return SetupAction("statement", head(statement), "exists")
            raise CatalogSetupError(str(exc)) from None
        return SetupAction("statement", head(statement), "executed", resp.statement_id or "")


def _ident(name: str) -> str:
    """A quoted Databricks identifier (a backtick inside doubled)."""
    return "`" + name.replace("`", "``") + "`"


def _full_name(table: Table, catalog: str) -> str:
    return ".".join(_ident(n) for n in (catalog, table.schema, table.name))


def optimize_statement(table: Table, catalog: str, before: datetime.date | None = None) -> str:
    """``OPTIMIZE`` of a spec table (its partitions before ``before`` when given), ``ZORDER
    BY`` its spec columns when it has some."""
    statement = f"OPTIMIZE {_full_name(table, catalog)}"
    if before is not None:
        # A date object's ISO form: no text from outside reaches the statement.
        statement += f" WHERE {_ident(table.partition_column)} < DATE'{before.isoformat()}'"
    if table.z_order:
        statement += f" ZORDER BY ({', '.join(_ident(c) for c in table.z_order)})"
    return statement


def vacuum_statement(table: Table, catalog: str, retain_hours: int) -> str:
    # int(): the one number in the statement is never text from outside.
    return f"VACUUM {_full_name(table, catalog)} RETAIN {int(retain_hours)} HOURS"
