"""analytics.pipeline_health: the SQL on DuckDB and Spark against hand-worked numbers, and the
asset writing real Delta partitions with the mirrors' failed syncs and failed checks counted
from a real instance's event log."""

import datetime as dt
from decimal import Decimal

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetMaterialization,
    DagsterInstance,
    MaterializeResult,
    asset,
    materialize,
)

from voyce_assets.analytics.pipeline_health import HEALTH, INPUTS, pipeline_health
from voyce_assets.partitions import daily_partitions
from voyce_assets.resources import Lakehouse
from voyce_assets.resources.sql_engine import DuckDBEngine
from voyce_assets.tables import table_key
from voyce_assets_tests.analytics.harness import (
    A,
    assert_expected,
    inputs,
    run_both,
    uid,
    write_tables,
)

D0 = dt.date(2026, 5, 3)  # before the run: outside
D1 = dt.date(2026, 5, 4)
D2 = dt.date(2026, 5, 5)
D3 = dt.date(2026, 5, 6)  # only a cost row
RUN = {"start_date": D1, "end_date": D3}

# (feedback, day, status, [transcription: ms, confidence, error])
FEEDBACK = [
    ("f1", D1, "completed", 100, 0.9, None),
    ("f2", D1, "completed", 300, 0.7, None),
    ("f3", D1, "failed", 50, None, "oom"),
    ("f4", D1, "completed", 200, 0.8, None),
    ("f5", D2, "completed", 400, 0.5, None),
    ("f0", D0, "failed", 999, None, "timeout"),
]
# (feedback, day, label, confidence, cached, error)
SENTIMENT = [
    ("f1", D1, "positive", 0.9, False, None),
    ("f2", D1, "negative", 0.7, True, None),  # from the cache: no provider call
    ("f3", D1, None, None, False, "provider 529"),
    ("f4", D1, "mixed", 0.5, False, None),
    ("f5", D2, "neutral", 0.6, True, None),
    ("f0", D0, None, None, False, "provider 500"),
]
# (feedback, day, confidence, inference ms)
PREDICTIONS = [
    ("f1", D1, 0.95, 10.0),
    ("f2", D1, 0.55, 20.0),
    ("f4", D1, 0.6, 30.0),  # exactly 0.6 is not low
    ("f0", D0, 0.1, 99.0),
]
COSTS = [(D1, "0.500000"), (D1, "0.250000"), (D3, "1.000000"), (D0, "9.000000")]


def fixture(feedback=FEEDBACK, sentiment=SENTIMENT, predictions=PREDICTIONS, costs=COSTS):
    return {
        "raw_data/voice_feedback": [
            {"id": uid(n), "organization_id": A, "status": status, "day": day}
            for n, day, status, *_ in feedback
        ],
        "raw_data/transcriptions": [
            {
                "voice_feedback_id": uid(n),
                "processing_time_ms": ms,
                "confidence_score": conf,
                "error_message": error,
                "day": day,
            }
            for n, day, _, ms, conf, error in feedback
        ],
        "raw_data/sentiment_analysis": [
            {
                "voice_feedback_id": uid(n),
                "sentiment_label": label,
                "sentiment_confidence": conf,
                "cached": cached,
                "error_message": error,
                "day": day,
            }
            for n, day, label, conf, cached, error in sentiment
        ],
        "ml_models/predictions": [
            {
                "voice_feedback_id": uid(n),
                "prediction_confidence": conf,
                "inference_time_ms": ms,
                "day": day,
            }
            for n, day, conf, ms in predictions
        ],
        "analytics/cost_tracking": [
            {"organization_id": A, "total_cost": Decimal(c), "cost_date": day, "day": day}
            for day, c in costs
        ],
    }


EXPECTED = {
    (D1,): {
        "sync_latency_seconds": None,
        "feedback_count": 4,
        "feedback_failed_count": 1,
        "files_processed": 4,
        "files_failed": 1,
        "processing_success_rate": 0.75,
        "processing_failure_rate": 0.25,
        "avg_transcription_confidence": 0.8,  # (0.9 + 0.7 + 0.8) / 3, the failed one left out
        "avg_processing_time_ms": 200.0,  # (100 + 300 + 200) / 3
        "sentiment_calls": 3,  # f1, f3 (failed), f4; f2 came from the cache
        "sentiment_errors": 1,
        "sentiment_success_rate": 2 / 3,
        "avg_sentiment_confidence": 0.7,  # (0.9 + 0.7 + 0.5) / 3
        "sentiment_positive_count": 1,
        "sentiment_neutral_count": 0,
        "sentiment_negative_count": 1,
        "sentiment_mixed_count": 1,
        "prediction_count": 3,
        "low_confidence_share": 1 / 3,  # only 0.55
        "avg_inference_time_ms": 20.0,
        "total_cost_usd": Decimal("0.75"),
        "cost_per_feedback_usd": 0.1875,
    },
    (D2,): {
        "feedback_count": 1,
        "files_processed": 1,
        "files_failed": 0,
        "processing_failure_rate": 0.0,
        "sentiment_calls": 0,
        "sentiment_errors": 0,
        "sentiment_success_rate": None,  # no call: no rate
        "avg_sentiment_confidence": 0.6,
        "sentiment_neutral_count": 1,
        "prediction_count": 0,
        "low_confidence_share": None,
        "avg_inference_time_ms": None,
        "total_cost_usd": Decimal(0),
        "cost_per_feedback_usd": 0.0,
    },
    (D3,): {
        "feedback_count": 0,
        "files_processed": 0,
        "processing_success_rate": None,
        "processing_failure_rate": None,
        "avg_transcription_confidence": None,
        "total_cost_usd": Decimal(1),
        "cost_per_feedback_usd": None,  # cost without feedback
    },
}


def test_key_metrics_hand_worked_on_both_engines(spark):
    got = run_both(spark, HEALTH.path, inputs(fixture()), RUN)
    assert_expected(got, EXPECTED, ("date",))
    # No table records syncs: the SQL leaves the ingestion columns to the asset.
    assert all(r["failed_syncs"] is None and r["data_quality_failures"] is None for r in got)


def _lakehouse(tmp_path, data=None) -> Lakehouse:
    lakehouse = Lakehouse(catalog="c", root_uri=str(tmp_path / "lake"), volumes_root=str(tmp_path))
    return write_tables(lakehouse, data or fixture())


def _upstream_done(instance: DagsterInstance, days) -> None:
    for path in (i.path for i in INPUTS if i.required):
        for day in days:
            instance.report_runless_asset_event(
                AssetMaterialization(asset_key=table_key(path), partition=day.isoformat())
            )


def materialize_health(lakehouse, instance, days):
    return materialize(
        [pipeline_health],
        resources={"lakehouse": lakehouse, "sql_engine": DuckDBEngine()},
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": days[0].isoformat(),
            "dagster/asset_partition_range_end": days[-1].isoformat(),
        },
        raise_on_error=False,
    )


def _failing_mirror(path: str):
    """A run of a mirror's asset key that fails: a failed sync in the event log."""

    @asset(key=table_key(path), partitions_def=daily_partitions)
    def mirror():
        raise RuntimeError("source unreachable")

    return mirror


def _checked_mirror(path: str, passed: bool, check: str = "reconciliation", metadata=None):
    """A run of a mirror's asset key whose check passes or fails."""

    @asset(
        key=table_key(path),
        partitions_def=daily_partitions,
        check_specs=[AssetCheckSpec(check, asset=table_key(path))],
    )
    def mirror():
        return MaterializeResult(
            check_results=[
                AssetCheckResult(check_name=check, passed=passed, metadata=metadata or {})
            ]
        )

    return mirror


def test_a_check_failing_in_a_run_over_several_days_counts_once_on_its_own_day(tmp_path):
    """Per-partition truth: a 3-day full sync whose reconciliation names D2 counts on D2
    only, a check naming D1 and D2 in ``failing_partitions`` on those two; a check of such a
    run naming no day counts once (on the newest), not on each."""
    from dagster import MetadataValue

    lakehouse = _lakehouse(tmp_path)
    instance = DagsterInstance.ephemeral()
    _upstream_done(instance, [D1, D2, D3])
    tags = {
        "dagster/asset_partition_range_start": D1.isoformat(),
        "dagster/asset_partition_range_end": D3.isoformat(),
    }
    mismatch = {"mismatched_partitions": MetadataValue.json({D2.isoformat(): {"source_rows": 2}})}
    materialize(
        [_checked_mirror("raw_data/organizations", False, metadata=mismatch)],
        instance=instance,
        tags=tags,
    )
    materialize(
        [_checked_mirror("raw_data/users", False, check="primary_key")],
        instance=instance,
        tags=tags,
    )
    # A per-partition check (voyce_assets.checks) names its failing days as a list.
    failing = {"failing_partitions": [D1.isoformat(), D2.isoformat()]}
    materialize(
        [_checked_mirror("raw_data/tags", False, check="required_columns", metadata=failing)],
        instance=instance,
        tags=tags,
    )
    assert materialize_health(lakehouse, instance, [D1, D2, D3]).success
    stored = {r["date"]: r["data_quality_failures"] for r in lakehouse.read(HEALTH).to_pylist()}
    assert stored == {D1: 1, D2: 2, D3: 1}


def test_the_asset_writes_each_day_with_the_mirrors_failures_from_the_event_log(tmp_path):
    lakehouse = _lakehouse(tmp_path)
    instance = DagsterInstance.ephemeral()
    _upstream_done(instance, [D1, D2, D3])
    feedback, organizations = "raw_data/voice_feedback", "raw_data/organizations"
    for day in (D1, D0):  # D0's failure is another day's
        materialize(
            [_failing_mirror(feedback)],
            instance=instance,
            partition_key=day.isoformat(),
            raise_on_error=False,
        )
    materialize(
        [_checked_mirror(organizations, False)], instance=instance, partition_key="2026-05-04"
    )
    materialize(
        [_checked_mirror(organizations, True)], instance=instance, partition_key="2026-05-05"
    )

    result = materialize_health(lakehouse, instance, [D1, D2, D3])
    assert result.success
    stored = {r["date"]: r for r in lakehouse.read(HEALTH).to_pylist()}
    assert sorted(stored) == [D1, D2, D3]
    assert (stored[D1]["failed_syncs"], stored[D1]["data_quality_failures"]) == (1, 1)
    assert (stored[D2]["failed_syncs"], stored[D2]["data_quality_failures"]) == (0, 0)
    assert stored[D1]["processing_failure_rate"] == pytest.approx(0.25)
    assert stored[D1]["total_cost_usd"] == Decimal("0.75")
    # Each partition's own figures on its own materialization.
    records = instance.fetch_materializations(table_key(HEALTH.path), limit=10).records
    by_day = {r.partition_key: r.asset_materialization.metadata for r in records}
    assert by_day["2026-05-04"]["low_confidence_share"].value == pytest.approx(1 / 3)
    assert by_day["2026-05-06"]["dagster/partition_row_count"].value == 1


def test_the_asset_waits_for_a_day_of_cost_never_built(tmp_path):
    lakehouse = _lakehouse(tmp_path)
    instance = DagsterInstance.ephemeral()
    for path in (
        "raw_data/voice_feedback",
        "raw_data/transcriptions",
        "raw_data/sentiment_analysis",
    ):
        instance.report_runless_asset_event(
            AssetMaterialization(asset_key=table_key(path), partition=D1.isoformat())
        )
    result = materialize_health(lakehouse, instance, [D1])
    assert not result.success
    assert lakehouse.read(HEALTH).num_rows == 0
