"""analytics.topic_ranking, trending_topics and topic_sentiment on DuckDB and Spark, against
hand-worked numbers. Each runs over two as-of days (each day its own window)."""

import datetime as dt

from voyce_assets_tests.analytics.harness import A, B, assert_expected, inputs, run_both, uid

ENHANCED = "processed_data/enhanced_transcriptions"


def d(month: int, day: int) -> dt.date:
    return dt.date(2026, month, day)


def enhanced(tag, org, day, topics, label=None, score=None):
    return {
        "voice_feedback_id": uid(tag),
        "organization_id": org,
        "topics": topics,
        "sentiment_label": label,
        "sentiment_score": score,
        "day": day,
    }


# ---- topic_ranking: D-6..D; D1 = 03-14 sees 03-08..03-14, D2 = 03-15 sees 03-09..03-15 ----
D1, D2 = d(3, 14), d(3, 15)
MANY = [f"t{i:02d}" for i in range(1, 12)]  # 11 topics: t10 and t11 fall past rank 10


def test_topic_ranking_hand_worked(spark):
    data = inputs(
        {
            ENHANCED: [
                enhanced("e1", A, d(3, 8), ["billing", "app"], "positive", 0.6),  # D1 only (edge)
                enhanced("e2", A, d(3, 7), ["billing"], "negative", -0.9),  # outside both
                enhanced("e3", A, D1, ["app", "billing", "app"], "negative", -0.4),  # app once
                # after D1; no label: a mention, not in the denominator
                enhanced("e4", A, D2, ["app"]),
                enhanced("e5", A, d(3, 12), ["delivery"], "neutral", 0.0),
                enhanced("e6", B, D1, ["app"]),  # B's only labelled feedback on D1: none
                enhanced("e7", B, D2, MANY, "positive", 0.5),
            ]
        }
    )
    got = run_both(spark, "analytics/topic_ranking", data, {"start_date": D1, "end_date": D2})
    key = ("as_of_date", "organization_id", "topic")
    expected = {
        # D1, A: labelled feedback e1, e3, e5 = 3; app and billing tie at 2 (e1, e3): by name
        (D1, A, "app"): {
            "rank": 1,
            "mention_count": 2,
            "share_of_feedback": 2 / 3,
            "avg_sentiment_score": 0.1,
        },  # (0.6 - 0.4) / 2
        (D1, A, "billing"): {
            "rank": 2,
            "mention_count": 2,
            "share_of_feedback": 2 / 3,
            "avg_sentiment_score": 0.1,
        },  # (0.6 - 0.4) / 2
        (D1, A, "delivery"): {
            "rank": 3,
            "mention_count": 1,
            "share_of_feedback": 1 / 3,
            "avg_sentiment_score": 0.0,
        },
        # D1, B: e6 has no label: 0 labelled feedback, share NULL
        (D1, B, "app"): {
            "rank": 1,
            "mention_count": 1,
            "share_of_feedback": None,
            "avg_sentiment_score": None,
        },
        # D2, A: e3, e4, e5 (e1 left the window); labelled e3, e5 = 2
        (D2, A, "app"): {
            "rank": 1,
            "mention_count": 2,
            # labelled mentions over labelled feedback: e3 of e3, e5 (e4 has no label)
            "share_of_feedback": 0.5,
            "avg_sentiment_score": -0.4,
        },  # e3 only: e4 has no score
        (D2, A, "billing"): {
            "rank": 2,
            "mention_count": 1,
            "share_of_feedback": 0.5,
            "avg_sentiment_score": -0.4,
        },  # 1 / 2; e3
        (D2, A, "delivery"): {
            "rank": 3,
            "mention_count": 1,
            "share_of_feedback": 0.5,
            "avg_sentiment_score": 0.0,
        },  # ties billing: by name
        # D2, B: labelled e7 = 1; all tie at 1 mention: app, then t01..t09 (t10, t11 cut)
        (D2, B, "app"): {
            "rank": 1,
            "mention_count": 1,
            "share_of_feedback": 0.0,  # its one mention (e6) has no label: 0 of e7
            "avg_sentiment_score": None,
        },
    }
    for n, topic in enumerate(MANY[:9], start=2):
        expected[(D2, B, topic)] = {
            "rank": n,
            "mention_count": 1,
            "share_of_feedback": 1.0,
            "avg_sentiment_score": 0.5,
        }
    assert_expected(got, expected, key)


# ---- trending_topics: this week D-6..D, last week D-13..D-7 ----------------------------
# D1 = 03-14: this 03-08..03-14, last 03-01..03-07; D2 = 03-15: this 03-09..03-15, last
# 03-02..03-08.


def test_trending_topics_hand_worked(spark):
    data = inputs(
        {
            ENHANCED: [
                enhanced("t1", A, d(2, 28), ["app"]),  # outside both
                enhanced("t2", A, d(3, 1), ["app"]),  # D1 last week (edge); outside D2
                enhanced("t3", A, d(3, 7), ["app", "billing"]),  # last week for both
                enhanced("t4", A, d(3, 8), ["app"]),  # D1 this week (edge), D2 last week (edge)
                enhanced("t5", A, D1, ["billing", "billing"]),  # one mention
                enhanced("t6", A, D2, ["search"]),  # after D1
                enhanced("t7", B, d(3, 10), ["app"]),
            ]
        }
    )
    got = run_both(spark, "analytics/trending_topics", data, {"start_date": D1, "end_date": D2})
    key = ("as_of_date", "organization_id", "topic")
    new_app = {
        "this_week_count": 1,
        "last_week_count": 0,
        "change": 1,
        "growth_rate": None,
        "is_new": True,
    }
    assert_expected(
        got,
        {
            # app: this t4 = 1, last t2, t3 = 2: (1 - 2) / 2
            (D1, A, "app"): {
                "this_week_count": 1,
                "last_week_count": 2,
                "change": -1,
                "growth_rate": -0.5,
                "is_new": False,
            },
            # billing: this t5, last t3: (1 - 1) / 1
            (D1, A, "billing"): {
                "this_week_count": 1,
                "last_week_count": 1,
                "change": 0,
                "growth_rate": 0.0,
                "is_new": False,
            },
            (D1, B, "app"): new_app,  # last week 0: growth NULL
            # app: this none, last t3, t4 = 2: (0 - 2) / 2
            (D2, A, "app"): {
                "this_week_count": 0,
                "last_week_count": 2,
                "change": -2,
                "growth_rate": -1.0,
                "is_new": False,
            },
            (D2, A, "billing"): {
                "this_week_count": 1,
                "last_week_count": 1,
                "change": 0,
                "growth_rate": 0.0,
                "is_new": False,
            },
            (D2, A, "search"): {
                "this_week_count": 1,
                "last_week_count": 0,
                "change": 1,
                "growth_rate": None,
                "is_new": True,
            },
            (D2, B, "app"): new_app,
        },
        key,
    )


# ---- topic_sentiment: D-29..D; E1 = 03-30 sees 03-01..03-30, E2 = 03-31 sees 03-02..03-31 ---
E1, E2 = d(3, 30), d(3, 31)


def test_topic_sentiment_hand_worked(spark):
    data = inputs(
        {
            ENHANCED: [
                enhanced("s1", A, d(2, 28), ["app"], "positive", 0.9),  # outside both
                enhanced("s2", A, d(3, 1), ["app"], "positive", 0.5),  # E1 only (edge)
                enhanced("s3", A, d(3, 10), ["app", "billing"], "negative", -0.6),
                enhanced("s4", A, d(3, 20), ["app"], "positive", 0.7),
                enhanced("s5", A, d(3, 25), ["app"]),  # no label: left out
                enhanced("s6", A, E2, ["billing"], "negative", -0.2),  # after E1
                enhanced("s7", B, d(3, 15), ["app", "app"], "mixed", 0.0),  # one mention
            ]
        }
    )
    got = run_both(spark, "analytics/topic_sentiment", data, {"start_date": E1, "end_date": E2})
    key = ("as_of_date", "organization_id", "topic", "sentiment_label")
    b_app = {"mention_count": 1, "share_of_topic": 1.0, "avg_sentiment_score": 0.0}
    assert_expected(
        got,
        {
            # E1, A app: positive s2, s4; negative s3; 3 labelled mentions
            (E1, A, "app", "positive"): {
                "mention_count": 2,
                "share_of_topic": 2 / 3,
                "avg_sentiment_score": 0.6,
            },  # (0.5 + 0.7) / 2
            (E1, A, "app", "negative"): {
                "mention_count": 1,
                "share_of_topic": 1 / 3,
                "avg_sentiment_score": -0.6,
            },
            (E1, A, "billing", "negative"): {
                "mention_count": 1,
                "share_of_topic": 1.0,
                "avg_sentiment_score": -0.6,
            },
            (E1, B, "app", "mixed"): b_app,
            # E2, A app: positive s4, negative s3 (s2 left the window): 1 / 2 each
            (E2, A, "app", "positive"): {
                "mention_count": 1,
                "share_of_topic": 0.5,
                "avg_sentiment_score": 0.7,
            },
            (E2, A, "app", "negative"): {
                "mention_count": 1,
                "share_of_topic": 0.5,
                "avg_sentiment_score": -0.6,
            },
            # billing: s3, s6: (-0.6 - 0.2) / 2
            (E2, A, "billing", "negative"): {
                "mention_count": 2,
                "share_of_topic": 1.0,
                "avg_sentiment_score": -0.4,
            },
            (E2, B, "app", "mixed"): b_app,
        },
        key,
    )
