"""The seed's alerts ("Monitoring and Alerts"), posted to the ``alert_webhook`` resource.

Three sensors, all stopped until turned on:

- ``pipeline_health_alerts`` reads each new materialization of ``analytics/pipeline_health``
  and the day's row: processing failures above 5%, predictions below 0.6 confidence above
  20%, failed sentiment-provider calls, a day's cost above ``VOYCE_DAILY_COST_BUDGET_USD``;
- ``model_quality_alerts`` reads new evaluations of the drift checks ``feature_drift`` and
  ``prediction_drift`` of ``ml_models/predictions`` and alerts each failing partition (low
  confidence is the health sensor's, judged once per finished day);
- ``run_failure_alerts`` posts a failed run's job, run id and failed steps' errors.

An alert is posted once per incident, not once per tick: an incident's key (metric and day,
check and day; for a failed run its job, partitions and failed steps, per day) is remembered
in the sensor's cursor while it lasts; a day judged healthy again closes it, so a later
failure of that day is a new incident. An alert the webhook did not take stays pending
(cursor) and is retried on the next tick; after one failed delivery a tick sends no more.
A tick judges everything before it sends anything, so a tick that fails has sent nothing.
Switched on, a sensor judges what is recent (``RECENT_DAYS``), never the whole history. The run-failure
sensor's cursor belongs to Dagster, so its keys and pending alerts live in the instance's
key-value store, and the health sensor's ticks retry them as well.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dagster import (
    AssetCheckKey,
    AssetRecordsFilter,
    DagsterInstance,
    DefaultSensorStatus,
    RunFailureSensorContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    sensor,
)
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecordStatus,
)

from voyce_assets.analytics.resources import AlertDeliveryError, AlertWebhook
from voyce_assets.catalog import table
from voyce_assets.resources import Lakehouse
from voyce_assets.tables import table_key

HEALTH = table("analytics/pipeline_health")
PREDICTIONS_KEY = table_key("ml_models/predictions")
# The drift checks. Low confidence is judged once per finished day from pipeline_health (its
# check, re-evaluated hourly on today's predictions, would open and close the incident as the
# share hovers around 20%, and alert the same day twice under two sensors).
QUALITY_CHECKS = ("feature_drift", "prediction_drift")
INTERVAL_SECONDS = 300
# Bounds of what a cursor remembers: open incidents (oldest forgotten first) and alerts
# still to deliver; a page of new events per tick.
MAX_OPEN = 500
MAX_PENDING = 100
PAGE = 100
# Days (and check evaluations) older than this are not judged: switching a sensor on must not
# replay the history, only what a late recompute can still change (automation.LATE_DAYS + 1).
RECENT_DAYS = 8
RUN_ALERTS_KEY = "voyce/alerts/run_failures"


@dataclass(frozen=True)
class Alert:
    key: str
    title: str
    lines: tuple[str, ...] = ()

    def payload(self) -> dict[str, Any]:
        """Slack's incoming-webhook body: ``text`` (notifications) and ``blocks``."""
        body = "\n".join([f"*{self.title}*", *self.lines])
        return {
            "key": self.key,
            "text": f"Voyce alert: {self.title}",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": body[:2900]}}],
        }


@dataclass
class AlertState:
    """What a sensor remembers between ticks (its cursor, as JSON)."""

    after: int | None = None
    seen: dict[str, int] = field(default_factory=dict)
    open: list[str] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, cursor: str | None) -> AlertState:
        return cls(**json.loads(cursor)) if cursor else cls()

    def dump(self) -> str:
        self.open = self.open[-MAX_OPEN:]
        self.pending = self.pending[-MAX_PENDING:]
        return json.dumps(
            {"after": self.after, "seen": self.seen, "open": self.open, "pending": self.pending},
            sort_keys=True,
        )


@dataclass
class Delivery:
    """One tick's deliveries. After the first failure the rest wait for the next tick: a
    webhook that is down costs one timeout per tick, not one per alert, so the tick ends
    (and saves its cursor) well within the sensor's time limit."""

    context: Any
    webhook: AlertWebhook
    failed: bool = False

    def send(self, payload: dict[str, Any]) -> bool:
        """Deliver one alert (or log it when no webhook is configured); False: later."""
        if not self.webhook.configured:
            body = payload["blocks"][0]["text"]["text"]
            self.context.log.warning(f"alert (no webhook configured, logged only): {body}")
            return True
        if self.failed:
            return False
        try:
            self.webhook.post(payload["text"], payload["blocks"])
        except AlertDeliveryError as e:
            self.failed = True
            self.context.log.error(
                f"alert not delivered, will retry next tick: {e}: {payload['text']}"
            )
            return False
        self.context.log.info(f"alert posted: {payload['text']}")
        return True


def flush(delivery: Delivery, pending: list[dict]) -> tuple[list[dict], int]:
    """Retry ``pending``: those still undelivered, and how many went out."""
    left = [p for p in pending if not delivery.send(p)]
    return left, len(pending) - len(left)


def reconcile(delivery: Delivery, state: AlertState, judged: dict[str, Alert | None]) -> int:
    """Open an incident for each new failing key (alerting it), close each healthy key;
    how many alerts went out."""
    sent = 0
    for key, alert in judged.items():
        if alert is None:
            if key in state.open:
                state.open.remove(key)
            continue
        if key in state.open:
            continue  # still the same incident: already alerted
        state.open.append(key)
        payload = alert.payload()
        if delivery.send(payload):
            sent += 1
        else:
            state.pending.append(payload)
    return sent


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _today() -> dt.date:
    return _now().date()


# ---- pipeline health ------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{x:.1%}"


def judge_health(row: dict[str, Any], webhook: AlertWebhook) -> dict[str, Alert | None]:
    """Each metric of one day's row: an Alert when over its threshold, None when healthy
    (or not measured)."""
    day = row["date"].isoformat()
    rate, share = row["processing_failure_rate"], row["low_confidence_share"]
    errors, budget = row["sentiment_errors"], webhook.budget()
    cost = float(row["total_cost_usd"]) if row["total_cost_usd"] is not None else None
    # name: (failing, title and detail, built only when failing)
    rules: dict[str, tuple[bool, Callable[[], tuple[str, str]]]] = {
        "processing_failures": (
            rate is not None and rate > webhook.max_failure_rate,
            lambda: (
                f"Processing failures {_pct(rate)} on {day} "
                f"(threshold {_pct(webhook.max_failure_rate)})",
                f"{row['files_failed']} of {row['files_processed']} files failed to transcribe.",
            ),
        ),
        "low_confidence": (
            share is not None and share > webhook.max_low_confidence_share,
            lambda: (
                f"Low-confidence predictions {_pct(share)} on {day} "
                f"(threshold {_pct(webhook.max_low_confidence_share)})",
                f"{row['prediction_count']} predictions; confidence below 0.6 counts as low.",
            ),
        ),
        "sentiment_errors": (
            errors is not None and errors > webhook.max_sentiment_errors,
            lambda: (
                f"Sentiment provider errors on {day}: {errors}",
                f"{errors} of {row['sentiment_calls']} provider calls failed.",
            ),
        ),
        "daily_cost": (
            budget is not None and cost is not None and cost > budget,
            lambda: (
                f"Daily cost ${cost:.2f} on {day} above the budget ${budget:.2f}",
                f"{row['feedback_count']} feedback items; see analytics.cost_tracking.",
            ),
        ),
    }
    out: dict[str, Alert | None] = {}
    for name, (failing, describe) in rules.items():
        key = f"{name}:{day}"
        out[key] = None
        if failing:
            title, detail = describe()
            out[key] = Alert(key, title, (detail,))
    return out


def new_health_partitions(
    instance: DagsterInstance, after: int | None
) -> tuple[list[str], int | None]:
    """Partitions of ``pipeline_health`` materialized after storage id ``after`` (one page),
    and the newest storage id read. On the first tick (``after`` None), only the newest
    page, and of it the days within ``RECENT_DAYS`` of the newest: switching the sensor on
    judges what is recent, it does not replay the history."""
    first = after is None
    page = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=table_key(HEALTH.path), after_storage_id=after),
        limit=PAGE,
        ascending=not first,
    )
    records = sorted(page.records, key=lambda r: r.storage_id)
    keys: list[str] = []
    for record in records:
        if record.partition_key and record.partition_key not in keys:
            keys.append(record.partition_key)
        after = record.storage_id
    if first and keys:
        newest = max(dt.date.fromisoformat(k) for k in keys)
        keys = [k for k in keys if dt.date.fromisoformat(k) >= newest - dt.timedelta(RECENT_DAYS)]
    return keys, after


@sensor(
    name="pipeline_health_alerts",
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.STOPPED,
    description="Alerts (webhook) on each new analytics/pipeline_health day: processing "
    "failures > 5%, low-confidence predictions > 20%, sentiment-provider errors, cost over "
    "budget; once per incident. Also retries undelivered run-failure alerts.",
)
def pipeline_health_alerts(
    context: SensorEvaluationContext, alert_webhook: AlertWebhook, lakehouse: Lakehouse
):
    state = AlertState.load(context.cursor)
    keys, after = new_health_partitions(context.instance, state.after)
    days = [dt.date.fromisoformat(k) for k in keys]
    # Everything that can fail (reading, a bad budget) before anything is sent: a tick that
    # raises keeps its old cursor, and must not have posted what the next tick posts again.
    judged: dict[str, Alert | None] = {}
    if days:
        for row in lakehouse.read(HEALTH, days).to_pylist():
            judged.update(judge_health(row, alert_webhook))
    delivery = Delivery(context, alert_webhook)
    state.pending, sent = flush(delivery, state.pending)
    sent += flush_run_alerts(delivery, context.instance)
    state.after = after
    sent += reconcile(delivery, state, judged)
    return SensorResult(
        skip_reason=SkipReason(
            f"{len(keys)} day(s) judged, {sent} alert(s) sent, {len(state.pending)} pending"
        ),
        cursor=state.dump(),
    )


# ---- drift and confidence checks ------------------------------------------------------------


def _metadata_value(metadata: dict, name: str) -> Any:
    value = metadata.get(name)
    return getattr(value, "value", value)


def judge_check(check: str, record) -> dict[str, Alert | None]:
    """One evaluation of a quality check: per partition it judged, an Alert when failing."""
    evaluation = record.event.dagster_event.event_specific_data
    metadata = dict(evaluation.metadata or {})
    failing = list(_metadata_value(metadata, "failing_partitions") or [])
    detail = _metadata_value(metadata, "per_partition") or {}
    judged = set(detail) | set(failing)
    if not judged:
        # Not one of ours: the evaluation as a whole, keyed by its run.
        judged = {record.partition or record.run_id}
        failing = list(judged) if not evaluation.passed else []
    severity = evaluation.severity.value if evaluation.severity else "ERROR"
    out: dict[str, Alert | None] = {}
    for partition in sorted(judged):
        key = f"{check}:{partition}"
        if partition not in failing:
            out[key] = None
            continue
        figures = detail.get(partition) if isinstance(detail, dict) else None
        lines = [f"Check `{check}` of ml_models/predictions failed ({severity})."]
        if figures is not None:
            lines.append(f"Figures: {json.dumps(figures, sort_keys=True, default=str)[:1500]}")
        lines.append(f"Run {record.run_id}.")
        title = (
            f"Model drift: {check} on {partition}"
            if check != "low_confidence"
            else f"Low-confidence predictions on {partition}"
        )
        out[key] = Alert(key, title, tuple(lines))
    return out


def new_check_evaluations(instance: DagsterInstance, check: str, after: int | None) -> list:
    """Completed evaluations of ``check`` newer than record id ``after``, oldest first."""
    history = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(PREDICTIONS_KEY, check),
        limit=PAGE,
        status={AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED},
    )
    return sorted(
        (r for r in history if r.event is not None and (after is None or r.id > after)),
        key=lambda r: r.id,
    )


@sensor(
    name="model_quality_alerts",
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.STOPPED,
    description="Alerts (webhook) when ml_models/predictions' feature_drift or "
    "prediction_drift check fails for a day; once per incident.",
)
def model_quality_alerts(context: SensorEvaluationContext, alert_webhook: AlertWebhook):
    state = AlertState.load(context.cursor)
    cutoff = (_now() - dt.timedelta(days=RECENT_DAYS)).timestamp()
    found = {
        check: new_check_evaluations(context.instance, check, state.seen.get(check))
        for check in QUALITY_CHECKS
    }
    judged = {
        check: [(r.id, judge_check(check, r)) for r in records if r.create_timestamp >= cutoff]
        for check, records in found.items()
    }
    delivery = Delivery(context, alert_webhook)
    state.pending, sent = flush(delivery, state.pending)
    evaluated = 0
    for check, records in found.items():
        for _, alerts in judged[check]:
            sent += reconcile(delivery, state, alerts)
            evaluated += 1
        if records:
            state.seen[check] = records[-1].id
    return SensorResult(
        skip_reason=SkipReason(
            f"{evaluated} evaluation(s) read, {sent} alert(s) sent, {len(state.pending)} pending"
        ),
        cursor=state.dump(),
    )


# ---- failed runs ----------------------------------------------------------------------------


def _run_state(instance: DagsterInstance) -> AlertState:
    stored = instance.run_storage.get_cursor_values({RUN_ALERTS_KEY}).get(RUN_ALERTS_KEY)
    return AlertState.load(stored)


def _save_run_state(instance: DagsterInstance, state: AlertState) -> None:
    instance.run_storage.set_cursor_values({RUN_ALERTS_KEY: state.dump()})


def flush_run_alerts(delivery: Delivery, instance: DagsterInstance) -> int:
    """Retry the run-failure alerts the webhook did not take; how many went out."""
    state = _run_state(instance)
    if not state.pending:
        return 0
    state.pending, sent = flush(delivery, state.pending)
    _save_run_state(instance, state)
    return sent


def run_failure_alert(context: RunFailureSensorContext) -> Alert:
    run = context.dagster_run
    lines = [f"Job `{run.job_name}`, run `{run.run_id}`."]
    partition = run.tags.get("dagster/partition")
    start = run.tags.get("dagster/asset_partition_range_start")
    if not partition and start:
        partition = f"{start}..{run.tags.get('dagster/asset_partition_range_end', start)}"
    if partition:
        lines.append(f"Partition {partition}.")
    steps = []
    for event in context.get_step_failure_events():
        error = event.event_specific_data.error if event.event_specific_data else None
        # Dagster wraps the step's own exception ("Error occurred while executing op"):
        # the innermost cause is what went wrong.
        while error is not None and error.cause is not None:
            error = error.cause
        message = error.message.strip() if error else "(no error recorded)"
        lines.append(f"Step `{event.step_key}`: {message[:500]}")
        steps.append(event.step_key)
    if len(lines) == 1 + bool(partition):
        lines.append(f"Run failed: {context.failure_event.message or 'no step failed'}"[:500])
    # One incident per job, partitions and failed steps, per day: the hourly automation
    # retrying a day through an outage is the same incident, not one alert an hour.
    day = _today().isoformat()
    key = f"run:{run.job_name}:{partition or '-'}:{','.join(sorted(steps)) or '-'}:{day}"
    return Alert(key, f"Run failed: {run.job_name}", tuple(lines))


@run_failure_sensor(
    name="run_failure_alerts",
    default_status=DefaultSensorStatus.STOPPED,
    description="Posts each failed run's job, run id and failed steps' errors to the alert "
    "webhook, once per run.",
)
def run_failure_alerts(context: RunFailureSensorContext, alert_webhook: AlertWebhook):
    instance = context.instance
    state = _run_state(instance)
    alert = run_failure_alert(context)
    delivery = Delivery(context, alert_webhook)
    state.pending, _ = flush(delivery, state.pending)
    # The incident's key stays open (bounded): the same failure is not posted again that day.
    reconcile(delivery, state, {alert.key: alert})
    _save_run_state(instance, state)
