"""``voyce report``: the HTML page of a day's analytics, rendered by headless Chromium (the
Debian package, as a reader opens the file: no server), shows the day's numbers and charts."""

import datetime as dt
import json
import shutil
import subprocess
from decimal import Decimal

from deltalake import DeltaTable

from voyce_assets.catalog import table
from voyce_assets.resources import Lakehouse
from voyce_assets_tests.analytics.harness import A, B, uid, write_tables
from voyce_assets_tests.test_cli import voyce

DAY = dt.date(2026, 11, 20)

TABLES = {
    "raw_data/organizations": [
        {"id": A, "name": "Acme Shoes", "day": DAY},
        {"id": B, "name": "Birch & <Co>", "day": DAY},  # markup in data stays text
    ],
    "analytics/platform_summary": [
        {
            "date": DAY,
            "feedback_count": 1234,
            "active_organizations": 2,
            "active_users": 77,
            "audio_hours": 5.5,
            "transcription_success_rate": 0.975,
            "analysis_success_rate": 1.0,
            "avg_sentiment_score": -0.125,
            "negative_share": 0.4,
            "total_cost_usd": Decimal("12.5"),
            "cost_per_feedback_usd": 0.0101,
            "day": DAY,
        },
    ],
    "analytics/daily_feedback_summary": [
        {
            "date": DAY,
            "organization_id": A,
            "total_feedback_count": 1000,
            "sentiment_positive_count": 300,
            "sentiment_neutral_count": 200,
            "sentiment_negative_count": 500,
            "avg_sentiment_score": -0.2,
            "top_topics": ["late delivery", "refunds"],
            "processing_success_rate": 0.98,
            "day": DAY,
        },
        {
            "date": DAY - dt.timedelta(days=1),
            "organization_id": A,
            "total_feedback_count": 10,
            "sentiment_positive_count": 10,
            "sentiment_neutral_count": 0,
            "sentiment_negative_count": 0,
            "avg_sentiment_score": 0.5,
            "day": DAY - dt.timedelta(days=1),
        },
    ],
    "analytics/topic_ranking": [
        {
            "as_of_date": DAY,
            "organization_id": A,
            "topic": "late delivery",
            "rank": 1,
            "mention_count": 321,
            "share_of_feedback": 0.321,
            "day": DAY,
        },
    ],
    "analytics/cost_tracking": [
        {
            "organization_id": A,
            "resource_type": "llm_api",
            "total_cost": Decimal("10"),
            "cost_date": DAY,
            "metadata": json.dumps({"stage": "text"}),
            "day": DAY,
        },
        {
            "organization_id": B,
            "resource_type": "speech_to_text",
            "total_cost": Decimal("2.5"),
            "cost_date": DAY,
            "metadata": json.dumps({"stage": "voice"}),
            "day": DAY,
        },
    ],
    "analytics/cost_by_organization": [
        {
            "as_of_date": DAY,
            "organization_id": B,
            "resource_type": "speech_to_text",
            "total_cost_usd": Decimal("2.5"),
            "feedback_count": 234,
            "cost_per_feedback_usd": 0.0107,
            "is_flagged": True,
            "day": DAY,
        },
    ],
    "analytics/overdue_action_items": [
        {
            "as_of_date": DAY,
            "action_item_id": uid("ai"),
            "organization_id": A,
            "description": "Call back the customer about order 5512",
            "priority": "urgent",
            "due_date": DAY - dt.timedelta(days=9),
            "days_overdue": 9,
            "day": DAY,
        },
    ],
}


def _lakehouse(home) -> Lakehouse:
    lakehouse = Lakehouse(
        catalog="voice_feedback_dev",
        root_uri=str(home / "lakehouse"),
        volumes_root=str(home / "volumes"),
    )
    return write_tables(lakehouse, TABLES)


def _chromium(*args: str) -> subprocess.CompletedProcess:
    browser = shutil.which("chromium")
    assert browser, "Debian's chromium package is needed (`make test` installs it)"
    return subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_report_opens_in_chromium_and_shows_the_days_numbers(voyce_home, tmp_path):
    _lakehouse(voyce_home)
    env = {"VOYCE_HOME": str(voyce_home)}
    out = voyce("report", "--date", DAY.isoformat(), **env)
    assert out.returncode == 0, out.stderr
    page = voyce_home / "reports" / f"voyce-report-{DAY}.html"
    assert out.stdout.strip() == str(page)
    # Without --date: the last day the daily summary has.
    latest = voyce("report", "--out", str(tmp_path / "latest.html"), **env)
    assert latest.returncode == 0 and "2026-11-20" in (tmp_path / "latest.html").read_text()

    source = page.read_text()
    assert "http://" not in source and "https://" not in source, "self-contained"
    dom = _chromium(f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()).stdout
    import re

    text = re.sub(r"<[^>]+>", " ", re.sub(r"<(style|script)[^>]*>.*?</\1>", "", dom, flags=re.S))
    text = " ".join(text.split())
    for shown in (
        "1,234 feedback",
        "77 users active",
        "97.5% transcribed",
        "-0.125 mean sentiment",
        "$12.50 cost",
        "Acme Shoes 1,000 300 200 500 -0.200 late delivery, refunds 98.0%",
        "Birch &amp; &lt;Co&gt; speech_to_text $2.50 234 $0.010700 ⚑ flagged",
        "Acme Shoes 1 late delivery 321 32.1%",
        "Call back the customer about order 5512 urgent 2026-11-11 9",
    ):
        assert shown in text, shown
    # Two charts (the 14-day trend and the cost by stage), embedded, decoded by the browser.
    assert dom.count('src="data:image/png;base64,') == 2
    shot = tmp_path / "report.png"
    _chromium(
        f"--user-data-dir={tmp_path / 'profile2'}",
        f"--screenshot={shot}",
        "--window-size=1200,2400",
        page.as_uri(),
    )
    from PIL import Image

    pixels = Image.open(shot).convert("RGB")
    assert pixels.size == (1200, 2400)
    assert len(set(pixels.getdata())) > 50, "the page rendered more than a blank canvas"


def test_report_without_analytics_says_what_to_run(voyce_home):
    out = voyce("report", VOYCE_HOME=str(voyce_home))
    assert out.returncode == 1
    assert "materialize analytics/daily_feedback_summary first" in out.stderr


def test_a_day_without_data_renders_empty_sections(voyce_home):
    from voyce_assets.analytics.report import render

    lakehouse = _lakehouse(voyce_home)
    html = render(lakehouse, DAY + dt.timedelta(days=30))
    assert "No feedback or cost on this day." in html and "Nothing overdue." in html
    assert DeltaTable(lakehouse.table_uri(table("analytics/platform_summary"))).version() == 1
