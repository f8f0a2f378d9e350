"""``analytics/daily_feedback_summary``: per organization and day, volume, sentiment mix, top
topics and tags, processing health (``sql/daily_feedback_summary.sql``), with a 14-day
sentiment-trend chart per day and a check that every feedback is counted once."""

import datetime as dt

import pyarrow as pa
from dagster import AssetCheckResult, AssetExecutionContext

from voyce_assets.analytics.sql_asset import WHOLE, Input, build_sql_asset
from voyce_assets.catalog import table
from voyce_assets.charts import line_chart_png, png_markdown
from voyce_assets.resources import Lakehouse

SUMMARY = table("analytics/daily_feedback_summary")
TREND_DAYS = 14

INPUTS = [
    Input("raw_data/voice_feedback"),
    Input("raw_data/transcriptions"),
    Input("raw_data/sentiment_analysis"),
    Input("processed_data/enhanced_transcriptions"),
    # A tag may be added any day after the feedback: read whole. The SQL joins the run's
    # feedback, which keeps only their tags (filtering them here first cost more than that).
    Input("raw_data/feedback_tags", WHOLE, required=False),
    Input("raw_data/tags", WHOLE, required=False),
]


def feedback_count_check(summary: pa.Table, feedback: pa.Table) -> AssetCheckResult:
    """Per day, the summary's feedback counts add up to the feedback mirrored for that day:
    no feedback lost or counted twice by a join."""

    def per_day(data: pa.Table, day: str, summed: str | None = None) -> dict[str, int]:
        aggregate = [(summed, "sum")] if summed else [([], "count_all")]
        grouped = data.group_by(day).aggregate(aggregate)
        (value,) = (c for c in grouped.column_names if c != day)
        days, values = grouped.column(day).to_pylist(), grouped.column(value).to_pylist()
        return {d.isoformat(): int(n) for d, n in zip(days, values, strict=True)}

    counted = per_day(summary, "date", "total_feedback_count")
    mirrored = per_day(feedback, "event_date")
    wrong = {
        day: {"summary": counted.get(day, 0), "voice_feedback": mirrored.get(day, 0)}
        for day in sorted(set(counted) | set(mirrored))
        if counted.get(day, 0) != mirrored.get(day, 0)
    }
    return AssetCheckResult(
        check_name="feedback_counts_reconcile",
        passed=not wrong,
        metadata={
            "days_checked": len(set(counted) | set(mirrored)),
            "mismatches": wrong,
            "failing_partitions": sorted(wrong),
        },
        description=f"{len(wrong)} day(s) whose counts differ from raw_data.voice_feedback: "
        f"{', '.join(sorted(wrong))}"
        if wrong
        else None,
    )


def _checks(lakehouse: Lakehouse, dates: list[dt.date]) -> list[AssetCheckResult]:
    stored = lakehouse.read(SUMMARY, dates)
    feedback = lakehouse.read(table("raw_data/voice_feedback"), dates, ["event_date"])
    return [feedback_count_check(stored, feedback)]


def trend_pngs(lakehouse: Lakehouse, days: list[dt.date]) -> dict[dt.date, bytes]:
    """Per day, a chart of the mean sentiment score (weighted by analysed feedback, all
    organizations) over the 14 days ending that day, read from the table as written."""
    first = min(days) - dt.timedelta(days=TREND_DAYS - 1)
    span = [first + dt.timedelta(days=i) for i in range((max(days) - first).days + 1)]
    totals: dict[dt.date, list[float]] = {}
    for row in lakehouse.read(SUMMARY, span).to_pylist():
        analysed = sum(
            row[f"sentiment_{label}_count"] or 0 for label in ("positive", "neutral", "negative")
        )
        if row["avg_sentiment_score"] is not None and analysed:
            total = totals.setdefault(row["date"], [0.0, 0.0])
            total[0] += row["avg_sentiment_score"] * analysed
            total[1] += analysed
    out = {}
    for day in days:
        window = [day - dt.timedelta(days=TREND_DAYS - 1 - i) for i in range(TREND_DAYS)]
        values = {
            d.isoformat(): (totals[d][0] / totals[d][1]) if d in totals else None for d in window
        }
        out[day] = line_chart_png(values, trend_title(day), "score (-1..1)")
    return out


def trend_title(day: dt.date) -> str:
    return f"mean sentiment, {TREND_DAYS} days to {day}"


def _sentiment_trends(
    context: AssetExecutionContext, lakehouse: Lakehouse, rows: list[dict], dates: list[dt.date]
) -> dict:
    """Each partition's own trend chart (the 14 days to it, not the run's) and feedback."""
    charts = trend_pngs(lakehouse, dates)
    return {
        day.isoformat(): {
            "feedback": sum(r["total_feedback_count"] for r in rows if r["date"] == day),
            "sentiment_trend": png_markdown(charts[day], trend_title(day)),
        }
        for day in dates
    }


daily_feedback_summary = build_sql_asset(
    SUMMARY.path,
    INPUTS,
    description="Rates of nothing are null, never NaN.",
    check_specs={
        "feedback_counts_reconcile": "Per day, total_feedback_count over organizations equals "
        "the day's rows in raw_data.voice_feedback."
    },
    checks=_checks,
    extra_metadata=_sentiment_trends,
)
