"""Analytics tables computed by one SQL file each: the asset builder they share.

Every analytics table is ``sql/<name>.sql`` (Spark SQL, parameters ``:start_date`` and
``:end_date``, the run's first and last day) run by the ``sql_engine`` resource over the
tables it names. The builder owns what they have in common: which days of each input are
read, waiting for upstream days never materialized, writing the run's partitions in one
transaction, and each partition's row count and preview.

The same text must mean the same on Spark and, transpiled, on DuckDB (the parity tests run
both). What that takes: rates of nothing are ``CASE WHEN d = 0 THEN NULL ELSE n / d END``,
counts are ``SUM(CASE ...)`` (DuckDB's COUNT_IF of only NULLs is NULL); percentiles are
``percentile_cont(p) WITHIN GROUP (ORDER BY x)`` in a GROUP BY (``percentile`` becomes a
discrete quantile on DuckDB); ``date_trunc`` and date arithmetic are cast back to DATE;
``sequence`` of dates takes ``INTERVAL 1 DAY``; no ``dayofweek`` (numbered differently);
decimal literals (``60.0``) make DECIMALs on both, so divide by integers or cast to DOUBLE.
"""

import datetime as dt
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    RetryPolicy,
)

from voyce_assets.analytics.sql_macros import render
from voyce_assets.automation import daily_then_late
from voyce_assets.catalog import Table, table
from voyce_assets.charts import markdown_table
from voyce_assets.partitions import by_partition, partition_dates, record_partitions
from voyce_assets.resources import Lakehouse
from voyce_assets.resources.sql_engine import SqlEngine
from voyce_assets.tables import table_asset
from voyce_assets.upstream import require_upstream

SQL_DIR = Path(__file__).parent / "sql"
PREVIEW_ROWS = 10
# The seed's Job 4: daily at 01:00 with one retry.
ANALYTICS_RETRY = RetryPolicy(max_retries=1, delay=60)

# Input.days: how much of a table a run reads.
HISTORY = "history"  # every partition up to the run's last day
WHOLE = "whole"  # every partition (lookups such as tags, whatever day they were made)


@dataclass(frozen=True)
class Input:
    """A table the SQL reads and which of its partitions: ``days`` = 0 for the run's days,
    n for those and the n days before the first, or ``HISTORY`` / ``WHOLE``.

    ``required``: the run's days of this table must have been materialized, or the asset
    waits (fails naming them) rather than write partial numbers."""

    path: str
    days: int | str = 0
    required: bool = True

    @property
    def name(self) -> str:
        return self.path.replace("/", ".")


def sql_text(name: str) -> str:
    """``sql/<name>.sql`` as the engines run it: its ``{{ macros }}`` rendered."""
    return render((SQL_DIR / f"{name}.sql").read_text())


def read_dates(days: int | str, dates: Sequence[dt.date]) -> list[dt.date] | None:
    """The partitions an input reads for a run over ``dates`` (None: read whole)."""
    if isinstance(days, str):
        return None
    first = min(dates) - dt.timedelta(days=days)
    return [first + dt.timedelta(days=i) for i in range((max(dates) - first).days + 1)]


def loaders(lakehouse: Lakehouse, inputs: Sequence[Input], dates: Sequence[dt.date]):
    """``{schema.table: function reading it}``: an engine that reads the catalog itself (a
    SQL warehouse) never calls them; each reads once."""

    def load(spec: Input) -> pa.Table:
        data = lakehouse.read(table(spec.path), read_dates(spec.days, dates))
        if spec.days == HISTORY:
            column = data.column(table(spec.path).partition_column)
            data = data.filter(pc.less_equal(column, pa.scalar(max(dates), pa.date32())))
        return data

    return {spec.name: functools.cache(functools.partial(load, spec)) for spec in inputs}


def wait_for_upstream(context: AssetExecutionContext, inputs: Sequence[Input]) -> None:
    """Fail, naming them, when a required input lacks one of the run's days: numbers made of
    part of a day would look like real ones (``upstream.require_upstream``)."""
    require_upstream(context, [i.path for i in inputs if i.required])


def as_table_rows(result: pa.Table, spec: Table, created_at: dt.datetime) -> pa.Table:
    """The engine's result in the table's schema, ``created_at`` stamped. A column the SQL
    does not produce, or one it produces that the table lacks, is an error."""
    schema = pa.schema([f.with_nullable(True) for f in spec.arrow_schema()])
    expected = [f.name for f in schema if f.name != "created_at"]
    if sorted(result.column_names) != sorted(expected):
        raise ValueError(
            f"{spec.path}: the SQL gives columns {result.column_names}, the table has {expected}"
        )
    columns = {}
    for field in schema:
        if field.name == "created_at":
            columns[field.name] = pa.array([created_at] * result.num_rows, field.type)
        else:
            columns[field.name] = result.column(field.name).cast(field.type)
    return pa.table(columns, schema=schema)


def preview(rows: Sequence[Mapping[str, Any]], spec: Table) -> Any:
    """The first rows, without free text (an action item's description ...): Dagster's event
    log cannot forget one person."""
    columns = [
        c.name
        for c in spec.columns
        if c.name not in ("created_at", spec.partition_column) and not c.sensitive
    ]
    return markdown_table(rows[:PREVIEW_ROWS], columns)


# Hooks a table adds to the shared body. ``extra_metadata(context, lakehouse, rows, dates)``:
# more metadata per partition key; ``checks(lakehouse, dates)``: check results read back
# from the written table; ``complete(context, rows)``: the SQL's rows with the columns no
# table holds filled in (from the instance's event log, say) before they are written;
# ``to_rows(context, result)``: the rows to write made from a result that is not yet them
# (quantities to price, say), instead of ``as_table_rows``.
ExtraMetadata = Callable[[AssetExecutionContext, Lakehouse, list[dict], list[dt.date]], dict]
Checks = Callable[[Lakehouse, list[dt.date]], list[AssetCheckResult]]
Complete = Callable[[AssetExecutionContext, pa.Table], pa.Table]
ToRows = Callable[[AssetExecutionContext, pa.Table], pa.Table]


def build_sql_asset(
    path: str,
    inputs: Sequence[Input],
    *,
    description: str = "",
    check_specs: Mapping[str, str] | None = None,
    checks: Checks | None = None,
    extra_metadata: ExtraMetadata | None = None,
    complete: Complete | None = None,
    to_rows: ToRows | None = None,
    event_log_deps: Sequence[str] = (),
    resources: Sequence[str] = (),
) -> AssetsDefinition:
    """The asset of analytics table ``path``, computed by ``sql/<name>.sql`` over ``inputs``.

    ``event_log_deps``: tables the asset reads from the instance's event log, not the lake
    (upstream all the same; one that is not an input need not exist); ``resources``: the
    resource keys the hooks use besides ``lakehouse`` and ``sql_engine``."""
    spec = table(path)
    sql_name = spec.name

    @table_asset(
        path,
        deps=[i.path for i in inputs] + list(event_log_deps),
        retry_policy=ANALYTICS_RETRY,
        automation_condition=daily_then_late(
            may_be_missing=[i.path for i in inputs if not i.required]
            + [p for p in event_log_deps if p not in {i.path for i in inputs}]
        ),
        kinds={"sql"},
        required_resource_keys={"lakehouse", "sql_engine", *resources},
        checks=check_specs,
        description=f"Computed by `analytics/sql/{sql_name}.sql` (Spark SQL; DuckDB locally "
        "through sqlglot)." + (f" {description}" if description else ""),
    )
    def _asset(context: AssetExecutionContext) -> MaterializeResult:
        lakehouse: Lakehouse = context.resources.lakehouse
        engine: SqlEngine = context.resources.sql_engine
        dates = partition_dates(context)
        wait_for_upstream(context, inputs)
        reads: dict[str, Any] = loaders(lakehouse, inputs, dates)
        result = engine.run(
            sql_text(sql_name), reads, {"start_date": min(dates), "end_date": max(dates)}
        )
        if to_rows is not None:
            rows = to_rows(context, result)
        else:
            rows = as_table_rows(result, spec, dt.datetime.now(dt.UTC))
        if complete is not None:
            rows = complete(context, rows)
        lakehouse.write_partitions(spec, rows, dates)
        pylist = rows.to_pylist()
        per_day = by_partition(context, pylist, lambda r: r[spec.partition_column])
        extra = extra_metadata(context, lakehouse, pylist, dates) if extra_metadata else {}
        record_partitions(
            context,
            {
                key: {
                    "dagster/partition_row_count": len(day),
                    "preview": preview(day, spec),
                    **extra.get(key, {}),
                }
                for key, day in per_day.items()
            },
        )
        return MaterializeResult(
            metadata={"engine": engine.name},
            check_results=checks(lakehouse, dates) if checks else [],
        )

    return _asset
