"""analytics.sentiment_trends_weekly / _monthly on DuckDB and Spark, against hand-worked
numbers."""

import datetime as dt

from voyce_assets_tests.analytics.harness import A, B, assert_expected, inputs, run_both, uid

THU = dt.date(2026, 11, 26)  # a Thursday; its week starts Monday 2026-11-23
MON = dt.date(2026, 11, 23)
PREV_SUN = dt.date(2026, 11, 22)  # the week before (starts 2026-11-16)
OLD = dt.date(2026, 8, 30)  # a Sunday: its week starts 2026-08-24, 13 weeks before MON


def _fixture():
    feedback = [
        {"id": uid("f1"), "organization_id": A, "day": MON},
        {"id": uid("f2"), "organization_id": A, "day": THU},
        {"id": uid("f3"), "organization_id": A, "day": PREV_SUN},
        {"id": uid("f4"), "organization_id": B, "day": THU},
        {"id": uid("f5"), "organization_id": A, "day": OLD},  # outside 12 weeks
        {"id": uid("f6"), "organization_id": A, "day": dt.date(2026, 11, 27)},  # after as-of
    ]
    sentiment = [
        {
            "voice_feedback_id": uid("f1"),
            "sentiment_label": "negative",
            "sentiment_score": -0.5,
            "day": MON,
        },
        {
            "voice_feedback_id": uid("f2"),
            "sentiment_label": "positive",
            "sentiment_score": 0.9,
            "day": THU,
        },
        {
            "voice_feedback_id": uid("f3"),
            "sentiment_label": "mixed",
            "sentiment_score": 0.0,
            "day": PREV_SUN,
        },
        # f4's analysis failed: counted as feedback, not in the mix
        {
            "voice_feedback_id": uid("f4"),
            "sentiment_label": None,
            "sentiment_score": None,
            "error_message": "refused",
            "day": THU,
        },
    ]
    return inputs({"raw_data/voice_feedback": feedback, "raw_data/sentiment_analysis": sentiment})


def test_weekly_trend_hand_worked(spark):
    got = run_both(
        spark, "analytics/sentiment_trends_weekly", _fixture(), {"start_date": THU, "end_date": THU}
    )
    key = ("as_of_date", "organization_id", "week_start")
    assert_expected(
        got,
        {
            (THU, A, MON): {
                "feedback_count": 2,
                "positive_count": 1,
                "negative_count": 1,
                "neutral_count": 0,
                "mixed_count": 0,
                "avg_sentiment_score": 0.2,
                "negative_share": 0.5,
            },
            (THU, A, dt.date(2026, 11, 16)): {
                "feedback_count": 1,
                "mixed_count": 1,
                "avg_sentiment_score": 0.0,
                "negative_share": 0.0,
            },
            (THU, B, MON): {
                "feedback_count": 1,
                "positive_count": 0,
                "avg_sentiment_score": None,
                "negative_share": None,
            },
        },
        key,
    )


# Monthly: a run over two as-of days. On 2026-11-30 the 12 months start 2025-12-01; on
# 2026-12-01 they start 2026-01-01.
NOV30 = dt.date(2026, 11, 30)
DEC1 = dt.date(2026, 12, 1)


def _monthly_fixture():
    feedback = [
        {"id": uid("m1"), "organization_id": A, "day": dt.date(2025, 11, 30)},  # never inside
        {"id": uid("m2"), "organization_id": A, "day": dt.date(2025, 12, 1)},  # NOV30 only
        {"id": uid("m3"), "organization_id": A, "day": NOV30},
        {"id": uid("m4"), "organization_id": A, "day": dt.date(2026, 11, 2)},
        {"id": uid("m5"), "organization_id": A, "day": DEC1},  # after NOV30
        {"id": uid("m6"), "organization_id": B, "day": dt.date(2026, 1, 1)},  # DEC1's first day
        {"id": uid("m7"), "organization_id": B, "day": DEC1},
        {"id": uid("m8"), "organization_id": A, "day": dt.date(2026, 12, 2)},  # after both
    ]

    def s(tag, label, score, day, error=None):
        return {
            "voice_feedback_id": uid(tag),
            "sentiment_label": label,
            "sentiment_score": score,
            "error_message": error,
            "day": day,
        }

    sentiment = [
        s("m1", "negative", -0.5, dt.date(2025, 11, 30)),
        s("m2", "positive", 0.8, dt.date(2025, 12, 1)),
        s("m3", "negative", -0.4, NOV30),
        s("m4", "positive", 0.6, dt.date(2026, 11, 2)),
        s("m5", "neutral", 0.1, DEC1),
        s("m6", "mixed", 0.0, dt.date(2026, 1, 1)),
        # m7's analysis failed: a month of volume with no mix (NULL share, not NaN)
        s("m7", None, None, DEC1, error="timeout"),
        s("m8", "negative", -1.0, dt.date(2026, 12, 2)),
    ]
    return inputs({"raw_data/voice_feedback": feedback, "raw_data/sentiment_analysis": sentiment})


def test_monthly_trend_hand_worked(spark):
    got = run_both(
        spark,
        "analytics/sentiment_trends_monthly",
        _monthly_fixture(),
        {"start_date": NOV30, "end_date": DEC1},
    )
    key = ("as_of_date", "organization_id", "month_start")
    nov = dt.date(2026, 11, 1)
    jan = dt.date(2026, 1, 1)
    # November as of either day: m3 (negative -0.4) and m4 (positive 0.6)
    november = {
        "feedback_count": 2,
        "positive_count": 1,
        "negative_count": 1,
        "neutral_count": 0,
        "mixed_count": 0,
        "avg_sentiment_score": 0.1,  # (-0.4 + 0.6) / 2
        "negative_share": 0.5,
    }  # 1 / 2
    # B's January: m6 (mixed 0.0)
    january = {
        "feedback_count": 1,
        "mixed_count": 1,
        "positive_count": 0,
        "avg_sentiment_score": 0.0,
        "negative_share": 0.0,
    }  # 0 / 1
    assert_expected(
        got,
        {
            (NOV30, A, dt.date(2025, 12, 1)): {
                "feedback_count": 1,
                "positive_count": 1,
                "avg_sentiment_score": 0.8,
                "negative_share": 0.0,
            },  # 0 / 1
            (NOV30, A, nov): november,
            (NOV30, B, jan): january,
            (DEC1, A, nov): november,
            (DEC1, A, DEC1): {
                "feedback_count": 1,
                "neutral_count": 1,
                "avg_sentiment_score": 0.1,
                "negative_share": 0.0,
            },  # 0 / 1
            (DEC1, B, jan): january,
            (DEC1, B, DEC1): {
                "feedback_count": 1,
                "positive_count": 0,
                "negative_count": 0,
                "avg_sentiment_score": None,
                "negative_share": None,
            },  # 0 analysed
        },
        key,
    )
