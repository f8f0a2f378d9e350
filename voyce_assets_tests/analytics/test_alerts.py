"""The alert sensors against a real instance and a local HTTP webhook: pipeline_health days
materialized for real, check evaluations and a failed run recorded for real, the JSON each
alert posts, once per incident, retried after a 500, logged only without a URL, and the URL
never in a log line."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pyarrow as pa
import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    DagsterEventType,
    DagsterInstance,
    MaterializeResult,
    MetadataValue,
    asset,
    build_run_status_sensor_context,
    build_sensor_context,
    materialize,
)

from voyce_assets.analytics.alerts import (
    AlertState,
    model_quality_alerts,
    pipeline_health_alerts,
    run_failure_alerts,
)
from voyce_assets.analytics.resources import AlertDeliveryError, AlertWebhook, resources
from voyce_assets.features import FEATURE_NAMES
from voyce_assets.inference.predictions import drift_checks
from voyce_assets.inference.resources import InferenceSettings
from voyce_assets.partitions import daily_partitions
from voyce_assets.settings import ConfigError
from voyce_assets.tables import table_key
from voyce_assets_tests.analytics.harness import write_tables
from voyce_assets_tests.analytics.test_pipeline_health import (
    D1,
    D2,
    FEEDBACK,
    PREDICTIONS,
    SENTIMENT,
    _lakehouse,
    _upstream_done,
    fixture,
    materialize_health,
)

SECRET_PATH = "/services/T000/B000/secret-token-never-logged"


class Receiver:
    """A local webhook: records each POSTed JSON body; answers ``status`` (settable)."""

    def __init__(self):
        self.posts: list[dict] = []
        self.status = 200
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                receiver.attempts += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.status == 200:
                    receiver.posts.append(json.loads(body))
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{SECRET_PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def texts(self) -> list[str]:
        return [p["blocks"][0]["text"]["text"] for p in self.posts]

    def take(self) -> list[str]:
        out, self.posts = self.texts(), []
        return out


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


class Log(logging.Handler):
    """Every line a sensor logs (its logger is its own, not under ``logging.getLogger``)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def log():
    return Log()


def _hook(receiver=None, **kw) -> AlertWebhook:
    return AlertWebhook(url=receiver.url if receiver else None, timeout_seconds=5, **kw)


def _tick(sensor, instance, hook, cursor=None, log=None, **resources):
    context = build_sensor_context(
        instance=instance, cursor=cursor, resources={"alert_webhook": hook, **resources}
    )
    if log is not None:
        context.log.addHandler(log)
    result = sensor(context)
    return result.cursor


# ---- pipeline health ------------------------------------------------------------------------


@pytest.fixture
def health(tmp_path):
    """(lakehouse, instance) with D1 (unhealthy on every count) and D2 (healthy) written."""
    lakehouse = _lakehouse(tmp_path)
    instance = DagsterInstance.ephemeral()
    _upstream_done(instance, [D1, D2])
    return lakehouse, instance


def test_each_health_alert_fires_once_per_incident(health, receiver, log):
    lakehouse, instance = health
    hook = _hook(receiver, daily_cost_budget_usd="0.5")
    assert materialize_health(lakehouse, instance, [D1]).success
    cursor = _tick(pipeline_health_alerts, instance, hook, log=log, lakehouse=lakehouse)
    assert all(p["text"].startswith("Voyce alert: ") for p in receiver.posts)
    texts = receiver.take()
    assert len(texts) == 4, texts
    joined = "\n".join(texts)
    assert "Processing failures 25.0% on 2026-05-04 (threshold 5.0%)" in joined
    assert "1 of 4 files failed" in joined
    assert "Low-confidence predictions 33.3% on 2026-05-04 (threshold 20.0%)" in joined
    assert "Sentiment provider errors on 2026-05-04: 1" in joined
    assert "Daily cost $0.75 on 2026-05-04 above the budget $0.50" in joined
    assert receiver.url not in log.text and "secret-token" not in log.text

    # The same cursor, nothing new: nothing again. A re-build of the same unhealthy day: the
    # same incidents, still nothing.
    cursor = _tick(pipeline_health_alerts, instance, hook, cursor, lakehouse=lakehouse)
    assert materialize_health(lakehouse, instance, [D1]).success
    cursor = _tick(pipeline_health_alerts, instance, hook, cursor, lakehouse=lakehouse)
    assert receiver.take() == []
    assert len(AlertState.load(cursor).open) == 4


def test_a_healthy_day_posts_nothing(health, receiver):
    lakehouse, instance = health
    hook = _hook(receiver, daily_cost_budget_usd="0.5")
    assert materialize_health(lakehouse, instance, [D2]).success
    cursor = _tick(pipeline_health_alerts, instance, hook, lakehouse=lakehouse)
    assert receiver.posts == []
    assert AlertState.load(cursor).after is not None  # the day was read
    # Without a budget the cost is not judged: D1 posts three alerts, not four.
    assert materialize_health(lakehouse, instance, [D1]).success
    _tick(pipeline_health_alerts, instance, _hook(receiver), lakehouse=lakehouse)
    assert len(receiver.take()) == 3


def test_recovered_then_failing_again_is_a_new_incident(health, receiver, tmp_path):
    lakehouse, instance = health
    hook = _hook(receiver)
    assert materialize_health(lakehouse, instance, [D1]).success
    cursor = _tick(pipeline_health_alerts, instance, hook, lakehouse=lakehouse)
    assert any("Processing failures" in t for t in receiver.take())

    # D1 reprocessed: f3 transcribed, the provider answered, predictions confident.
    healthy = fixture(
        feedback=[(n, d, "completed", ms, 0.9, None) for n, d, _s, ms, _c, _e in FEEDBACK],
        sentiment=[(n, d, "neutral", 0.9, False, None) for n, d, *_ in SENTIMENT],
        predictions=[(n, d, 0.9, 5.0) for n, d, *_ in PREDICTIONS],
    )
    write_tables(lakehouse, healthy)
    assert materialize_health(lakehouse, instance, [D1]).success
    cursor = _tick(pipeline_health_alerts, instance, hook, cursor, lakehouse=lakehouse)
    assert receiver.take() == []
    assert AlertState.load(cursor).open == []

    write_tables(lakehouse, fixture())  # failing again
    assert materialize_health(lakehouse, instance, [D1]).success
    _tick(pipeline_health_alerts, instance, hook, cursor, lakehouse=lakehouse)
    assert len(receiver.take()) == 3


def test_a_webhook_answering_500_is_retried_next_tick(health, receiver, log):
    lakehouse, instance = health
    hook = _hook(receiver)
    assert materialize_health(lakehouse, instance, [D1]).success
    receiver.status = 500
    cursor = _tick(pipeline_health_alerts, instance, hook, log=log, lakehouse=lakehouse)
    assert receiver.posts == []
    assert "alert not delivered, will retry next tick: alert webhook answered HTTP 500" in (
        log.text
    )
    assert receiver.url not in log.text and "secret-token" not in log.text
    assert len(AlertState.load(cursor).pending) == 3
    # A webhook that is down costs one attempt per tick, not one per alert.
    assert receiver.attempts == 1

    receiver.status = 200
    cursor = _tick(pipeline_health_alerts, instance, hook, cursor, lakehouse=lakehouse)
    assert len(receiver.take()) == 3
    _tick(pipeline_health_alerts, instance, hook, cursor, lakehouse=lakehouse)
    assert receiver.take() == []


def test_a_tick_that_cannot_judge_sends_nothing(health, receiver):
    """A bad budget fails the tick before any alert goes out: its cursor is not saved, so
    whatever it had sent would go out again on the next tick."""
    lakehouse, instance = health
    assert materialize_health(lakehouse, instance, [D1]).success
    receiver.status = 500
    cursor = _tick(pipeline_health_alerts, instance, _hook(receiver), lakehouse=lakehouse)
    assert len(AlertState.load(cursor).pending) == 3
    receiver.status, receiver.attempts = 200, 0
    assert materialize_health(lakehouse, instance, [D2]).success
    with pytest.raises(ConfigError, match="VOYCE_DAILY_COST_BUDGET_USD"):
        _tick(
            pipeline_health_alerts,
            instance,
            _hook(receiver, daily_cost_budget_usd="lots"),
            cursor,
            lakehouse=lakehouse,
        )
    assert receiver.attempts == 0


def test_without_a_url_alerts_are_logged_only(health, log):
    lakehouse, instance = health
    assert materialize_health(lakehouse, instance, [D1]).success
    cursor = _tick(pipeline_health_alerts, instance, _hook(), log=log, lakehouse=lakehouse)
    assert log.text.count("alert (no webhook configured, logged only)") == 3
    assert "Processing failures 25.0% on 2026-05-04" in log.text
    assert "1 of 4 files failed to transcribe." in log.text  # the whole alert, not its title
    # Logged is handled: the incidents are open, nothing waits, a second tick logs nothing.
    state = AlertState.load(cursor)
    assert state.pending == [] and len(state.open) == 3
    log.lines.clear()
    _tick(pipeline_health_alerts, instance, _hook(), cursor, log=log, lakehouse=lakehouse)
    assert "logged only" not in log.text


def test_an_unreachable_webhook_names_no_url():
    hook = AlertWebhook(url="http://127.0.0.1:9/hooks/secret-token-never-logged", timeout_seconds=2)
    with pytest.raises(AlertDeliveryError) as raised:
        hook.post("x", [])
    assert "secret-token" not in str(raised.value) and "127.0.0.1" not in str(raised.value)


def test_resources_take_url_as_env_var_and_budget_as_a_number(monkeypatch):
    monkeypatch.setenv("VOYCE_ALERT_WEBHOOK_URL", "https://hooks.example/secret")
    monkeypatch.setenv("VOYCE_DAILY_COST_BUDGET_USD", "12.5")
    hook = resources("prod")["alert_webhook"]
    assert hook.process_config_and_initialize().budget() == 12.5
    # The UI's config view shows the variable's name, never the secret.
    assert "secret" not in json.dumps(hook._get_non_default_public_field_values(), default=str)
    # A bad budget fails the tick that judges a day, naming the variable; loading still works.
    monkeypatch.setenv("VOYCE_DAILY_COST_BUDGET_USD", "lots")
    hook = resources("prod")["alert_webhook"]
    with pytest.raises(ConfigError, match="VOYCE_DAILY_COST_BUDGET_USD: must be a number"):
        hook.process_config_and_initialize().budget()
    monkeypatch.delenv("VOYCE_DAILY_COST_BUDGET_USD")
    monkeypatch.delenv("VOYCE_ALERT_WEBHOOK_URL")
    hook = resources("local")["alert_webhook"]
    assert hook.url is None and hook.budget() is None


# ---- drift and confidence checks ------------------------------------------------------------


def _predictions_run(instance, results: dict[str, tuple[bool, list[str], list[str]]]):
    """A run of ml_models/predictions' key recording the three quality checks the way the
    inference stage does: (passed, partitions judged, partitions failing) per check."""
    key = table_key("ml_models/predictions")

    @asset(
        key=key,
        partitions_def=daily_partitions,
        check_specs=[AssetCheckSpec(name, asset=key) for name in results],
    )
    def predictions():
        return MaterializeResult(
            check_results=[
                AssetCheckResult(
                    check_name=name,
                    passed=passed,
                    severity=AssetCheckSeverity.WARN,
                    metadata={
                        "failing_partitions": failing,
                        "per_partition": MetadataValue.json({d: {"psi": 0.31} for d in judged}),
                    },
                )
                for name, (passed, judged, failing) in results.items()
            ]
        )

    assert materialize([predictions], instance=instance, partition_key="2026-05-04").success


def test_failed_quality_checks_alert_once_per_check_and_day(receiver):
    instance = DagsterInstance.ephemeral()
    hook = _hook(receiver)
    day = "2026-05-04"
    _predictions_run(
        instance,
        {
            "feature_drift": (False, [day], [day]),
            "prediction_drift": (True, [day], []),
            "low_confidence": (False, [day], [day]),
        },
    )
    cursor = _tick(model_quality_alerts, instance, hook)
    texts = receiver.take()
    # Low confidence is not this sensor's: the health sensor judges it once the day is done.
    assert len(texts) == 1, texts
    assert "Model drift: feature_drift on 2026-05-04" in texts[0] and '"psi": 0.31' in texts[0]

    # Evaluated again, still failing: the same incidents. Then feature drift recovers and
    # comes back: a new incident.
    cursor = _tick(model_quality_alerts, instance, hook, cursor)
    _predictions_run(instance, {"feature_drift": (False, [day], [day])})
    cursor = _tick(model_quality_alerts, instance, hook, cursor)
    assert receiver.take() == []
    _predictions_run(instance, {"feature_drift": (True, [day], [])})
    cursor = _tick(model_quality_alerts, instance, hook, cursor)
    assert receiver.take() == []
    _predictions_run(instance, {"feature_drift": (False, [day], [day])})
    _tick(model_quality_alerts, instance, hook, cursor)
    assert [t.splitlines()[0] for t in receiver.take()] == [
        "*Model drift: feature_drift on 2026-05-04*"
    ]


def test_a_range_run_alerts_only_the_day_its_real_drift_check_names(receiver):
    """The inference stage's own drift checks over a 2-day range: the day whose labels moved
    is alerted, the stable day of the same evaluation is not."""
    d0, d1, d2 = (dt.date(2026, 5, 3) + dt.timedelta(days=n) for n in range(3))
    mixed = ["positive"] * 20 + ["negative"] * 20
    days = [d0] * 40 + [d1] * 40 + [d2] * 40
    history = pa.table(
        {
            "event_date": pa.array(days, pa.date32()),
            # d1 like d0; d2 all negative: a shift of the predicted labels on d2 only.
            "predicted_label": mixed + mixed + ["negative"] * 40,
        }
    )
    info = pa.table({"event_date": pa.array(days, pa.date32())})
    stored = pa.table(
        {"event_date": pa.array(days[40:], pa.date32()), "prediction_confidence": [0.9] * 80}
    )
    checks, _ = drift_checks(
        [d1, d2],
        stored,
        (info, np.zeros((120, len(FEATURE_NAMES)))),
        history,
        InferenceSettings(min_drift_rows=30, reference_days=1),
    )
    key = table_key("ml_models/predictions")

    @asset(
        key=key,
        partitions_def=daily_partitions,
        check_specs=[AssetCheckSpec(c.check_name, asset=key) for c in checks],
    )
    def predictions():
        return MaterializeResult(check_results=checks)

    instance = DagsterInstance.ephemeral()
    tags = {
        "dagster/asset_partition_range_start": d1.isoformat(),
        "dagster/asset_partition_range_end": d2.isoformat(),
    }
    assert materialize([predictions], instance=instance, tags=tags).success
    _tick(model_quality_alerts, instance, _hook(receiver))
    assert [t.splitlines()[0] for t in receiver.take()] == [
        "*Model drift: prediction_drift on 2026-05-05*"
    ]


def test_passing_quality_checks_post_nothing(receiver):
    instance = DagsterInstance.ephemeral()
    day = "2026-05-04"
    _predictions_run(
        instance, {name: (True, [day], []) for name in ("feature_drift", "prediction_drift")}
    )
    cursor = _tick(model_quality_alerts, instance, _hook(receiver))
    assert receiver.posts == []
    assert set(AlertState.load(cursor).seen) == {"feature_drift", "prediction_drift"}


# ---- failed runs ----------------------------------------------------------------------------


def _failed_run(instance):
    @asset(key=table_key("raw_data/voice_feedback"), partitions_def=daily_partitions)
    def mirror():
        raise RuntimeError("could not connect to the source database")

    result = materialize(
        [mirror], instance=instance, partition_key="2026-05-04", raise_on_error=False
    )
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    (failure,) = instance.get_records_for_run(
        run.run_id, of_type=DagsterEventType.RUN_FAILURE
    ).records
    return run, failure.event_log_entry.dagster_event


def _run_failure_tick(instance, run, event, hook):
    context = build_run_status_sensor_context(
        sensor_name="run_failure_alerts",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=event,
        resources={"alert_webhook": hook},
    ).for_run_failure()
    run_failure_alerts(context)


def test_a_failed_run_posts_its_job_run_and_step_error_once(receiver):
    instance = DagsterInstance.ephemeral()
    run, event = _failed_run(instance)
    hook = _hook(receiver)
    _run_failure_tick(instance, run, event, hook)
    (text,) = receiver.take()
    assert f"Run failed: {run.job_name}" in text
    assert run.run_id in text
    assert "could not connect to the source database" in text
    assert "Partition 2026-05-04." in text
    _run_failure_tick(instance, run, event, hook)  # evaluated again: the same incident
    assert receiver.take() == []
    # The same job, day and step failing again in a new run (the hourly retry through an
    # outage) is the same incident that day: not one alert an hour.
    again, again_event = _failed_run(instance)
    assert again.run_id != run.run_id
    _run_failure_tick(instance, again, again_event, hook)
    assert receiver.take() == []


def test_an_undelivered_run_failure_is_retried_by_the_health_sensor(receiver, tmp_path):
    instance = DagsterInstance.ephemeral()
    run, event = _failed_run(instance)
    hook = _hook(receiver)
    receiver.status = 500
    _run_failure_tick(instance, run, event, hook)
    assert receiver.posts == []
    receiver.status = 200
    lakehouse = _lakehouse(tmp_path)
    _tick(pipeline_health_alerts, instance, hook, lakehouse=lakehouse)
    (text,) = receiver.take()
    assert run.run_id in text
    _tick(pipeline_health_alerts, instance, hook, lakehouse=lakehouse)
    assert receiver.take() == []
