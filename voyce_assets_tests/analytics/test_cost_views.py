"""analytics.cost_by_day / cost_by_month / cost_by_organization on DuckDB and Spark, against
hand-worked numbers.

percentile_cont over n sorted values v[0..n-1] at fraction p: position p * (n - 1) = i + f,
value v[i] + f * (v[i+1] - v[i]). Flag: cost per feedback > 1.2 * p90 or > 1.5 * median."""

import datetime as dt
from decimal import Decimal

from voyce_assets_tests.analytics.harness import A, B, assert_expected, inputs, run_both, uid

LLM = "llm_api"
STORAGE = "storage"
C = uid("org-c")
E = uid("org-e")


def d(month: int, day: int, year: int = 2026) -> dt.date:
    return dt.date(year, month, day)


def _cost(day, total, resource_type=LLM, org=A):
    return {
        "day": day,
        "cost_date": day,
        "resource_type": resource_type,
        "total_cost": Decimal(total),
        "organization_id": org,
    }


def _feedback(day, n=1, org=A):
    return [{"day": day, "organization_id": org} for _ in range(n)]


# ---- cost_by_day ----------------------------------------------------------------------------
D1, D2 = d(3, 30), d(3, 31)  # the run; windows 03-01..03-30 and 03-02..03-31


def test_cost_by_day_hand_worked(spark):
    costs = [
        _cost(d(2, 28), "100"),  # before both windows: would push the median up
        _cost(d(3, 1), "1"),  # cpf 1.0: D1's window only (D2's starts 03-02)
        _cost(d(3, 10), "2"),  # cpf 2.0
        _cost(d(3, 15), "50"),  # no feedback that day: cpf NULL, left out of the percentiles
        _cost(d(3, 20), "3"),  # cpf 3.0
        _cost(D1, "8"),  # 8 / 2 feedback = 4.0
        _cost(D1, "1", STORAGE),  # 1 / 2 = 0.5, compared with storage days only
        _cost(D2, "20"),
        _cost(D2, "6", org=None),  # (20 + 6) / 5 = 5.2; rows without organization count here
        _cost(d(4, 1), "99"),  # after the run: no row
    ]
    feedback = (
        _feedback(d(2, 28))
        + _feedback(d(3, 1))
        + _feedback(d(3, 10))
        + _feedback(d(3, 20))
        + _feedback(D1, 1)
        + _feedback(D1, 1, B)  # two organizations: 2 feedback on D1
        + _feedback(D2, 5)
    )
    data = inputs({"analytics/cost_tracking": costs, "raw_data/voice_feedback": feedback})
    got = run_both(spark, "analytics/cost_by_day", data, {"start_date": D1, "end_date": D2})
    assert_expected(
        got,
        {
            # D1 llm_api set [1, 2, 3, 4] (03-15's NULL skipped): median (2 + 3) / 2 = 2.5,
            # 1.5 * 2.5 = 3.75 < 4.0: flagged; p90 at 0.9 * 3 = 2.7: 3 + 0.7 * (4 - 3) = 3.7,
            # 1.2 * 3.7 = 4.44 (not by this rule).
            (D1, LLM): {
                "total_cost_usd": Decimal("8"),
                "feedback_count": 2,
                "cost_per_feedback_usd": 4.0,
                "is_flagged": True,
            },
            # storage set [0.5]: median 0.5, 0.5 > 0.75 no
            (D1, STORAGE): {
                "total_cost_usd": Decimal("1"),
                "feedback_count": 2,
                "cost_per_feedback_usd": 0.5,
                "is_flagged": False,
            },
            # D2 set [2, 3, 4, 5.2] (03-01 has left): median (3 + 4) / 2 = 3.5, 1.5 * 3.5 =
            # 5.25 > 5.2: just under; p90 at 2.7: 4 + 0.7 * (5.2 - 4) = 4.84, 1.2 * 4.84 =
            # 5.808. (With 03-01's 1.0 kept, the median 3 would give 4.5 and flag it.)
            (D2, LLM): {
                "total_cost_usd": Decimal("26"),
                "feedback_count": 5,
                "cost_per_feedback_usd": 5.2,
                "is_flagged": False,
            },
        },
        ("date", "resource_type"),
    )


# ---- cost_by_month --------------------------------------------------------------------------
M1, M2 = d(3, 31), d(4, 1)  # as-of days: months 2025-04..2026-03, then 2025-05..2026-04


def test_cost_by_month_hand_worked(spark):
    costs = [
        _cost(d(3, 31, 2025), "100"),  # month 2025-03: before both snapshots
        _cost(d(4, 15, 2025), "1"),  # 2025-04: cpf 1 / 1 = 1.0, M1's snapshot only
        _cost(d(6, 10, 2025), "2"),  # 2025-06: 2.0
        _cost(d(9, 10, 2025), "3"),  # 2025-09: 3.0
        _cost(d(1, 10), "10"),  # 2026-01: no feedback that month, cpf NULL
        _cost(d(3, 5), "4"),
        _cost(d(3, 31), "4"),  # 2026-03: (4 + 4) / 2 = 4.0
        _cost(d(4, 1), "5.2"),  # 2026-04: 5.2 / 1, after M1: M2's snapshot only
    ]
    feedback = (
        _feedback(d(3, 31, 2025))
        + _feedback(d(4, 15, 2025))
        + _feedback(d(6, 10, 2025))
        + _feedback(d(9, 10, 2025))
        + _feedback(d(3, 5))
        + _feedback(d(3, 31), 1, B)
        + _feedback(d(4, 1))
    )
    data = inputs({"analytics/cost_tracking": costs, "raw_data/voice_feedback": feedback})
    got = run_both(spark, "analytics/cost_by_month", data, {"start_date": M1, "end_date": M2})

    def row(cost, n, cpf, flagged=False):
        return {
            "total_cost_usd": Decimal(cost),
            "feedback_count": n,
            "cost_per_feedback_usd": cpf,
            "is_flagged": flagged,
        }

    assert_expected(
        got,
        {
            # M1 set [1, 2, 3, 4] (January's NULL skipped): median 2.5 -> 1.5 * 2.5 = 3.75;
            # p90 at 2.7 -> 3 + 0.7 * 1 = 3.7 -> 1.2 * 3.7 = 4.44. March 4.0 > 3.75: flagged.
            (M1, d(4, 1, 2025), LLM): row("1", 1, 1.0),
            (M1, d(6, 1, 2025), LLM): row("2", 1, 2.0),
            (M1, d(9, 1, 2025), LLM): row("3", 1, 3.0),
            (M1, d(1, 1), LLM): row("10", 0, None),  # NULL cost per feedback: never flagged
            (M1, d(3, 1), LLM): row("8", 2, 4.0, True),
            # M2 set [2, 3, 4, 5.2]: median 3.5 -> 5.25; p90 at 2.7 -> 4 + 0.7 * 1.2 = 4.84
            # -> 5.808. April 5.2 is just under 5.25; March 4.0 is no longer flagged.
            (M2, d(6, 1, 2025), LLM): row("2", 1, 2.0),
            (M2, d(9, 1, 2025), LLM): row("3", 1, 3.0),
            (M2, d(1, 1), LLM): row("10", 0, None),
            (M2, d(3, 1), LLM): row("8", 2, 4.0),
            (M2, d(4, 1), LLM): row("5.2", 1, 5.2),
        },
        ("as_of_date", "month_start", "resource_type"),
    )


# ---- cost_by_organization -------------------------------------------------------------------
def test_cost_by_organization_hand_worked(spark):
    costs = [
        _cost(d(3, 1), "10"),  # A, D1's window only
        _cost(d(3, 15), "2"),  # A: D1 (10 + 2) / 2 = 6.0, D2 2 / 2 = 1.0
        _cost(d(3, 10), "2", org=B),  # B: 2 / 1 = 2.0
        _cost(d(3, 10), "1", STORAGE, org=B),  # B storage: 1 / 1, alone in its set
        _cost(d(3, 20), "2.9", org=C),  # C: 2.9 / 1 = 2.9
        _cost(d(3, 25), "5", org=E),  # E: no feedback, cpf NULL
        _cost(d(3, 20), "100", org=None),  # no organization: left out
        _cost(d(4, 1), "7"),  # after both as-of days
    ]
    feedback = (
        _feedback(d(2, 28))  # A, before D1's window
        + _feedback(d(3, 15), 2)
        + _feedback(d(3, 10), 1, B)
        + _feedback(d(3, 20), 1, C)
        + _feedback(d(4, 1))  # A, after the as-of days
    )
    data = inputs({"analytics/cost_tracking": costs, "raw_data/voice_feedback": feedback})
    got = run_both(
        spark, "analytics/cost_by_organization", data, {"start_date": D1, "end_date": D2}
    )

    def row(cost, n, cpf, flagged=False):
        return {
            "total_cost_usd": Decimal(cost),
            "feedback_count": n,
            "cost_per_feedback_usd": cpf,
            "is_flagged": flagged,
        }

    assert_expected(
        got,
        {
            # D1 llm_api set [2, 2.9, 6] (E's NULL skipped): median 2.9 -> 1.5 * 2.9 = 4.35;
            # p90 at 0.9 * 2 = 1.8 -> 2.9 + 0.8 * (6 - 2.9) = 5.38 -> 6.456. A 6.0 > 4.35.
            (D1, A, LLM): row("12", 2, 6.0, True),
            (D1, B, LLM): row("2", 1, 2.0),
            (D1, C, LLM): row("2.9", 1, 2.9),
            (D1, E, LLM): row("5", 0, None),
            (D1, B, STORAGE): row("1", 1, 1.0),  # median 1.0 -> 1.5: no
            # D2 set [1, 2, 2.9]: median 2 -> 3.0; p90 at 1.8 -> 2 + 0.8 * 0.9 = 2.72 ->
            # 3.264. C's 2.9 is just under 3.0.
            (D2, A, LLM): row("2", 2, 1.0),
            (D2, B, LLM): row("2", 1, 2.0),
            (D2, C, LLM): row("2.9", 1, 2.9),
            (D2, E, LLM): row("5", 0, None),
            (D2, B, STORAGE): row("1", 1, 1.0),
        },
        ("as_of_date", "organization_id", "resource_type"),
    )
