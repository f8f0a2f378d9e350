"""analytics.action_items_by_status and overdue_action_items on DuckDB and Spark, over a
two-day run (each as-of day its own rows), against hand-worked numbers."""

import datetime as dt

from voyce_assets_tests.analytics.harness import A, B, assert_expected, inputs, run_both, ts, uid

D1 = dt.date(2026, 3, 10)  # run start (as-of day 1)
D2 = dt.date(2026, 3, 11)  # run end (as-of day 2)
RUN = {"start_date": D1, "end_date": D2}


def d(day: int) -> dt.date:
    return dt.date(2026, 3, day)


def _item(name, fb, created, priority, status, due, completed_at=None, assigned_to=None):
    return {
        "id": uid(name),
        "voice_feedback_id": uid(fb),
        "description": f"follow up {name}",
        "priority": priority,
        "status": status,
        "due_date": due,
        "completed_at": completed_at,
        "assigned_to": assigned_to,
        "day": created,  # created_at = 10:00 of this day; event_date = this day
    }


def _fixture():
    feedback = [
        {"id": uid("fa"), "organization_id": A, "day": d(1)},
        {"id": uid("fb"), "organization_id": B, "day": d(1)},
    ]
    items = [
        # completed during D1 (15:00): completed on both days, never overdue
        _item("i1", "fa", d(5), "high", "completed", d(8), ts(D1, 15)),
        # completed on D2: still open (and overdue) on D1
        _item("i2", "fa", d(5), "high", "completed", d(9), ts(D2, 9), uid("u1")),
        # due on D1 itself: not overdue on D1, 1 day overdue on D2
        _item("i3", "fa", d(6), "low", "open", D1),
        # cancelled: counted by status, never overdue
        _item("i4", "fa", d(6), "low", "cancelled", d(1)),
        # created on D2: not there on D1
        _item("i5", "fa", D2, "urgent", "in_progress", D1),
        # created after the run: never counted
        _item("i6", "fa", d(12), "medium", "open", d(1)),
        # marked completed without completed_at: open, and overdue
        _item("i7", "fb", d(2), "medium", "completed", d(3)),
        # no due date: never overdue
        _item("i8", "fb", d(2), "medium", "open", None),
        # due after the run
        _item("i9", "fb", d(3), "low", "in_progress", d(20)),
    ]
    return inputs({"raw_data/voice_feedback": feedback, "raw_data/action_items": items})


def test_action_items_by_status_hand_worked(spark):
    got = run_both(spark, "analytics/action_items_by_status", _fixture(), RUN)
    a1 = 1 / 4  # D1, A: i1 completed of i1 i2 i3 i4
    a2 = 2 / 5  # D2, A: i1 i2 completed of i1 i2 i3 i4 i5
    b = 0.0  # B: nothing completed of i7 i8 i9 (i7 has no completed_at)
    assert_expected(
        got,
        {
            (D1, A, "completed", "high"): {"item_count": 1, "completion_rate": a1},  # i1
            (D1, A, "open", "high"): {"item_count": 1, "completion_rate": a1},  # i2
            (D1, A, "open", "low"): {"item_count": 1, "completion_rate": a1},  # i3
            (D1, A, "cancelled", "low"): {"item_count": 1, "completion_rate": a1},  # i4
            (D1, B, "open", "medium"): {"item_count": 2, "completion_rate": b},  # i7 i8
            (D1, B, "in_progress", "low"): {"item_count": 1, "completion_rate": b},  # i9
            (D2, A, "completed", "high"): {"item_count": 2, "completion_rate": a2},  # i1 i2
            (D2, A, "open", "low"): {"item_count": 1, "completion_rate": a2},  # i3
            (D2, A, "cancelled", "low"): {"item_count": 1, "completion_rate": a2},  # i4
            (D2, A, "in_progress", "urgent"): {"item_count": 1, "completion_rate": a2},  # i5
            (D2, B, "open", "medium"): {"item_count": 2, "completion_rate": b},  # i7 i8
            (D2, B, "in_progress", "low"): {"item_count": 1, "completion_rate": b},  # i9
        },
        ("as_of_date", "organization_id", "status", "priority"),
    )


def test_overdue_action_items_hand_worked(spark):
    got = run_both(spark, "analytics/overdue_action_items", _fixture(), RUN)
    assert_expected(
        got,
        {
            (D1, uid("i2")): {
                "organization_id": A,
                "voice_feedback_id": uid("fa"),
                "description": "follow up i2",
                "priority": "high",
                "status": "completed",  # the current status, as stored
                "assigned_to": uid("u1"),
                "due_date": d(9),
                "days_overdue": 1,  # 10 - 9
            },
            (D1, uid("i7")): {
                "organization_id": B,
                "priority": "medium",
                "assigned_to": None,
                "due_date": d(3),
                "days_overdue": 7,  # 10 - 3
            },
            (D2, uid("i3")): {"organization_id": A, "status": "open", "days_overdue": 1},  # 11-10
            (D2, uid("i5")): {"organization_id": A, "status": "in_progress", "days_overdue": 1},
            (D2, uid("i7")): {"organization_id": B, "days_overdue": 8},  # 11 - 3
        },
        ("as_of_date", "action_item_id"),
    )
