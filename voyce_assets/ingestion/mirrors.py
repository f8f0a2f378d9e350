"""The six app tables mirrored from PostgreSQL into ``raw_data`` (the ingestion stage's assets).

Each mirror is a daily-partitioned asset. A plain materialization (UI, backfill, the daily
full-sync schedule) replaces its partitions with the source's rows; a run requested by the CDC
sensor (``mode: incremental``) merges only the rows changed after the sensor's cursor. Every
materialization checks itself: primary key, required columns, schema drift, and a blocking
reconciliation of row counts and content checksums between PostgreSQL and Delta.
"""

import datetime as dt
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetsDefinition,
    Backoff,
    Config,
    Jitter,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
)
from pydantic import Field

from voyce_assets.catalog import APP_TABLES, Table
from voyce_assets.ingestion.big_sync import BigSync
from voyce_assets.ingestion.placement import RULE, partition_bounds
from voyce_assets.ingestion.sync import Cursor, SyncResult, sync_table
from voyce_assets.lake import open_dataset, partition_files
from voyce_assets.partitions import partition_dates, record_partitions
from voyce_assets.privacy.tombstones import erased_hashes
from voyce_assets.resources import AppDatabase, Lakehouse, Pricing
from voyce_assets.resources.app_db import APP_DB_POOL
from voyce_assets.tables import table_asset

# Like the notebooks' ingestion job (3 retries), with backoff so a restarting database has time.
INGEST_RETRY = RetryPolicy(
    max_retries=3, delay=5, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)
PREVIEW_ROWS = 5


class RawSyncConfig(Config):
    """How a run syncs the table. The CDC sensor sets incremental mode and the cursor."""

    mode: Literal["full", "incremental"] = Field(
        default="full", description="full: replace the partitions; incremental: merge changes."
    )
    since_ts: str | None = Field(default=None, description="incremental: changes after this time")
    since_id: str | None = Field(default=None, description="... and, at that time, this id")
    days: list[str] | None = Field(
        default=None,
        description="incremental over a range: the days (YYYY-MM-DD) of the range that "
        "changed; the others are left as they are. None: every day of the run.",
    )
    pg_schema: str = Field(default="public", description="Schema of the app tables.")


def _check_results(result: SyncResult) -> list[AssetCheckResult]:
    table, stats = result.table, result.stats
    pk_nulls = sum(stats.quarantined_columns.get(k, 0) for k in table.primary_key)
    pk_ok = pk_nulls == 0 and result.duplicate_count == 0
    other_nulls = {k: v for k, v in stats.quarantined_columns.items() if k not in table.primary_key}
    mismatched = result.mismatched
    outside, odd = result.outside, result.unrepresentable
    unplaced = []
    if outside and outside.rows:
        unplaced.append(
            f"{outside.rows} rows of the app table have a created_at no partition holds "
            "(NULL, before the first or after the last day)"
        )
    if odd.rows:
        unplaced.append(f"{odd.rows} rows of the run's days have an infinite timestamp")
    if result.future.rows:
        # Mirrored, but their later edits stay unseen by the CDC until the stamp's time.
        unplaced.append(
            f"{result.future.rows} rows are stamped over a day ahead (CDC cannot follow them)"
        )
    return [
        AssetCheckResult(
            check_name="primary_key",
            passed=pk_ok,
            # What it finds was kept out of the mirror before the commit: a warning to fix
            # the source, not a table to distrust.
            severity=AssetCheckSeverity.WARN,
            description=None
            if pk_ok
            else f"{result.duplicate_count} repeated and {pk_nulls} null keys in the app DB, "
            "kept out of the mirror",
            metadata={
                "null_keys": pk_nulls,
                "duplicate_keys": result.duplicate_count,
                "duplicate_ids": MetadataValue.json(result.duplicate_ids),
                "rows_dropped": result.duplicate_rows_dropped,
                "rule": RULE,
                "rows_with_null_key": MetadataValue.json(
                    [
                        r
                        for r in stats.quarantine_preview
                        if any(r.get(k) is None for k in table.primary_key)
                    ]
                ),
                "evaluated": "duplicates: full syncs only"
                if result.mode == "incremental"
                else "all",
            },
        ),
        AssetCheckResult(
            check_name="required_columns",
            passed=not other_nulls,
            metadata={
                "nulls_by_column": MetadataValue.json(other_nulls),
                "quarantined_rows": stats.quarantined,
                "preview": MetadataValue.json(stats.quarantine_preview),
            },
        ),
        AssetCheckResult(
            check_name="reconciliation",
            passed=not mismatched,
            metadata={
                "compared": "row count + content checksum" if result.checksummed else "row count",
                "repaired_partitions": MetadataValue.json(result.repaired),
                "partitions": len(result.source_counts),
                "source_rows": sum(n for n, _ in result.source_counts.values()),
                "mirror_rows": sum(n for n, _ in result.mirror_counts.values()),
                "mismatched_partitions": MetadataValue.json(mismatched),
                # Rows of the app holding an erased id: out of the mirror and of the counts.
                "erased_rows_withheld": sum(result.withheld.values()),
            },
        ),
        AssetCheckResult(
            check_name="rows_placed",
            passed=not unplaced,
            severity=AssetCheckSeverity.WARN,
            description="; ".join(unplaced) if unplaced else None,
            metadata={
                "rows_outside_partitions": outside.rows if outside else 0,
                "ids": MetadataValue.json(outside.ids if outside else []),
                "rows_with_infinite_timestamps": odd.rows,
                "infinite_timestamp_ids": MetadataValue.json(odd.ids),
                "rows_stamped_ahead": result.future.rows,
                "stamped_ahead_ids": MetadataValue.json(result.future.ids),
            },
        ),
        AssetCheckResult(
            check_name="schema_drift",
            passed=not result.shape.drifted,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "new_source_columns": MetadataValue.json(result.shape.extra_columns),
                "missing_nullable_columns": MetadataValue.json(result.shape.missing_nullable),
            },
        ),
    ]


def _cost_rows(context, result: SyncResult, pricing: Pricing) -> dict[str, list[dict]]:
    """Cost rows per partition: records synced per organization, and the run's compute time
    shared out by the partitions' rows (evenly when nothing was synced). A cost is dated by
    the partition it was spent on (the day of the data, as every stage's costs are), the day
    it was spent is in its metadata; analytics.cost_tracking collects them from here."""
    synced_on = dt.datetime.now(dt.UTC).date().isoformat()
    resource_id = result.table.full_name("")[1:]

    def cost(key: str, price: str, quantity: float, org: str | None = None) -> dict:
        return pricing.cost_row(
            price,
            quantity,
            f"{result.mode}_sync",
            resource_id,
            org,
            dt.date.fromisoformat(key),
            context.run_id,
            metadata={"stage": "ingestion", "spent_on": synced_on},
            partition=key,
        )

    keys = [d.isoformat() for d in result.dates]
    rows = result.stats.rows_per_partition
    total = sum(rows.get(k, 0) for k in keys)
    out: dict[str, list[dict]] = {k: [] for k in keys}
    by_org = sorted(result.stats.rows_per_partition_organization.items(), key=str)
    for (key, org), n in by_org:
        out.setdefault(key, []).append(cost(key, "ingestion.record", n, org))
    for key in keys:
        if not out[key] and rows.get(key):
            # A table without an organization column (tags): one row for the partition.
            out[key].append(cost(key, "ingestion.record", rows[key]))
        share = rows.get(key, 0) / total if total else 1 / len(keys)
        out[key].append(cost(key, "compute.second", round(result.total_seconds * share, 3)))
    return out


def _previews(lakehouse: Lakehouse, table: Table, dates: list[dt.date]) -> dict[str, MetadataValue]:
    """The first rows of each partition (personal data masked), the table opened once."""
    dataset = open_dataset(lakehouse.table_uri(table), table, lakehouse.storage_options)
    header = "| " + " | ".join(table.column_names) + " |\n|" + "---|" * len(table.column_names)
    out = {}
    for day in dates:
        first = dataset.head(
            PREVIEW_ROWS, filter=pc.field(table.partition_column) == pa.scalar(day, pa.date32())
        )
        rows = [table.mask(r) for r in first.to_pylist()]
        lines = ["| " + " | ".join(str(r[c])[:40] for c in table.column_names) + " |" for r in rows]
        out[day.isoformat()] = MetadataValue.md(
            header + "\n" + "\n".join(lines) if rows else "_no rows_"
        )
    return out


def _days_of_run(config: RawSyncConfig, run_dates: list[dt.date]) -> list[dt.date]:
    """The days an incremental run over a range merges: ``config.days``, each inside the run."""
    if config.mode != "incremental":
        raise ValueError("days: only an incremental run merges some of its days")
    try:
        days = sorted({dt.date.fromisoformat(d) for d in config.days})
    except ValueError as exc:
        raise ValueError(f"days: not a list of YYYY-MM-DD dates: {config.days}") from exc
    outside = [d.isoformat() for d in days if d not in set(run_dates)]
    if not days or outside:
        raise ValueError(f"days: {outside or 'none'} not among the run's partitions")
    return days


def build_mirror(table: Table, retry_policy: RetryPolicy = INGEST_RETRY) -> AssetsDefinition:
    @table_asset(
        table.path,
        description=f"Mirrored from the app's PostgreSQL table `{table.name}`.",
        retry_policy=retry_policy,
        checks={
            "primary_key": "Primary key unique and not null in the app DB (the mirror keeps "
            "one row per key either way; repeats and nulls are named here).",
            "required_columns": "NOT NULL columns have values.",
            "reconciliation": "Per partition, row count and content checksum in PostgreSQL "
            "equal Delta's.",
            "schema_drift": "Source columns match the spec.",
            "rows_placed": "Every row of the app table has a created_at inside the partitions "
            "and timestamps Delta can hold (others are named, not mirrored).",
        },
        blocking_checks=["reconciliation"],
        # A step of any run (a UI backfill too) takes a slot of the ingestion limit.
        pool=APP_DB_POOL,
    )
    def mirror(
        context: AssetExecutionContext,
        config: RawSyncConfig,
        app_db: AppDatabase,
        lakehouse: Lakehouse,
        pricing: Pricing,
        big_sync: BigSync,
    ) -> MaterializeResult:
        dates = partition_dates(context)
        since = None
        if config.days is not None:
            dates = _days_of_run(config, dates)
        if config.mode == "incremental":
            if not (config.since_ts and config.since_id):
                raise ValueError(
                    "incremental mode needs since_ts and since_id (set by the CDC sensor)"
                )
            since = Cursor(config.since_ts, config.since_id)
        uri = lakehouse.ensure_table(table)
        # Erased subjects the app still holds stay out of the mirror (read once per run).
        tombstones = erased_hashes(lakehouse)
        with app_db.connect() as conn:
            # A full sync of many rows (an initial load, a backfill) reads with Spark.
            engine, why = (
                ("host", "an incremental sync merges its changes on the host")
                if since
                else big_sync.choose(conn, table, dates, config.pg_schema)
            )
            if engine == "host":
                result = sync_table(
                    conn,
                    table,
                    uri,
                    dates,
                    since,
                    config.pg_schema,
                    lakehouse.storage_options,
                    bounds=partition_bounds(),
                    tombstones=tombstones,
                )
        if engine == "spark":
            context.log.info(f"{table.path}: Spark JDBC sync ({why})")
            result = big_sync.sync(
                context,
                app_db,
                table,
                uri,
                dates,
                config.pg_schema,
                lakehouse.storage_options,
                partition_bounds(),
                tombstones,
            )
        stats = result.stats
        withheld = sum(result.withheld.values())
        context.log.info(
            f"{config.mode} sync of {table.path} for {dates[0]}..{dates[-1]}: "
            f"{stats.rows_written} rows in {result.total_seconds:.2f}s"
            + (f", {stats.quarantined} quarantined" if stats.quarantined else "")
            + (f", {withheld} withheld as erased" if withheld else "")
        )
        costs = _cost_rows(context, result, pricing)
        # One read of the log: the run's partitions, and the whole table's size.
        every = partition_files(uri, table, None, lakehouse.storage_options)
        files = {d.isoformat(): every.get(d.isoformat(), (0, 0)) for d in dates}
        previews = _previews(lakehouse, table, dates)
        record_partitions(
            context,
            {
                key: {
                    "dagster/partition_row_count": files[key][0],
                    "rows_synced": stats.rows_per_partition.get(key, 0),
                    # Rows of the app holding an erased subject's id, left out (a count only).
                    "erased_rows_withheld": result.withheld.get(key, 0),
                    "bytes": files[key][1],
                    "preview": previews[key],
                    "cost_rows": MetadataValue.json(costs[key]),
                    "cost_usd": float(sum(float(r["total_cost"]) for r in costs[key])),
                }
                for key in files
            }
            # A range's days without changes were left as they are: their count, no cost.
            | {
                key: {
                    "dagster/partition_row_count": every.get(key, (0, 0))[0],
                    "rows_synced": 0,
                    "unchanged": True,
                    "cost_rows": MetadataValue.json([]),
                    "cost_usd": 0.0,
                }
                for key in context.partition_keys
                if key not in files
            },
        )
        # What follows describes the run (and the whole table), the same on every partition.
        metadata = {
            "dagster/row_count": sum(rows for rows, _ in every.values()),
            "sync_mode": config.mode,
            # What read the rows, and why (big_sync.BigSync.choose).
            "sync_engine": result.engine,
            "sync_engine_reason": why,
            "run_partitions": len(dates),
            "run_rows_synced": stats.rows_written,
            "run_erased_rows_withheld": withheld,
            "source_query_seconds": round(result.source_seconds, 3),
            "total_seconds": round(result.total_seconds, 3),
            "table_uri": MetadataValue.path(uri),
        }
        if result.repaired:
            # Partitions the merge left unequal (rows deleted in the app), replaced in the run.
            metadata["repaired_partitions"] = MetadataValue.json(result.repaired)
            context.log.info(f"{table.path}: replaced {result.repaired} (rows deleted in the app)")
        if stats.moved_from:
            # Rows whose created_at the app edited, moved here out of these partitions.
            metadata["moved_from_partitions"] = MetadataValue.json(stats.moved_from)
        if stats.key_index:
            # What finding moved rows cost: built, files caught up, row groups read.
            metadata["key_index"] = MetadataValue.json(stats.key_index)
        if stats.merge_metrics:
            metadata["merge"] = MetadataValue.json(
                {k: v for k, v in stats.merge_metrics.items() if isinstance(v, int)}
            )
        return MaterializeResult(metadata=metadata, check_results=_check_results(result))

    return mirror


MIRRORS: dict[str, AssetsDefinition] = {t.path: build_mirror(t) for t in APP_TABLES}
raw_mirrors: list[AssetsDefinition] = list(MIRRORS.values())
