"""``delta_maintenance_job``: OPTIMIZE (Z-ORDER where the spec says) then VACUUM every Delta
table of the catalog that exists, weekly (the notebooks' storage-cost advice: OPTIMIZE
regularly, VACUUM keeping 7 days).

What OPTIMIZE and VACUUM mean belongs to the ``unity_catalog`` resource of the environment
(delta-rs locally, SQL on a Databricks warehouse in prod); this op chooses the tables, holds
the retention rule, and reports. A table that fails is that table's error: the others still
run, and the step fails at the end naming every failed table.
"""

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Self

from dagster import (
    AssetObservation,
    Config,
    DefaultScheduleStatus,
    Failure,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    Out,
    Output,
    RunRequest,
    ScheduleEvaluationContext,
    job,
    op,
    schedule,
)
from pydantic import Field, model_validator

from voyce_assets.catalog import TABLES, Table
from voyce_assets.resources import UnityCatalog
from voyce_assets.resources.unity_catalog import (
    DELTA_MIN_RETENTION_HOURS,
    OptimizeResult,
    VacuumResult,
)


class MaintenanceConfig(Config):
    retain_hours: int = Field(
        default=DELTA_MIN_RETENTION_HOURS,
        ge=0,
        description="VACUUM deletes files unreferenced for longer than this (hours); time "
        "travel reaches back this far. Delta refuses less than 168 (7 days) unless "
        "allow_short_retention.",
    )
    recent_days_left: int = Field(
        default=2,
        ge=0,
        description="OPTIMIZE leaves this many newest daily partitions alone (today and "
        "yesterday by default): the hourly runs and the CDC sensor still rewrite them, and a "
        "concurrent rewrite would conflict. 0: every partition.",
    )
    allow_short_retention: bool = Field(
        default=False,
        description="Allow retain_hours below 168. A reader or writer running longer than "
        "the retention can fail or, for a writer, corrupt the table: only for tables nothing "
        "else touches while VACUUM runs.",
    )

    @model_validator(mode="after")
    def _delta_retention_floor(self) -> Self:
        if self.retain_hours < DELTA_MIN_RETENTION_HOURS and not self.allow_short_retention:
            raise ValueError(
                f"retain_hours={self.retain_hours} is below Delta's "
                f"{DELTA_MIN_RETENTION_HOURS}-hour floor; set allow_short_retention: true "
                "to override it"
            )
        return self


@dataclass
class TableOutcome:
    table: Table
    optimized: OptimizeResult | None = None
    vacuumed: VacuumResult | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def metadata(self) -> dict:
        meta: dict = {"seconds": MetadataValue.float(round(self.seconds, 3))}
        if self.optimized:
            o = self.optimized
            meta["optimize"] = MetadataValue.text(_how(o))
            for key in ("files_added", "files_removed", "bytes_added", "bytes_removed"):
                if (value := getattr(o, key)) is not None:
                    meta[key] = MetadataValue.int(value)
        if self.vacuumed:
            meta["retain_hours"] = MetadataValue.int(self.vacuumed.retain_hours)
            if self.vacuumed.files_deleted is not None:
                meta["files_vacuumed"] = MetadataValue.int(self.vacuumed.files_deleted)
        if self.error:
            meta["error"] = MetadataValue.text(self.error)
        return meta


def _how(result: OptimizeResult | None) -> str:
    if result is None:
        return ""
    return f"ZORDER BY ({', '.join(result.z_order)})" if result.z_order else "compaction"


def _cell(value) -> str:
    return "" if value is None else str(value)


def report(outcomes: list[TableOutcome]) -> str:
    """One markdown row per table: what OPTIMIZE rewrote, what VACUUM deleted, or the error."""
    lines = [
        "| table | optimize | files added | files removed | bytes removed | files vacuumed "
        "| error |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        opt, vac = o.optimized, o.vacuumed
        error = (o.error or "").replace("|", "/").replace("\n", " ")
        lines.append(
            f"| `{o.table.path}` | {_how(opt)} | {_cell(opt and opt.files_added)} "
            f"| {_cell(opt and opt.files_removed)} | {_cell(opt and opt.bytes_removed)} "
            f"| {_cell(vac and vac.files_deleted)} "
            f"| {error} |"
        )
    return "\n".join(lines)


def _optimize_before(config: MaintenanceConfig) -> dt.date | None:
    if not config.recent_days_left:
        return None
    today = dt.datetime.now(dt.UTC).date()
    return today - dt.timedelta(days=config.recent_days_left - 1)


def _maintain(unity_catalog: UnityCatalog, table: Table, config: MaintenanceConfig):
    outcome = TableOutcome(table)
    started = time.monotonic()
    step = "OPTIMIZE"
    try:
        outcome.optimized = unity_catalog.optimize(table, before=_optimize_before(config))
        step = "VACUUM"
        outcome.vacuumed = unity_catalog.vacuum(
            table, config.retain_hours, enforce_retention=not config.allow_short_retention
        )
    except Exception as exc:  # one table's failure is recorded; the other tables go on
        outcome.error = f"{step} failed: {type(exc).__name__}: {exc}"
    outcome.seconds = time.monotonic() - started
    return outcome


@op(
    name="delta_maintenance",
    out=Out(Nothing),
    description="OPTIMIZE (Z-ORDER BY the spec's columns, else compaction) then VACUUM every "
    "Delta table of the catalog that exists; per-table metrics in the output metadata and as "
    "an observation on each table's asset.",
)
def delta_maintenance(
    context: OpExecutionContext, config: MaintenanceConfig, unity_catalog: UnityCatalog
) -> Iterator:
    # Refused before any table is touched: an override the engine cannot honour.
    unity_catalog.check_retention(config.retain_hours, not config.allow_short_retention)
    existing = unity_catalog.existing_tables()
    outcomes: list[TableOutcome] = []
    for table in TABLES:
        if table.path not in existing:
            continue
        outcome = _maintain(unity_catalog, table, config)
        outcomes.append(outcome)
        if outcome.error:
            context.log.error(f"{table.path}: {outcome.error}")
        else:
            context.log.info(
                f"{table.path}: {outcome.optimized.files_removed} files rewritten into "
                f"{outcome.optimized.files_added}, "
                f"{_cell(outcome.vacuumed.files_deleted) or 'an uncounted number of'} "
                f"files vacuumed"
            )
        # Yielded, not context.log_event: those would be lost when the step fails below.
        yield AssetObservation(
            asset_key=list(table.key), description="delta_maintenance", metadata=outcome.metadata
        )
    failed = [o.table.path for o in outcomes if o.error]
    metadata = {
        "tables": MetadataValue.int(len(outcomes)),
        "tables_failed": MetadataValue.int(len(failed)),
        "files_removed": MetadataValue.int(
            sum(o.optimized.files_removed or 0 for o in outcomes if o.optimized)
        ),
        "files_added": MetadataValue.int(
            sum(o.optimized.files_added or 0 for o in outcomes if o.optimized)
        ),
        "files_vacuumed": MetadataValue.int(
            sum(o.vacuumed.files_deleted or 0 for o in outcomes if o.vacuumed)
        ),
        "retain_hours": MetadataValue.int(config.retain_hours),
        "report": MetadataValue.md(report(outcomes)),
    }
    context.log.info("delta maintenance\n" + report(outcomes))
    if failed:
        raise Failure(
            description=f"delta maintenance failed for {len(failed)} of {len(outcomes)} "
            f"tables: {', '.join(failed)}",
            metadata={**metadata, "failed": MetadataValue.text(", ".join(failed))},
        )
    yield Output(None, metadata=metadata)


@job(
    name="delta_maintenance_job",
    description="OPTIMIZE (Z-ORDER where the catalog spec says) then VACUUM every Delta table "
    "of the catalog; retention from run config (default 168 hours).",
)
def delta_maintenance_job():
    delta_maintenance()


@schedule(
    name="delta_maintenance_weekly",
    cron_schedule="0 4 * * 0",
    execution_timezone="UTC",
    job=delta_maintenance_job,
    default_status=DefaultScheduleStatus.STOPPED,
    description="Sundays 04:00 UTC, after the weekly training: OPTIMIZE then VACUUM "
    "retaining 7 days.",
)
def delta_maintenance_weekly(context: ScheduleEvaluationContext):
    day = context.scheduled_execution_time.date()
    return RunRequest(
        run_key=f"delta_maintenance:{day}",
        run_config={
            "ops": {"delta_maintenance": {"config": {"retain_hours": DELTA_MIN_RETENTION_HOURS}}}
        },
    )
