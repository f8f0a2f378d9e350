"""``analytics/daily_feedback_summary``: per organization and day, volume, sentiment mix, top
topics and tags, processing health (``sql/daily_feedback_summary.sql``, run by the
``sql_engine`` resource: DuckDB locally, Spark on Databricks)."""

import datetime as dt
import functools
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    RetryPolicy,
)

from voyce_assets.catalog import Table, table
from voyce_assets.charts import line_chart_png, markdown_table, png_markdown
from voyce_assets.lake import replace_partitions
from voyce_assets.partitions import by_partition, partition_dates, record_partitions
from voyce_assets.resources import Lakehouse
from voyce_assets.resources.sql_engine import SqlEngine
from voyce_assets.tables import table_asset

SQL_DIR = Path(__file__).parent / "sql"
SUMMARY = table("analytics/daily_feedback_summary")

# What the SQL reads, and which of it is read for the run's days only (the rest whole).
INPUTS: dict[str, bool] = {
    "raw_data/voice_feedback": True,
    "raw_data/transcriptions": True,
    "raw_data/sentiment_analysis": True,
    "processed_data/enhanced_transcriptions": True,
    "raw_data/feedback_tags": False,
    "raw_data/tags": False,
}


def missing_upstream(context: AssetExecutionContext, paths: list[str]) -> dict[str, list[str]]:
    """``{table: [partition keys of this run it has never materialized]}``, empty if none."""
    from voyce_assets.tables import table_key

    out = {}
    for path in paths:
        done = context.instance.get_materialized_partitions(table_key(path))
        missing = [key for key in context.partition_keys if key not in done]
        if missing:
            out[path] = missing
    return out


def sql_text(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text()


def as_table_rows(result: pa.Table, spec: Table, created_at: dt.datetime) -> pa.Table:
    """The engine's result in the table's schema, ``created_at`` stamped."""
    schema = pa.schema([f.with_nullable(True) for f in spec.arrow_schema()])
    columns = {}
    for field in schema:
        if field.name == "created_at":
            columns[field.name] = pa.array([created_at] * result.num_rows, field.type)
        else:
            columns[field.name] = result.column(field.name).cast(field.type)
    return pa.table(columns, schema=schema)


TREND_DAYS = 14


def feedback_count_check(summary: pa.Table, feedback: pa.Table) -> AssetCheckResult:
    """Per day, the summary's feedback counts add up to the feedback mirrored for that day:
    no feedback lost or counted twice by a join."""
    counted: dict[str, int] = {}
    for row in summary.select(["date", "total_feedback_count"]).to_pylist():
        key = row["date"].isoformat()
        counted[key] = counted.get(key, 0) + row["total_feedback_count"]
    mirrored: dict[str, int] = {}
    for day in feedback.column("event_date").to_pylist():
        mirrored[day.isoformat()] = mirrored.get(day.isoformat(), 0) + 1
    wrong = {
        day: {"summary": counted.get(day, 0), "voice_feedback": mirrored.get(day, 0)}
        for day in sorted(set(counted) | set(mirrored))
        if counted.get(day, 0) != mirrored.get(day, 0)
    }
    return AssetCheckResult(
        check_name="feedback_counts_reconcile",
        passed=not wrong,
        metadata={"days_checked": len(set(counted) | set(mirrored)), "mismatches": wrong},
        description=f"{len(wrong)} day(s) whose counts differ from raw_data.voice_feedback"
        if wrong
        else None,
    )


def _sentiment_trends(lakehouse: Lakehouse, dates: list[dt.date]) -> dict:
    """Per day of the run, a chart of the mean sentiment score (weighted by analysed
    feedback, all organizations) over the 14 days ending that day, read from the table as
    written: each partition's own trend, not the run's."""
    first = min(dates) - dt.timedelta(days=TREND_DAYS - 1)
    span = [first + dt.timedelta(days=i) for i in range((max(dates) - first).days + 1)]
    totals: dict[dt.date, list[float]] = {}
    for row in lakehouse.read(SUMMARY, span).to_pylist():
        analysed = sum(
            row[f"sentiment_{label}_count"] or 0 for label in ("positive", "neutral", "negative")
        )
        if row["avg_sentiment_score"] is not None and analysed:
            total = totals.setdefault(row["date"], [0.0, 0.0])
            total[0] += row["avg_sentiment_score"] * analysed
            total[1] += analysed
    charts = {}
    for day in dates:
        window = [day - dt.timedelta(days=TREND_DAYS - 1 - i) for i in range(TREND_DAYS)]
        values = {
            d.isoformat(): (totals[d][0] / totals[d][1]) if d in totals else None for d in window
        }
        title = f"mean sentiment, {TREND_DAYS} days to {day}"
        charts[day.isoformat()] = png_markdown(
            line_chart_png(values, title, "score (-1..1)"), title
        )
    return charts


@table_asset(
    SUMMARY.path,
    deps=list(INPUTS),
    retry_policy=RetryPolicy(max_retries=1, delay=60),
    kinds={"sql"},
    required_resource_keys={"lakehouse", "sql_engine"},
    checks={
        "feedback_counts_reconcile": "Per day, total_feedback_count over organizations equals "
        "the day's rows in raw_data.voice_feedback."
    },
    description="Computed by `analytics/sql/daily_feedback_summary.sql` (Spark SQL; DuckDB "
    "locally through sqlglot). Rates of nothing are null, never NaN.",
)
def daily_feedback_summary(context: AssetExecutionContext) -> MaterializeResult:
    lakehouse: Lakehouse = context.resources.lakehouse
    engine: SqlEngine = context.resources.sql_engine
    dates = partition_dates(context)
    # A day is summed up only once everything it is made of exists: partial numbers would
    # look like real ones. (Tags are read whole, not by day.)
    missing = missing_upstream(context, [p for p, by_day in INPUTS.items() if by_day])
    if missing:
        named = "; ".join(f"{path}: {', '.join(keys)}" for path, keys in missing.items())
        raise Failure(
            description=f"waiting for upstream partitions never materialized: {named}",
            metadata={"missing": missing},
            allow_retries=False,
        )
    # Read only if the engine reads Arrow (a SQL warehouse reads the catalog itself).
    loaders = {
        path.replace("/", "."): functools.cache(
            functools.partial(lakehouse.read, table(path), dates if by_day else None)
        )
        for path, by_day in INPUTS.items()
    }

    def run_feedback_tags() -> pa.Table:
        # Only the tags of this run's feedback are needed; the rest would only cost the engine.
        ids = loaders["raw_data.voice_feedback"]().column("id")
        tags = loaders["raw_data.feedback_tags"]()
        return tags.filter(pc.is_in(tags.column("voice_feedback_id"), ids))

    inputs = {**loaders, "raw_data.feedback_tags": run_feedback_tags}
    result = engine.run(
        sql_text("daily_feedback_summary"),
        inputs,
        {"start_date": min(dates), "end_date": max(dates)},
    )
    rows = as_table_rows(result, SUMMARY, dt.datetime.now(dt.UTC))
    uri = lakehouse.ensure_table(SUMMARY)
    replace_partitions(uri, SUMMARY, rows.to_batches(), dates, lakehouse.storage_options)
    per_day = by_partition(context, rows.to_pylist(), lambda r: r["date"])
    trends = _sentiment_trends(lakehouse, dates)
    record_partitions(
        context,
        {
            key: {
                "dagster/partition_row_count": len(day),
                "feedback": sum(r["total_feedback_count"] for r in day),
                "preview": markdown_table(
                    day[:10],
                    [
                        "organization_id",
                        "total_feedback_count",
                        "sentiment_negative_count",
                        "avg_sentiment_score",
                        "top_topics",
                        "processing_success_rate",
                    ],
                ),
                "sentiment_trend": trends[key],
            }
            for key, day in per_day.items()
        },
    )
    stored = lakehouse.read(SUMMARY, dates)
    feedback = lakehouse.read(table("raw_data/voice_feedback"), dates, ["event_date"])
    return MaterializeResult(
        metadata={"engine": engine.name},
        check_results=[feedback_count_check(stored, feedback)],
    )
