"""raw_data: the six app tables mirrored from PostgreSQL, and per-feedback transcripts/sentiment.

Each mirror is a daily-partitioned asset. A plain materialization (UI, backfill, the daily
full-sync schedule) replaces its partitions with the source's rows; a run requested by the CDC
sensor (``mode: incremental``) merges only the rows changed after the sensor's cursor. Every
materialization checks itself: primary key, required columns, schema drift, and a blocking
reconciliation of row counts and content checksums between PostgreSQL and Delta.

``transcriptions`` (Whisper) is written by this pipeline from the processed audio;
sentiment_analysis stays a lineage-only spec until its stage lands.
"""

import datetime as dt
import time
import warnings
from pathlib import Path
from typing import Literal

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Backoff,
    Config,
    Jitter,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
)
from pydantic import Field

from voyce_assets.audio.normalize import load_processed, read_processed
from voyce_assets.catalog import APP_TABLES, Table, table
from voyce_assets.ingest.sync import (
    Cursor,
    SyncResult,
    delta_batches,
    partition_files,
    sync_table,
)
from voyce_assets.partitions import daily_backfill_policy, daily_partitions
from voyce_assets.resources import AppDatabase, Lakehouse
from voyce_assets.resources.pricing import Pricing
from voyce_assets.resources.transcriber import Transcriber
from voyce_assets.tables import table_key, table_kinds, table_metadata, table_spec
from voyce_assets.voice import (
    Feedback,
    existing_rows,
    partition_feedback,
    processed_path,
    row_id,
    write_partition,
)

# BackfillPolicy is beta in this Dagster release; it is exactly what a 30-day backfill needs.
warnings.filterwarnings("ignore", message=".*backfill_policy.*")

# Like the notebooks' ingestion job (3 retries), with backoff so a restarting database has time.
INGEST_RETRY = RetryPolicy(
    max_retries=3, delay=5, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)
PREVIEW_ROWS = 5
MAX_FAILURE_RATE = 0.05  # the notebooks' alert: processing failures > 5%


class RawSyncConfig(Config):
    """How a run syncs the table. The CDC sensor sets incremental mode and the cursor."""

    mode: Literal["full", "incremental"] = Field(
        default="full", description="full: replace the partitions; incremental: merge changes."
    )
    since_ts: str | None = Field(default=None, description="incremental: changes after this time")
    since_id: str | None = Field(default=None, description="... and, at that time, this id")
    pg_schema: str = Field(default="public", description="Schema of the app tables.")


def op_name(table: Table) -> str:
    return f"{table.schema}__{table.name}"


def _check_results(result: SyncResult) -> list[AssetCheckResult]:
    table, stats = result.table, result.stats
    pk_nulls = sum(stats.quarantined_columns.get(k, 0) for k in table.primary_key)
    pk_ok = pk_nulls == 0 and result.duplicate_count == 0
    other_nulls = {k: v for k, v in stats.quarantined_columns.items() if k not in table.primary_key}
    mismatched = result.mismatched
    return [
        AssetCheckResult(
            check_name="primary_key",
            passed=pk_ok,
            metadata={
                "null_keys": pk_nulls,
                "duplicate_keys": result.duplicate_count,
                "duplicate_ids": MetadataValue.json(result.duplicate_ids),
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
                "partitions": len(result.source_counts),
                "source_rows": sum(n for n, _ in result.source_counts.values()),
                "mirror_rows": sum(n for n, _ in result.mirror_counts.values()),
                "mismatched_partitions": MetadataValue.json(mismatched),
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


def _cost_rows(context, result: SyncResult, pricing: Pricing) -> list[dict]:
    today = dt.datetime.now(dt.UTC).date()
    resource_id = result.table.full_name("")[1:]
    rows = [
        pricing.cost_row(
            "ingestion.record",
            n,
            operation=f"{result.mode}_sync",
            resource_id=resource_id,
            organization_id=org,
            cost_date=today,
            run_id=context.run_id,
            metadata={"partitions": [d.isoformat() for d in result.dates]},
        )
        for org, n in sorted(result.stats.rows_per_organization.items(), key=lambda kv: str(kv[0]))
    ]
    if not result.stats.rows_per_organization and result.stats.rows_written:
        rows.append(
            pricing.cost_row(
                "ingestion.record",
                result.stats.rows_written,
                f"{result.mode}_sync",
                resource_id,
                None,
                today,
                context.run_id,
            )
        )
    rows.append(
        pricing.cost_row(
            "compute.second",
            round(result.total_seconds, 3),
            f"{result.mode}_sync",
            resource_id,
            None,
            today,
            context.run_id,
        )
    )
    return rows


def _preview(lakehouse: Lakehouse, table: Table, dates: list[dt.date]) -> MetadataValue:
    for batch in delta_batches(
        lakehouse.table_uri(table), table, dates, storage_options=lakehouse.storage_options
    ):
        if batch.num_rows:
            rows = [table.mask(r) for r in batch.slice(0, PREVIEW_ROWS).to_pylist()]
            header = (
                "| " + " | ".join(table.column_names) + " |\n|" + "---|" * len(table.column_names)
            )
            lines = [
                "| " + " | ".join(str(r[c])[:40] for c in table.column_names) + " |" for r in rows
            ]
            return MetadataValue.md(header + "\n" + "\n".join(lines))
    return MetadataValue.md("_no rows_")


def build_mirror(table: Table, retry_policy: RetryPolicy = INGEST_RETRY) -> AssetsDefinition:
    key = table_key(table.path)

    @asset(
        key=key,
        description=f"{table.description}\n\nMirrored from the app's PostgreSQL table `{table.name}`.",
        group_name=table.schema,
        partitions_def=daily_partitions,
        backfill_policy=daily_backfill_policy,
        retry_policy=retry_policy,
        metadata=table_metadata(table),
        kinds=table_kinds(table),
        tags={"voyce/owner": table.owner.value},
        check_specs=[
            AssetCheckSpec(
                "primary_key", asset=key, description="Primary key unique and not null."
            ),
            AssetCheckSpec(
                "required_columns", asset=key, description="NOT NULL columns have values."
            ),
            AssetCheckSpec(
                "reconciliation",
                asset=key,
                blocking=True,
                description="Per partition, row count and content checksum in PostgreSQL equal Delta's.",
            ),
            AssetCheckSpec("schema_drift", asset=key, description="Source columns match the spec."),
        ],
    )
    def mirror(
        context: AssetExecutionContext,
        config: RawSyncConfig,
        app_db: AppDatabase,
        lakehouse: Lakehouse,
        pricing: Pricing,
    ) -> MaterializeResult:
        dates = [dt.date.fromisoformat(k) for k in context.partition_keys]
        since = None
        if config.mode == "incremental":
            if not (config.since_ts and config.since_id):
                raise ValueError(
                    "incremental mode needs since_ts and since_id (set by the CDC sensor)"
                )
            since = Cursor(config.since_ts, config.since_id)
        uri = lakehouse.ensure_table(table)
        with app_db.connect() as conn:
            result = sync_table(
                conn, table, uri, dates, since, config.pg_schema, lakehouse.storage_options
            )
        stats = result.stats
        context.log.info(
            f"{config.mode} sync of {table.path} for {dates[0]}..{dates[-1]}: "
            f"{stats.rows_written} rows in {result.total_seconds:.2f}s"
            + (f", {stats.quarantined} quarantined" if stats.quarantined else "")
        )
        costs = _cost_rows(context, result, pricing)
        files = partition_files(uri, table, dates, lakehouse.storage_options)
        metadata = {
            "dagster/row_count": sum(n for n, _ in result.mirror_counts.values()),
            "sync_mode": config.mode,
            "rows_synced": stats.rows_written,
            "rows_per_partition": MetadataValue.json(stats.rows_per_partition),
            "source_query_seconds": round(result.source_seconds, 3),
            "total_seconds": round(result.total_seconds, 3),
            "bytes": sum(size for _, size in files.values()),
            "table_uri": MetadataValue.path(uri),
            "preview": _preview(lakehouse, table, dates),
            "cost_rows": MetadataValue.json(costs),
            "cost_usd": float(sum(float(r["total_cost"]) for r in costs)),
        }
        if stats.merge_metrics:
            metadata["merge"] = MetadataValue.json(
                {k: v for k, v in stats.merge_metrics.items() if isinstance(v, int)}
            )
        return MaterializeResult(metadata=metadata, check_results=_check_results(result))

    return mirror


raw_mirrors: list[AssetsDefinition] = [build_mirror(t) for t in APP_TABLES]

TRANSCRIPTIONS = table("raw_data/transcriptions")


@asset(
    key=table_key(TRANSCRIPTIONS.path),
    deps=[AssetKey(["processed_data", "processed_audio"]), table_key("raw_data/voice_feedback")],
    group_name="raw_data",
    partitions_def=daily_partitions,
    backfill_policy=daily_backfill_policy,
    retry_policy=RetryPolicy(max_retries=2, delay=30),
    metadata=table_metadata(TRANSCRIPTIONS),
    kinds=table_kinds(TRANSCRIPTIONS) | {"whisper"},
    tags={"voyce/owner": TRANSCRIPTIONS.owner.value},
    # GPU-heavy: one at a time per pool slot (dagster.yaml), on the GPU step launcher in prod.
    pool="gpu",
    # The step launcher is picked up as a required resource; the others are read from it too.
    required_resource_keys={"gpu_step_launcher", "lakehouse", "transcriber"},
    description=f"{TRANSCRIPTIONS.description} One row per voice feedback of the partition; "
    "failures (corrupt, missing, silent, too long ...) are rows with error_message. Feedback "
    "already transcribed by the same engine/model is kept, not transcribed again.",
    check_specs=[
        AssetCheckSpec(
            "failure_rate",
            asset=table_key(TRANSCRIPTIONS.path),
            description=f"At most {MAX_FAILURE_RATE:.0%} of the partition failed.",
        )
    ],
)
def transcriptions(context: AssetExecutionContext) -> MaterializeResult:
    lakehouse: Lakehouse = context.resources.lakehouse
    transcriber: Transcriber = context.resources.transcriber
    dates = [dt.date.fromisoformat(k) for k in context.partition_keys]
    feedback = partition_feedback(lakehouse, dates)
    previous = existing_rows(lakehouse, TRANSCRIPTIONS, dates)
    label = transcriber.label
    rows, reused, failures, pending = [], 0, {}, []
    for item in feedback:
        old = previous.get(item.id)
        if old and _still_valid(old, label, processed_path(lakehouse, item)):
            rows.append(old)
            reused += 1
        else:
            pending.append(item)
    started = time.perf_counter()
    new_rows = transcribe_feedback(lakehouse, transcriber, pending)
    busy_seconds = time.perf_counter() - started
    audio_seconds = sum(r.pop("_audio_seconds") for r in new_rows)
    for row in new_rows:
        if row["error_message"]:
            failures[row["voice_feedback_id"]] = row["error_message"]
    rows += new_rows
    write_partition(lakehouse, TRANSCRIPTIONS, rows, dates)
    failed = sum(1 for r in rows if r["error_message"])
    rate = failed / len(rows) if rows else 0.0
    for fid, error in failures.items():
        context.log.warning(f"voice_feedback {fid}: {error}")
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "transcribed": len(rows) - reused - len(failures),
            "reused": reused,
            "failed": failed,
            "failure_rate": round(rate, 4),
            "failures": MetadataValue.json(failures),
            "engine": label,
            "audio_seconds_transcribed": round(audio_seconds, 2),
            "realtime_factor": round(audio_seconds / busy_seconds, 2) if busy_seconds else 0.0,
            "mean_confidence": round(
                sum(r["confidence_score"] or 0 for r in rows if not r["error_message"])
                / max(1, len(rows) - failed),
                4,
            ),
        },
        check_results=[
            AssetCheckResult(
                check_name="failure_rate",
                passed=rate <= MAX_FAILURE_RATE,
                metadata={"failure_rate": round(rate, 4), "failed": failed, "rows": len(rows)},
            )
        ],
    )


def _still_valid(row: dict, label: str, copy: Path) -> bool:
    """A transcript to keep: same engine/model, no error, made after the current audio copy."""
    if row["transcription_engine"] != label or row["error_message"]:
        return False
    try:
        copied = dt.datetime.fromtimestamp(copy.stat().st_mtime, dt.UTC)
    except FileNotFoundError:
        return False  # the upload became unusable since: transcribe again to say why
    return copied <= row["created_at"]


def _row(transcriber: Transcriber, item: Feedback) -> dict:
    return {
        "id": row_id(item.id, f"transcription:{transcriber.label}"),
        "voice_feedback_id": item.id,
        "transcription_text": None,
        "transcription_engine": transcriber.label,
        "confidence_score": None,
        "language_detected": None,
        "word_count": None,
        "processing_time_ms": None,
        "error_message": None,
        "created_at": dt.datetime.now(dt.UTC),
        "event_date": item.event_date,
        "_audio_seconds": 0.0,
    }


def transcribe_feedback(
    lakehouse: Lakehouse, transcriber: Transcriber, items: list[Feedback]
) -> list[dict]:
    """One transcriptions row per feedback: a transcript, or the reason there is none.

    Usable recordings are transcribed together (``Transcriber.transcribe_many``), in
    ``batch_size`` chunks so a failing batch only costs its own rows.
    """
    rows = [_row(transcriber, item) for item in items]
    audio: list[tuple[dict, object]] = []
    for row, item in zip(rows, items, strict=True):
        processed = load_processed(processed_path(lakehouse, item))
        if processed is None:
            row["error_message"] = (
                "no processed audio (materialize processed_data/processed_audio first)"
            )
        elif not processed.ok:
            row["error_message"] = processed.error
        else:
            try:
                audio.append((row, read_processed(processed)))
            except Exception as exc:  # an unreadable copy fails its own row only
                row["error_message"] = f"cannot read processed audio: {type(exc).__name__}: {exc}"[
                    :500
                ]
    size = max(1, transcriber.batch_size)
    for start in range(0, len(audio), size):
        chunk = audio[start : start + size]
        try:
            transcripts = transcriber.transcribe_many([samples for _, samples in chunk])
        except Exception as exc:  # one bad batch never stops the partition
            for row, _ in chunk:
                row["error_message"] = f"transcription failed: {type(exc).__name__}: {exc}"[:500]
            continue
        for (row, _), transcript in zip(chunk, transcripts, strict=True):
            row.update(
                transcription_text=transcript.text,
                confidence_score=transcript.confidence,
                language_detected=transcript.language,
                word_count=transcript.word_count,
                processing_time_ms=round(transcript.processing_seconds * 1000),
                _audio_seconds=transcript.audio_seconds,
            )
            if not transcript.text:
                row["error_message"] = "no speech detected"
    return rows


raw_data_specs = [
    table_spec(
        "raw_data/sentiment_analysis",
        deps=["raw_data/transcriptions"],
        pending_issue="text intelligence",
    ),
]
