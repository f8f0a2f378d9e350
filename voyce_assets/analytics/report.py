"""``voyce report``: one self-contained HTML page of a day's analytics (no server, no network:
styles inline, charts as PNG data URIs), read from the analytics tables as written."""

import datetime as dt
import html
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from voyce_assets.catalog import table
from voyce_assets.resources import Lakehouse

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:70rem;
color:#1f2933;padding:0 1rem}
h1{margin-bottom:0}h2{border-bottom:1px solid #d9e2ec;padding-bottom:.3rem;margin-top:2.2rem}
.sub{color:#627d98;margin-top:.2rem}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}
.card{border:1px solid #d9e2ec;border-radius:6px;padding:.6rem .9rem;min-width:9rem}
.card .v{font-size:1.5rem;font-weight:600}.card .k{color:#627d98;font-size:.85rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border-bottom:1px solid #e4e7eb;padding:.3rem .6rem;text-align:left}
th{background:#f0f4f8}td.n{text-align:right;font-variant-numeric:tabular-nums}
.flag{color:#b42318;font-weight:600}.empty{color:#9aa5b1;font-style:italic}
img{max-width:100%;border:1px solid #e4e7eb;border-radius:4px}
"""


def latest_day(lakehouse: Lakehouse) -> dt.date | None:
    """The last day the daily summary has rows for."""
    days = lakehouse.read(table("analytics/daily_feedback_summary"), columns=["date"])
    values = [d for d in days.column("date").to_pylist() if d is not None]
    return max(values) if values else None


def _fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "–"
    if kind == "pct":
        return f"{float(value) * 100:.1f}%"
    if kind == "usd":
        # Per-feedback costs are fractions of a cent: show them to the micro-dollar.
        amount = Decimal(str(value))
        return f"${amount:,.2f}" if abs(amount) >= 1 else f"${amount:.6f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float | Decimal):
        return f"{float(value):,.3f}"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def _table(rows: Sequence[dict], columns: Sequence[tuple[str, str, str]], empty: str) -> str:
    """``columns``: (key, header, kind); numbers right-aligned, flagged rows marked."""
    if not rows:
        return f'<p class="empty">{html.escape(empty)}</p>'
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in columns)
    body = []
    for row in rows:
        cells = []
        for key, _, kind in columns:
            value = row.get(key)
            numeric = isinstance(value, int | float | Decimal) and not isinstance(value, bool)
            css = ' class="n"' if numeric or kind in ("pct", "usd") else ""
            text = html.escape(_fmt(value, kind))
            if kind == "flag" and value:
                text = '<span class="flag">⚑ flagged</span>'
            cells.append(f"<td{css}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _img(png: bytes, alt: str) -> str:
    import base64

    data = base64.b64encode(png).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _cards(summary: dict | None) -> str:
    if not summary:
        return '<p class="empty">No feedback or cost on this day.</p>'
    items = [
        ("feedback_count", "feedback", ""),
        ("active_organizations", "organizations active", ""),
        ("active_users", "users active", ""),
        ("audio_hours", "hours of audio", ""),
        ("transcription_success_rate", "transcribed", "pct"),
        ("analysis_success_rate", "analysed", "pct"),
        ("avg_sentiment_score", "mean sentiment (-1..1)", ""),
        ("negative_share", "negative", "pct"),
        ("total_cost_usd", "cost", "usd"),
        ("cost_per_feedback_usd", "cost per feedback", "usd"),
    ]
    cards = "".join(
        f'<div class="card"><div class="v">{html.escape(_fmt(summary.get(k), kind))}</div>'
        f'<div class="k">{html.escape(label)}</div></div>'
        for k, label, kind in items
    )
    return f'<div class="cards">{cards}</div>'


def _rows(lakehouse: Lakehouse, path: str, day: dt.date) -> list[dict]:
    return lakehouse.read(table(path), [day]).to_pylist()


def _trend_chart(lakehouse: Lakehouse, day: dt.date) -> str:
    """The daily summary's own trend chart of ``day``: mean sentiment over the 14 days."""
    from voyce_assets.analytics.daily_feedback_summary import trend_pngs, trend_title

    return _img(trend_pngs(lakehouse, [day])[day], trend_title(day))


def _cost_chart(costs: Sequence[dict], day: dt.date) -> str:
    from voyce_assets.analytics.cost_tracking import cost_by_stage_png, cost_chart_title

    png = cost_by_stage_png(day, list(costs))
    if png is None:
        return '<p class="empty">No cost recorded for this day.</p>'
    return _img(png, cost_chart_title(day))


def render(lakehouse: Lakehouse, day: dt.date) -> str:
    """The report of ``day`` as one HTML document."""
    orgs = {
        r["id"]: r["name"]
        for r in lakehouse.read(table("raw_data/organizations"), None, ["id", "name"]).to_pylist()
    }

    def named(rows: list[dict]) -> list[dict]:
        return [{**r, "organization": orgs.get(r.get("organization_id"), "–")} for r in rows]

    platform = _rows(lakehouse, "analytics/platform_summary", day)
    summary = sorted(
        named(_rows(lakehouse, "analytics/daily_feedback_summary", day)),
        key=lambda r: (-r["total_feedback_count"], r["organization"]),
    )
    topics = sorted(
        named(_rows(lakehouse, "analytics/topic_ranking", day)),
        key=lambda r: (r["organization"], r["rank"]),
    )
    trending = sorted(
        named(_rows(lakehouse, "analytics/trending_topics", day)),
        key=lambda r: (-r["change"], r["organization"], r["topic"]),
    )[:15]
    weekly = sorted(
        named(_rows(lakehouse, "analytics/sentiment_trends_weekly", day)),
        key=lambda r: (r["organization"], r["week_start"]),
    )
    costs = _rows(lakehouse, "analytics/cost_tracking", day)
    cost_orgs = sorted(
        named(_rows(lakehouse, "analytics/cost_by_organization", day)),
        key=lambda r: (r["organization"], r["resource_type"]),
    )
    performance = _rows(lakehouse, "analytics/transcription_performance", day)
    funnel = named(_rows(lakehouse, "analytics/processing_funnel", day))
    overdue = sorted(
        named(_rows(lakehouse, "analytics/overdue_action_items", day)),
        key=lambda r: (-r["days_overdue"], r["action_item_id"]),
    )[:20]
    org = ("organization", "organization", "")
    sections = [
        ("The day at a glance", _cards(platform[0] if platform else None)),
        (
            "Organizations",
            _table(
                summary,
                [
                    org,
                    ("total_feedback_count", "feedback", ""),
                    ("sentiment_positive_count", "positive", ""),
                    ("sentiment_neutral_count", "neutral", ""),
                    ("sentiment_negative_count", "negative", ""),
                    ("avg_sentiment_score", "mean sentiment", ""),
                    ("top_topics", "top topics", ""),
                    ("processing_success_rate", "transcribed", "pct"),
                ],
                "No feedback on this day.",
            ),
        ),
        (
            "Sentiment trends",
            _trend_chart(lakehouse, day)
            + _table(
                weekly,
                [
                    org,
                    ("week_start", "week of", ""),
                    ("feedback_count", "feedback", ""),
                    ("avg_sentiment_score", "mean sentiment", ""),
                    ("negative_share", "negative", "pct"),
                ],
                "No weekly trend yet.",
            ),
        ),
        (
            "Top topics (7 days)",
            _table(
                topics,
                [
                    org,
                    ("rank", "rank", ""),
                    ("topic", "topic", ""),
                    ("mention_count", "mentions", ""),
                    ("share_of_feedback", "of feedback", "pct"),
                    ("avg_sentiment_score", "mean sentiment", ""),
                ],
                "No topics in the last 7 days.",
            )
            + "<h3>Trending, week over week</h3>"
            + _table(
                trending,
                [
                    org,
                    ("topic", "topic", ""),
                    ("this_week_count", "this week", ""),
                    ("last_week_count", "last week", ""),
                    ("change", "change", ""),
                    ("growth_rate", "growth", "pct"),
                ],
                "No topics in the last two weeks.",
            ),
        ),
        (
            "Costs",
            _cost_chart(costs, day)
            + _table(
                cost_orgs,
                [
                    org,
                    ("resource_type", "resource", ""),
                    ("total_cost_usd", "cost (30 days)", "usd"),
                    ("feedback_count", "feedback", ""),
                    ("cost_per_feedback_usd", "per feedback", "usd"),
                    ("is_flagged", "flag", "flag"),
                ],
                "No cost in the last 30 days.",
            ),
        ),
        (
            "Processing",
            _table(
                performance,
                [
                    ("transcription_engine", "engine", ""),
                    ("files", "files", ""),
                    ("error_rate", "errors", "pct"),
                    ("p50_processing_ms", "p50 ms", ""),
                    ("p95_processing_ms", "p95 ms", ""),
                    ("avg_confidence", "confidence", ""),
                ],
                "Nothing transcribed on this day.",
            )
            + _table(
                funnel,
                [
                    org,
                    ("uploaded", "uploaded", ""),
                    ("transcribed", "transcribed", ""),
                    ("analysed", "analysed", ""),
                    ("predicted", "predicted", ""),
                ],
                "No uploads on this day.",
            ),
        ),
        (
            "Overdue action items",
            _table(
                overdue,
                [
                    org,
                    ("description", "action", ""),
                    ("priority", "priority", ""),
                    ("due_date", "due", ""),
                    ("days_overdue", "days overdue", ""),
                ],
                "Nothing overdue.",
            ),
        ),
    ]
    made = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in sections)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Voyce feedback report, {day}</title><style>{STYLE}</style></head><body>"
        f"<h1>Voyce feedback report, {day}</h1>"
        f'<p class="sub">Catalog {html.escape(lakehouse.catalog)}; made {made}.</p>'
        f"{body}</body></html>"
    )


def write(lakehouse: Lakehouse, day: dt.date, path: Path | None = None) -> Path:
    """Write the report of ``day`` (default: ``$VOYCE_HOME/reports/voyce-report-DAY.html``)."""
    from voyce_assets.settings import voyce_home

    path = path or voyce_home() / "reports" / f"voyce-report-{day}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(lakehouse, day), encoding="utf-8")
    return path
