"""analytics.most_active_users and retention_cohorts on DuckDB and Spark, against
hand-worked numbers. Each runs over two as-of days (each day its own window)."""

import datetime as dt

from voyce_assets_tests.analytics.harness import (
    A,
    B,
    assert_expected,
    inputs,
    run_both,
    ts,
    uid,
)

FEEDBACK = "raw_data/voice_feedback"
SENTIMENT = "raw_data/sentiment_analysis"


def fb(tag, org, user, day, duration=None, hour=10):
    return {
        "id": uid(tag),
        "organization_id": org,
        "user_id": user and uid(user),
        "audio_duration_seconds": duration,
        "created_at": ts(day, hour),
        "day": day,
    }


def sa(tag, score, day, error=None):
    label = None if error else ("positive" if score >= 0 else "negative")
    return {
        "voice_feedback_id": uid(tag),
        "sentiment_label": label,
        "sentiment_score": None if error else score,
        "error_message": error,
        "day": day,
    }


# ---- most_active_users: D-29..D; D1 = 03-30 sees 03-01..03-30, D2 = 03-31 sees 03-02..03-31
D1, D2 = dt.date(2026, 3, 30), dt.date(2026, 3, 31)
MAR = dt.date(2026, 3, 1)
MAR10, MAR15, MAR20 = dt.date(2026, 3, 10), dt.date(2026, 3, 15), dt.date(2026, 3, 20)


def test_most_active_users_hand_worked(spark):
    feedback = [
        fb("a1", A, "u1", dt.date(2026, 2, 28), 60),  # outside both
        fb("a2", A, "u1", MAR, 120),  # D1 only (edge)
        fb("a3", A, "u1", MAR20, 60),  # its analysis failed
        fb("a4", A, "u2", MAR10),  # no duration
        fb("a5", A, "u2", D2),  # after D1
        fb("a6", A, "u3", MAR20, 30),  # same created_at as a3, never analysed
        fb("a7", A, None, MAR20, 600),  # no user: left out
        # B: 11 users with one feedback each, b10 the latest: b0 falls past rank 10
        *[fb(f"b{k}", B, f"b{k}", MAR15, 60, hour=10 + k) for k in range(11)],
    ]
    sentiment = [
        sa("a1", -1.0, dt.date(2026, 2, 28)),
        sa("a2", 0.4, MAR),
        sa("a3", None, MAR20, error="refused"),
        sa("a4", 0.8, MAR10),
    ]
    data = inputs({FEEDBACK: feedback, SENTIMENT: sentiment})
    got = run_both(spark, "analytics/most_active_users", data, {"start_date": D1, "end_date": D2})
    key = ("as_of_date", "organization_id", "user_id")
    u3 = {
        "feedback_count": 1,
        "total_audio_minutes": 0.5,  # 30 / 60
        "avg_sentiment_score": None,
        "last_feedback_at": ts(MAR20),
    }
    expected = {
        # D1: u1 a2, a3 = 2 first; u3 and u2 have 1 each: u3's is the latest (03-20)
        (D1, A, uid("u1")): {
            "rank": 1,
            "feedback_count": 2,
            "total_audio_minutes": 3.0,  # (120 + 60) / 60
            "avg_sentiment_score": 0.4,  # a2 only: a3 failed
            "last_feedback_at": ts(MAR20),
        },
        (D1, A, uid("u3")): {"rank": 2, **u3},
        (D1, A, uid("u2")): {
            "rank": 3,
            "feedback_count": 1,
            "total_audio_minutes": None,
            "avg_sentiment_score": 0.8,
            "last_feedback_at": ts(MAR10),
        },
        # D2: u2 a4, a5 = 2 first; u1 (a3) and u3 (a6) tie on count and last feedback
        # (03-20 10:00): by user_id, uid("u1") = 4524... < uid("u3") = 984b...
        (D2, A, uid("u2")): {
            "rank": 1,
            "feedback_count": 2,
            "total_audio_minutes": None,
            "avg_sentiment_score": 0.8,  # a4; a5 not analysed
            "last_feedback_at": ts(D2),
        },
        (D2, A, uid("u1")): {
            "rank": 2,
            "feedback_count": 1,
            "total_audio_minutes": 1.0,  # 60 / 60
            "avg_sentiment_score": None,  # a3 failed
            "last_feedback_at": ts(MAR20),
        },
        (D2, A, uid("u3")): {"rank": 3, **u3},
    }
    for day in (D1, D2):
        for k in range(1, 11):  # b10 (latest, 20:00) rank 1 .. b1 (11:00) rank 10
            expected[(day, B, uid(f"b{k}"))] = {
                "rank": 11 - k,
                "feedback_count": 1,
                "total_audio_minutes": 1.0,
                "avg_sentiment_score": None,
                "last_feedback_at": ts(MAR15, 10 + k),
            }
    assert_expected(got, expected, key)


# ---- retention_cohorts: R1 = 2026-03-31 shows cohorts 2025-04..2026-03; R2 = 2026-04-01
# shows 2025-05..2026-04.
R1, R2 = dt.date(2026, 3, 31), dt.date(2026, 4, 1)
APR25, FEB, MAR_, APR = (
    dt.date(2025, 4, 1),
    dt.date(2026, 2, 1),
    dt.date(2026, 3, 1),
    dt.date(2026, 4, 1),
)


def test_retention_cohorts_hand_worked(spark):
    feedback = [
        fb("r1a", A, "r1", dt.date(2025, 4, 30)),  # cohort 2025-04: R1's oldest, not R2's
        fb("r1b", A, "r1", R1),  # n = 11
        fb("r1c", A, "r1", R2),
        fb("r2a", A, "r2", dt.date(2025, 3, 15)),  # cohort 2025-03: never shown
        fb("r2b", A, "r2", dt.date(2026, 2, 10)),  # ... though active later
        fb("r3a", A, "r3", dt.date(2026, 2, 1)),  # cohort 2026-02
        fb("r3b", A, "r3", dt.date(2026, 2, 20)),
        fb("r3c", A, "r3", R2),  # after R1
        fb("r4a", A, "r4", dt.date(2026, 2, 28)),  # cohort 2026-02
        fb("r4b", A, "r4", dt.date(2026, 3, 5)),
        fb("r5a", A, "r5", R2),  # cohort 2026-04, only as of R2
        fb("nou", A, None, dt.date(2026, 3, 10)),  # no user: left out
        fb("r6a", B, "r6", R1),  # cohort 2026-03
    ]
    data = inputs({FEEDBACK: feedback})
    got = run_both(spark, "analytics/retention_cohorts", data, {"start_date": R1, "end_date": R2})
    key = ("as_of_date", "organization_id", "cohort_month", "months_since_first")
    expected = {
        # R1, A 2025-04 (r1 alone): n = 0 .. 11 (03-2026 - 04-2025 = 11 months)
        (R1, A, APR25, 0): {"cohort_users": 1, "active_users": 1, "retention_rate": 1.0},
        (R1, A, APR25, 11): {"cohort_users": 1, "active_users": 1, "retention_rate": 1.0},
        # R1, A 2026-02 (r3, r4): n = 0: both; n = 1 (March): r4 (r3's April is after R1)
        (R1, A, FEB, 0): {"cohort_users": 2, "active_users": 2, "retention_rate": 1.0},
        (R1, A, FEB, 1): {"cohort_users": 2, "active_users": 1, "retention_rate": 0.5},
        (R1, B, MAR_, 0): {"cohort_users": 1, "active_users": 1, "retention_rate": 1.0},
        # R2: 2025-04 is 12 months back: gone
        (R2, A, FEB, 0): {"cohort_users": 2, "active_users": 2, "retention_rate": 1.0},
        (R2, A, FEB, 1): {"cohort_users": 2, "active_users": 1, "retention_rate": 0.5},
        (R2, A, FEB, 2): {
            "cohort_users": 2,
            "active_users": 1,  # r3 in April: 1 / 2
            "retention_rate": 0.5,
        },
        (R2, A, APR, 0): {"cohort_users": 1, "active_users": 1, "retention_rate": 1.0},
        (R2, B, MAR_, 0): {"cohort_users": 1, "active_users": 1, "retention_rate": 1.0},
        (R2, B, MAR_, 1): {
            "cohort_users": 1,
            "active_users": 0,  # a month with nobody back
            "retention_rate": 0.0,
        },
    }
    for n in range(1, 11):  # r1 gave nothing from 2025-05 to 2026-02: zero rows kept
        expected[(R1, A, APR25, n)] = {"cohort_users": 1, "active_users": 0, "retention_rate": 0.0}
    assert_expected(got, expected, key)
