"""analytics.organization_dashboard / platform_summary on DuckDB and Spark, against
hand-worked numbers."""

import datetime as dt
from decimal import Decimal

from voyce_assets_tests.analytics.harness import A, B, assert_expected, inputs, run_both, ts, uid

C = uid("org-c")  # active, no feedback
E = uid("org-e")  # inactive, feedback only before the window
F = uid("org-f")  # not in raw_data.organizations, has feedback
G = uid("org-g")  # active, created on D2
U1, U2, U3, U4 = uid("u1"), uid("u2"), uid("u3"), uid("u4")


def d(month: int, day: int) -> dt.date:
    return dt.date(2026, month, day)


D1, D2 = d(3, 30), d(3, 31)  # windows 03-01..03-30 and 03-02..03-31


def _dashboard_fixture():
    orgs = [
        {"id": A, "name": "Acme", "is_active": True, "day": d(1, 1)},
        {"id": B, "name": "Beta", "is_active": False, "day": d(1, 1)},  # shown: has feedback
        {"id": C, "name": "Gamma", "is_active": True, "day": d(1, 1)},
        {"id": E, "name": "Eps", "is_active": False, "day": d(1, 1)},  # not shown
        {"id": G, "name": "Delta", "is_active": True, "day": D2},  # did not exist on D1
    ]
    feedback = [
        {"id": uid("fA1"), "organization_id": A, "user_id": U1, "day": d(3, 1)},  # D1 only
        {"id": uid("fA2"), "organization_id": A, "user_id": U1, "day": d(3, 15)},
        {"id": uid("fA3"), "organization_id": A, "user_id": U2, "day": D2},  # D2 only
        {"id": uid("fA4"), "organization_id": A, "user_id": None, "day": d(3, 20)},
        {"id": uid("fB1"), "organization_id": B, "user_id": U3, "day": d(3, 10)},
        {"id": uid("fE1"), "organization_id": E, "user_id": U3, "day": d(2, 20)},
        {"id": uid("fF1"), "organization_id": F, "user_id": U4, "day": D1},
        {"id": uid("fA5"), "organization_id": A, "user_id": U3, "day": d(4, 1)},  # after
    ]

    def sent(f, label, score, day, error=None):
        return {
            "voice_feedback_id": uid(f),
            "sentiment_label": label,
            "sentiment_score": score,
            "error_message": error,
            "day": day,
        }

    sentiment = [
        sent("fA1", "negative", -0.6, d(3, 1)),
        sent("fA2", "positive", 0.8, d(3, 15)),
        sent("fA3", "positive", 0.4, D2),
        sent("fA4", None, None, d(3, 20), "refused"),  # failed: not analysed
        sent("fB1", None, None, d(3, 10), "timeout"),  # B: nothing analysed
        sent("fF1", "neutral", 0.0, D1),
    ]
    enhanced = [
        {"organization_id": A, "topics": ["billing", "support"], "day": d(3, 1)},
        {"organization_id": A, "topics": ["support", "app"], "day": d(3, 15)},
        {"organization_id": A, "topics": ["app"], "day": D2},
        {"organization_id": B, "topics": ["pricing", "delivery"], "day": d(3, 10)},  # a tie
        {"organization_id": A, "topics": ["zzz", "zzz", "zzz"], "day": d(4, 1)},  # after
    ]

    def item(n, f, day, status, due=None, completed=None):
        return {
            "id": uid(n),
            "voice_feedback_id": uid(f),
            "status": status,
            "due_date": due,
            "completed_at": completed,
            "created_at": ts(day),
            "day": day,
        }

    actions = [
        item("ai1", "fA1", d(3, 1), "open", due=D1),  # overdue on D2 only (03-30 < 03-31)
        # completed during D2: open at the end of D1 (and overdue then), not on D2
        item("ai2", "fA2", d(3, 15), "completed", due=d(3, 20), completed=ts(D2, 10)),
        item("ai3", "fA2", d(3, 16), "cancelled", due=d(3, 17)),  # never counts
        item("ai4", "fA3", D2, "in_progress"),  # created on D2; no due date: not overdue
        item("ai5", "fE1", d(2, 20), "open", due=d(2, 21)),  # E is not shown
        # completed late on D1: not open at the end of D1
        item("ai6", "fB1", d(3, 10), "completed", due=d(3, 11), completed=ts(D1, 23)),
    ]

    def cost(day, total, org):
        return {
            "day": day,
            "cost_date": day,
            "total_cost": Decimal(total),
            "organization_id": org,
            "resource_type": "llm_api",
        }

    costs = [
        cost(d(3, 1), "1.5", A),  # D1 only
        cost(d(3, 20), "1", A),
        cost(D2, "2.25", A),  # D2 only
        cost(d(3, 20), "9", None),  # no organization
        cost(d(2, 28), "9", C),  # before both windows
    ]
    return inputs(
        {
            "raw_data/organizations": orgs,
            "raw_data/voice_feedback": feedback,
            "raw_data/sentiment_analysis": sentiment,
            "processed_data/enhanced_transcriptions": enhanced,
            "raw_data/action_items": actions,
            "analytics/cost_tracking": costs,
        }
    )


def test_organization_dashboard_hand_worked(spark):
    got = run_both(
        spark,
        "analytics/organization_dashboard",
        _dashboard_fixture(),
        {"start_date": D1, "end_date": D2},
    )
    beta = {
        "organization_name": "Beta",
        "feedback_count_30d": 1,
        "active_users_30d": 1,
        "avg_sentiment_score_30d": None,
        "negative_share_30d": None,  # 0 analysed
        "top_topic_30d": "delivery",  # delivery 1 = pricing 1: by name
        "open_action_items": 0,
        "overdue_action_items": 0,
        "cost_usd_30d": None,
    }
    gamma = {
        "organization_name": "Gamma",
        "feedback_count_30d": 0,
        "active_users_30d": 0,
        "avg_sentiment_score_30d": None,
        "negative_share_30d": None,
        "top_topic_30d": None,
        "open_action_items": 0,
        "overdue_action_items": 0,
        "cost_usd_30d": None,
    }  # 02-28's cost is outside the window
    unknown = {
        "organization_name": None,
        "feedback_count_30d": 1,
        "active_users_30d": 1,
        "avg_sentiment_score_30d": 0.0,
        "negative_share_30d": 0.0,  # 0 / 1
        "top_topic_30d": None,
        "open_action_items": 0,
        "overdue_action_items": 0,
        "cost_usd_30d": None,
    }
    assert_expected(
        got,
        {
            (D1, A): {
                "organization_name": "Acme",
                "feedback_count_30d": 3,  # fA1, fA2, fA4
                "active_users_30d": 1,  # U1 (fA4 has no user)
                "avg_sentiment_score_30d": 0.1,  # (-0.6 + 0.8) / 2
                "negative_share_30d": 0.5,  # 1 / 2 analysed
                "top_topic_30d": "support",  # support 2, app 1, billing 1
                "open_action_items": 2,  # ai1, ai2
                "overdue_action_items": 1,  # ai2 (due 03-20)
                "cost_usd_30d": Decimal("2.5"),
            },  # 1.5 + 1
            (D1, B): beta,
            (D1, C): gamma,
            (D1, F): unknown,
            (D2, A): {
                "organization_name": "Acme",
                "feedback_count_30d": 3,  # fA2, fA3, fA4
                "active_users_30d": 2,  # U1, U2
                "avg_sentiment_score_30d": 0.6,  # (0.8 + 0.4) / 2
                "negative_share_30d": 0.0,  # 0 / 2
                "top_topic_30d": "app",  # app 2, support 1
                "open_action_items": 2,  # ai1, ai4
                "overdue_action_items": 1,  # ai1 (due 03-30)
                "cost_usd_30d": Decimal("3.25"),
            },  # 1 + 2.25
            (D2, B): beta,
            (D2, C): gamma,
            (D2, F): unknown,
            (D2, G): {**gamma, "organization_name": "Delta"},
        },
        ("as_of_date", "organization_id"),
    )


def test_platform_summary_hand_worked(spark):
    # Run 03-28..03-31: 03-28 feedback without cost, 03-29 nothing (no row), 03-30 both,
    # 03-31 cost only.
    feedback = [
        {
            "id": uid("p0"),
            "organization_id": A,
            "user_id": U1,
            "audio_duration_seconds": 30.0,
            "day": d(3, 28),
        },
        {
            "id": uid("p1"),
            "organization_id": A,
            "user_id": U1,
            "audio_duration_seconds": 60.0,
            "day": D1,
        },
        {
            "id": uid("p2"),
            "organization_id": A,
            "user_id": U2,
            "audio_duration_seconds": 120.0,
            "day": D1,
        },
        {
            "id": uid("p3"),
            "organization_id": B,
            "user_id": None,
            "audio_duration_seconds": None,
            "day": D1,
        },
        {
            "id": uid("p4"),
            "organization_id": B,
            "user_id": U1,
            "audio_duration_seconds": 180.0,
            "day": D1,
        },
        {"id": uid("px"), "organization_id": A, "user_id": U3, "day": d(3, 27)},  # before run
    ]

    def tr(f, day, error=None):
        return {"voice_feedback_id": uid(f), "error_message": error, "day": day}

    transcriptions = [
        tr("p0", d(3, 28)),
        tr("p1", D1),
        tr("p2", D1),
        tr("p3", D1, "bad audio"),
        tr("p4", D1),
        tr("px", d(3, 27), "bad audio"),
    ]

    def sent(f, label, score, day, error=None):
        return {
            "voice_feedback_id": uid(f),
            "sentiment_label": label,
            "sentiment_score": score,
            "error_message": error,
            "day": day,
        }

    sentiment = [
        sent("p0", None, None, d(3, 28), "refused"),
        sent("p1", "negative", -0.5, D1),
        sent("p2", "positive", 0.7, D1),
        sent("p4", None, None, D1, "timeout"),
    ]

    def cost(day, total, org=A):
        return {
            "day": day,
            "cost_date": day,
            "total_cost": Decimal(total),
            "organization_id": org,
            "resource_type": "compute",
        }

    costs = [
        cost(D1, "2"),
        cost(D2, "3.5"),
        cost(D2, "1.5", None),
        cost(d(3, 27), "8"),
        cost(d(4, 1), "8"),
    ]
    data = inputs(
        {
            "raw_data/voice_feedback": feedback,
            "raw_data/transcriptions": transcriptions,
            "raw_data/sentiment_analysis": sentiment,
            "analytics/cost_tracking": costs,
        }
    )
    got = run_both(
        spark, "analytics/platform_summary", data, {"start_date": d(3, 28), "end_date": D2}
    )
    assert_expected(
        got,
        {
            (d(3, 28),): {
                "active_organizations": 1,
                "active_users": 1,
                "feedback_count": 1,
                "audio_hours": 30 / 3600,
                "transcription_success_rate": 1.0,
                "analysis_success_rate": 0.0,  # 0 / 1
                "avg_sentiment_score": None,
                "negative_share": None,  # 0 analysed
                "total_cost_usd": Decimal(0),  # feedback but no cost: 0
                "cost_per_feedback_usd": 0.0,
            },  # 0 / 1
            (D1,): {
                "active_organizations": 2,  # A, B
                "active_users": 2,  # U1 (in A and B), U2; p3 has none
                "feedback_count": 4,
                "audio_hours": 0.1,  # (60 + 120 + 180) / 3600
                "transcription_success_rate": 0.75,  # 3 / 4
                "analysis_success_rate": 2 / 3,
                "avg_sentiment_score": 0.1,  # (-0.5 + 0.7) / 2
                "negative_share": 0.5,  # 1 / 2
                "total_cost_usd": Decimal("2"),
                "cost_per_feedback_usd": 0.5,
            },  # 2 / 4
            (D2,): {
                "active_organizations": 0,
                "active_users": 0,
                "feedback_count": 0,
                "audio_hours": None,
                "transcription_success_rate": None,
                "analysis_success_rate": None,
                "avg_sentiment_score": None,
                "negative_share": None,
                "total_cost_usd": Decimal("5"),  # 3.5 + 1.5 (no organization too)
                "cost_per_feedback_usd": None,
            },  # no feedback
        },
        ("date",),
    )
