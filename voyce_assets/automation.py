"""The pipeline's declarative automation: the conditions the stages' assets carry and the one
sensor, ``voyce_automation``, that evaluates them (stopped until a deployment switches it on).

Cadences (the seed's jobs): the voice and text stages, the training dataset and the
predictions run at most once an hour per partition, for today's and yesterday's partitions
whose upstream changed since they were last requested: at the first evaluation after the
top of the hour that finds such a change, all in the same tick, so one upload the CDC sensor
mirrored flows voice → text → predictions in one run. Analytics run at
01:00 UTC for the day that ended, and again for any of the ``LATE_DAYS`` finished days when
an upstream partition of that day lands after them (late mirror rows, predictions, the
Sunday training's costs). The weekly training stays a schedule (``model_training_weekly``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from dagster import (
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
)

from voyce_assets.tables import table_key

HOURLY = "0 * * * *"
ANALYTICS_DAILY = "0 1 * * *"
# A finished day's analytics are recomputed for late data this many days back.
LATE_DAYS = 7
# How often the sensor evaluates (the daemon's default is 30 s): a cron tick is seen within it.
EVALUATION_INTERVAL_SECONDS = 60


def recent_days(days: int) -> AutomationCondition:
    """Today's partition and the ``days - 1`` before it (``end_offset=1``: today exists)."""
    return AutomationCondition.in_latest_time_window(dt.timedelta(days=days))


def today_or_yesterday() -> AutomationCondition:
    # Near midnight a feedback of yesterday is still being processed: yesterday is not done.
    return recent_days(2).with_label("today or yesterday")


def yesterday() -> AutomationCondition:
    return (recent_days(2) & ~AutomationCondition.in_latest_time_window()).with_label("yesterday")


def finished_days(days: int = LATE_DAYS) -> AutomationCondition:
    return (recent_days(days + 1) & ~AutomationCondition.in_latest_time_window()).with_label(
        f"one of the {days} days before today"
    )


def hourly_after_upstream(
    cron: str = HOURLY, may_be_missing: Sequence[str] = ()
) -> AutomationCondition:
    """Once per ``cron`` interval, today's and yesterday's partitions whose upstream partition
    updated (or will be requested this tick, so a chain runs in one go) or whose last run
    failed, since they were last requested: at the first evaluation after the tick that finds
    one (Dagster's ``on_cron`` waits for its deps the same way); never with an upstream
    partition missing or in progress. ``may_be_missing``: upstream assets whose partition need not exist (lineage
    only, e.g. the registry for predictions, which load the champion by alias)."""
    missing = _missing(may_be_missing)
    return (
        today_or_yesterday()
        & AutomationCondition.cron_tick_passed(cron).since_last_handled()
        & (AutomationCondition.any_deps_updated() | AutomationCondition.execution_failed())
        .since_last_handled()
        .with_label("upstream updated or last run failed")
        & ~missing
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
    ).with_label(f"hourly after upstream ({cron})")


def daily_then_late(
    cron: str = ANALYTICS_DAILY,
    late_days: int = LATE_DAYS,
    may_be_missing: Sequence[str] = (),
    late_cron: str = HOURLY,
) -> AutomationCondition:
    """Yesterday's partition at ``cron``, once its upstream partitions exist; then any of the
    ``late_days`` finished days that was computed (or whose computation failed) again when one
    of its upstream partitions updated after it was last requested, at most once per
    ``late_cron`` interval (the CDC sensor and the hourly runs touch recent days all day).
    Never while an upstream partition is in progress, so a day's numbers wait for the hour's
    run that is still filling it. ``may_be_missing``: optional inputs (``Input(required=
    False)``), whose partition need not exist."""
    # A cron tick counts only once the day has ended: today's partition exists all day (it is
    # the latest), and a tick seen then must not fire at midnight, when it becomes yesterday.
    handled_or_today = (
        AutomationCondition.newly_requested()
        | AutomationCondition.newly_updated()
        | AutomationCondition.in_latest_time_window()
    )
    daily = (
        yesterday()
        & AutomationCondition.cron_tick_passed(cron).since(handled_or_today)
        & ~_missing(may_be_missing)
    ).with_label(f"yesterday at {cron}, its upstream there")
    late = (
        finished_days(late_days)
        & (~AutomationCondition.missing() | AutomationCondition.execution_failed())
        & AutomationCondition.any_deps_updated().since_last_handled()
        & AutomationCondition.cron_tick_passed(late_cron).since_last_handled()
    ).with_label(f"late upstream data (at most once per {late_cron})")
    return (
        (daily | late)
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
    ).with_label(f"daily ({cron}), then late data ({late_days} days)")


def _missing(may_be_missing: Sequence[str]) -> AutomationCondition:
    missing = AutomationCondition.any_deps_missing()
    if may_be_missing:
        missing = missing.ignore(AssetSelection.assets(*(table_key(p) for p in may_be_missing)))
    return missing


voyce_automation = AutomationConditionSensorDefinition(
    "voyce_automation",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=EVALUATION_INTERVAL_SECONDS,
    description="Evaluates every asset's automation condition: voice, text, training dataset "
    "and predictions hourly after upstream; analytics at 01:00 UTC and for late data.",
)
