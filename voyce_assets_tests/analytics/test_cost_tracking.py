"""analytics.cost_tracking and analytics.organization_metrics: the stages' quantities on
DuckDB and Spark, priced, the mirrors' cost rows collected from the event log, shared-out
costs, idempotent re-runs, and the check that catches a mispriced row. Every expected number
is worked out by hand from the fixture below and the default prices."""

import datetime as dt
import json
from collections import Counter
from decimal import Decimal

import pyarrow as pa
from dagster import AssetMaterialization, DagsterInstance, MetadataValue, materialize
from deltalake import write_deltalake

from voyce_assets.analytics.cost_tracking import (
    COSTS,
    INPUTS,
    allocate,
    cost_rows_check,
    cost_tracking,
)
from voyce_assets.analytics.organization_metrics import INPUTS as METRICS_INPUTS
from voyce_assets.analytics.organization_metrics import organization_metrics
from voyce_assets.catalog import table
from voyce_assets.resources import Lakehouse, Pricing
from voyce_assets.resources.sql_engine import DuckDBEngine
from voyce_assets.tables import table_key
from voyce_assets_tests.analytics.harness import (
    A,
    B,
    assert_expected,
    assert_same_rows,
    inputs,
    rows,
    uid,
    write_tables,
)

D0, D1, D2 = dt.date(2026, 11, 19), dt.date(2026, 11, 20), dt.date(2026, 11, 21)
C = "00000000-0000-4000-8000-00000000000c"
GIB = 1024**3

FIXTURE = {
    "raw_data/voice_feedback": [
        {
            "id": uid("f0"),
            "organization_id": A,
            "user_id": uid("u1"),
            "file_size_bytes": GIB,
            "audio_duration_seconds": 6.0,
            "day": D0,
        },
        {
            "id": uid("f1"),
            "organization_id": A,
            "user_id": uid("u1"),
            "file_size_bytes": GIB // 2,
            "audio_duration_seconds": 60.0,
            "day": D1,
        },
        {
            "id": uid("f2"),
            "organization_id": A,
            "user_id": uid("u1"),
            "file_size_bytes": GIB // 2,
            "audio_duration_seconds": 120.0,
            "day": D1,
        },
        {
            "id": uid("f3"),
            "organization_id": B,
            "user_id": uid("u2"),
            "file_size_bytes": GIB,
            "audio_duration_seconds": 30.0,
            "day": D1,
        },
    ],
    "raw_data/transcriptions": [
        {
            "voice_feedback_id": uid("f1"),
            "transcription_engine": "whisper-base",
            "processing_time_ms": 1500,
            "day": D1,
        },
        {
            "voice_feedback_id": uid("f2"),
            "transcription_engine": "whisper-base",
            "processing_time_ms": 2500,
            "day": D1,
        },
        {
            "voice_feedback_id": uid("f3"),
            "transcription_engine": "whisper-base",
            "processing_time_ms": 1000,
            "error_message": "unreadable",
            "day": D1,
        },
    ],
    "raw_data/sentiment_analysis": [
        {
            "voice_feedback_id": uid("f1"),
            "provider": "anthropic",
            "api_mode": "messages",
            "model_used": "claude",
            "input_tokens": 1000,
            "output_tokens": 200,
            "cache_write_tokens": 10_000,
            "cache_read_tokens": 100_000,
            "cached": False,
            "day": D1,
        },
        {
            "voice_feedback_id": uid("f2"),
            "provider": "anthropic",
            "api_mode": "batch",
            "model_used": "claude",
            "input_tokens": 2000,
            "output_tokens": 400,
            "cache_read_tokens": 20_000,
            "cached": False,
            "day": D1,
        },
        {
            "voice_feedback_id": uid("f3"),
            "provider": "local",
            "api_mode": "local",
            "model_used": "local-lr",
            "input_tokens": 0,
            "output_tokens": 0,
            "cached": False,
            "day": D1,
        },
    ],
    "processed_data/enhanced_transcriptions": [
        {
            "voice_feedback_id": uid("f1"),
            "organization_id": A,
            "text_embedding": [0.0] * 384,
            "embedding_model": "minilm",
            "embedding_cached": False,
            "day": D1,
        },
        {
            "voice_feedback_id": uid("f2"),
            "organization_id": A,
            "text_embedding": [0.0] * 384,
            "embedding_model": "minilm",
            "embedding_cached": True,
            "day": D1,
        },
        {
            "voice_feedback_id": uid("f3"),
            "organization_id": B,
            "text_embedding": [0.0] * 384,
            "embedding_model": "minilm",
            "embedding_cached": False,
            "day": D1,
        },
    ],
    "ml_models/predictions": [
        {
            "voice_feedback_id": uid("f1"),
            "model_id": uid("m1"),
            "inference_time_ms": 5.0,
            "day": D1,
        },
        {
            "voice_feedback_id": uid("f2"),
            "model_id": uid("m1"),
            "inference_time_ms": 15.0,
            "day": D1,
        },
    ],
    "ml_models/model_registry": [
        {"model_name": "sentiment_classifier_lr", "training_seconds": 30.0, "day": D1},
        {"model_name": "sentiment_classifier_lgbm", "training_seconds": 10.0, "day": D1},
        {"model_name": "sentiment_classifier_lr", "training_seconds": 99.0, "day": D0},
    ],
    "raw_data/organizations": [
        {"id": A, "is_active": True, "day": D0},
        {"id": B, "is_active": True, "day": D0},
    ],
}

# (organization, resource_type, operation, price_key) -> (quantity, total USD), D1 only.
STAGE_COSTS = {
    # 1.5 + 2.5 GPU s at $0.00025
    (A, "speech_to_text", "transcribe", "gpu.second"): (4.0, "0.001000"),
    # the failed file's 1 s cost too
    (B, "speech_to_text", "transcribe", "gpu.second"): (1.0, "0.000250"),
    # 1,000 input tokens at $3/M; 200 output at $15/M
    (A, "llm_api", "sentiment_analysis_input", "anthropic.input_mtok"): (0.001, "0.003000"),
    (A, "llm_api", "sentiment_analysis_output", "anthropic.output_mtok"): (0.0002, "0.003000"),
    # batch: 2,000 at $1.5/M; 400 at $7.5/M
    (A, "llm_api", "sentiment_analysis_input", "anthropic.batch_input_mtok"): (0.002, "0.003"),
    (A, "llm_api", "sentiment_analysis_output", "anthropic.batch_output_mtok"): (0.0004, "0.003"),
    # the prompt cache: 10,000 written at $3.75/M, 100,000 read at $0.30/M; batch reads
    # 20,000 at $0.15/M (no batch write: that direction's zero quantity is not a row)
    (A, "llm_api", "sentiment_analysis_cache_write", "anthropic.cache_write_mtok"): (
        0.01,
        "0.0375",
    ),
    (A, "llm_api", "sentiment_analysis_cache_read", "anthropic.cache_read_mtok"): (0.1, "0.03"),
    (A, "llm_api", "sentiment_analysis_cache_read", "anthropic.batch_cache_read_mtok"): (
        0.02,
        "0.003",
    ),
    # one text at $0.0009 per thousand: 0.0000009, to the micro-dollar
    (B, "compute", "sentiment_analysis", "local.ktext"): (0.001, "0.000001"),
    # f2's vector came from the cache: one text each, $0.0007 per thousand
    (A, "compute", "embed", "embedding.ktext"): (0.001, "0.000001"),
    (B, "compute", "embed", "embedding.ktext"): (0.001, "0.000001"),
    # 5 + 15 ms at $0.00011 per s: 0.0000022
    (A, "compute", "predict", "compute.second"): (0.02, "0.000002"),
}
# Training on D1 (no organization: shared out by feedback, below): 30 s and 10 s of GPU at
# $0.00025 per s; D0's training is another day's.
TRAINING_COSTS = {
    "sentiment_classifier_lr": (30.0, "0.007500"),
    "sentiment_classifier_lgbm": (10.0, "0.002500"),
}

# What the voice_feedback and tags mirrors recorded for D1 (the shape _cost_rows writes).
MIRROR_COSTS = {
    "raw_data/voice_feedback": [
        {
            "id": uid("c1"),
            "organization_id": A,
            "resource_type": "ingestion",
            "resource_id": "raw_data.voice_feedback",
            "operation": "full_sync",
            "quantity": 2.0,
            "unit_cost": "0.000100",
            "total_cost": "0.000200",
            "currency": "USD",
            "cost_date": "2026-11-20",
            "metadata": {"partition": "2026-11-20"},
        },
        {
            "id": uid("c2"),
            "organization_id": B,
            "resource_type": "ingestion",
            "resource_id": "raw_data.voice_feedback",
            "operation": "full_sync",
            "quantity": 1.0,
            "unit_cost": "0.000100",
            "total_cost": "0.000100",
            "currency": "USD",
            "cost_date": "2026-11-20",
            "metadata": {"partition": "2026-11-20"},
        },
        {
            "id": uid("c3"),
            "organization_id": None,
            "resource_type": "compute",
            "resource_id": "raw_data.voice_feedback",
            "operation": "full_sync",
            "quantity": 10.0,
            "unit_cost": "0.000110",
            "total_cost": "0.001100",
            "currency": "USD",
            "cost_date": "2026-11-20",
            "metadata": {"partition": "2026-11-20"},
        },
    ],
    "raw_data/tags": [
        {
            "id": uid("c4"),
            "organization_id": None,
            "resource_type": "ingestion",
            "resource_id": "raw_data.tags",
            "operation": "full_sync",
            "quantity": 4.0,
            "unit_cost": "0.000100",
            "total_cost": "0.000400",
            "currency": "USD",
            "cost_date": "2026-11-20",
            "metadata": {"partition": "2026-11-20"},
        },
    ],
}
# Shared out by D1's feedback: A has 2 of 3, B 1 of 3.
ALLOCATED = {
    (A, "compute", "raw_data.voice_feedback"): "0.000733",  # 0.0011 x 2/3 = 0.00073333
    (B, "compute", "raw_data.voice_feedback"): "0.000367",  # the rest: 0.0011 - 0.000733
    (A, "ingestion", "raw_data.tags"): "0.000267",  # 0.0004 x 2/3 = 0.00026667
    (B, "ingestion", "raw_data.tags"): "0.000133",
    # training by the same 2/3 and 1/3: 0.0075 splits evenly to the micro-dollar; 0.0025
    # gives 0.001666.67 and 0.000833.33, the left-over micro-dollar to the larger remainder
    (A, "compute", "sentiment_classifier_lr"): "0.005000",
    (B, "compute", "sentiment_classifier_lr"): "0.002500",
    (A, "compute", "sentiment_classifier_lgbm"): "0.001667",
    (B, "compute", "sentiment_classifier_lgbm"): "0.000833",
}

PARAMS = {"start_date": D1, "end_date": D1}


def _quantities(result) -> dict:
    return {
        (r["organization_id"], r["resource_type"], r["operation"], r["price_key"]): r["quantity"]
        for r in result.to_pylist()
    }


def test_stage_quantities_on_duckdb_and_spark(spark):
    from voyce_assets.analytics.sql_asset import sql_text

    data = inputs({p: r for p, r in FIXTURE.items() if p != "raw_data/organizations"})
    duck = DuckDBEngine().run(sql_text("cost_tracking"), data, PARAMS)
    on_spark = spark.run(sql_text("cost_tracking"), data, PARAMS)
    key = ["organization_id", "resource_type", "operation", "price_key", "resource_id"]
    columns = [*key, "cost_date", "quantity", "items", "stage"]
    assert_same_rows(duck.select(columns).to_pylist(), on_spark.select(columns).to_pylist(), key)
    # The same texts billed 0 tokens (cached) drop out of the priced rows, not the SQL's.
    training = {
        r["resource_id"]: (r["quantity"], r["cost_date"], r["organization_id"])
        for r in duck.to_pylist()
        if r["stage"] == "training"
    }
    assert training == {name: (q, D1, None) for name, (q, _) in TRAINING_COSTS.items()}
    got = {k: v for k, v in _quantities(duck).items() if v and k[0] is not None}
    assert got.keys() == STAGE_COSTS.keys()
    for k, (quantity, _) in STAGE_COSTS.items():
        assert abs(got[k] - quantity) < 1e-12, k
    audio = {
        r["organization_id"]: r["audio_minutes"]
        for r in duck.to_pylist()
        if r["resource_type"] == "speech_to_text"
    }
    assert audio == {A: 3.0, B: 0.5}  # (60 + 120) / 60; 30 / 60


def _lakehouse(tmp_path, fixture=FIXTURE) -> Lakehouse:
    lakehouse = Lakehouse(catalog="c", root_uri=str(tmp_path / "lake"), volumes_root=str(tmp_path))
    return write_tables(lakehouse, fixture)


def _instance(days) -> DagsterInstance:
    instance = DagsterInstance.ephemeral()
    for path in (i.path for i in INPUTS if i.required):
        for day in days:
            instance.report_runless_asset_event(
                AssetMaterialization(asset_key=table_key(path), partition=day.isoformat())
            )
    for path, costs in MIRROR_COSTS.items():
        instance.report_runless_asset_event(
            AssetMaterialization(
                asset_key=table_key(path),
                partition=D1.isoformat(),
                metadata={"cost_rows": MetadataValue.json(costs)},
            )
        )
    return instance


def _run(assets, lakehouse, instance, days):
    return materialize(
        assets,
        resources={"lakehouse": lakehouse, "sql_engine": DuckDBEngine(), "pricing": Pricing()},
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": days[0].isoformat(),
            "dagster/asset_partition_range_end": days[-1].isoformat(),
        },
    )


def test_the_asset_prices_collects_and_shares_out_and_reruns_the_same(tmp_path):
    lakehouse = _lakehouse(tmp_path)
    instance = _instance([D1, D2])
    result = _run([cost_tracking], lakehouse, instance, [D1, D2])
    assert result.success
    stored = lakehouse.read(COSTS).to_pylist()
    by_key = {}
    for r in stored:
        meta = json.loads(r["metadata"])
        assert r["cost_date"] == D1 and r["organization_id"] in (A, B)
        if meta["stage"] in ("ingestion", "training"):
            by_key[(r["organization_id"], r["resource_type"], r["resource_id"])] = r
        else:
            key = (r["organization_id"], r["resource_type"], r["operation"], meta["price_key"])
            assert r["total_cost"] == Decimal(STAGE_COSTS[key][1]), key
    assert len(stored) == len(STAGE_COSTS) + 2 + len(ALLOCATED)
    for key, total in ALLOCATED.items():
        assert by_key[key]["total_cost"] == Decimal(total), key
        assert json.loads(by_key[key]["metadata"])["allocation"] == "feedback_share"
    assert by_key[(A, "ingestion", "raw_data.voice_feedback")]["total_cost"] == Decimal("0.0002")
    # The day's total holds: stage costs + training + every mirror row, to the micro-dollar.
    stage_total = sum(Decimal(t) for _, t in [*STAGE_COSTS.values(), *TRAINING_COSTS.values()])
    mirror_total = sum(Decimal(r["total_cost"]) for rs in MIRROR_COSTS.values() for r in rs)
    assert sum(r["total_cost"] for r in stored) == stage_total + mirror_total
    events = {
        e.materialization.partition: e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert events["2026-11-21"]["dagster/partition_row_count"].value == 0  # an empty day
    assert events["2026-11-20"]["dagster/partition_row_count"].value == len(stored)
    total = events["2026-11-20"]["total_cost_usd"].value
    assert abs(total - float(stage_total + mirror_total)) < 1e-12
    assert "data:image/png;base64," in events["2026-11-20"]["cost_by_stage"].value
    assert result.get_asset_check_evaluations()[0].passed
    # Re-running the day gives the same rows: same ids, nothing doubled.
    again = _run([cost_tracking], lakehouse, instance, [D1, D1])
    assert again.success
    after = lakehouse.read(COSTS).to_pylist()
    assert sorted((r["id"], r["total_cost"]) for r in after) == sorted(
        (r["id"], r["total_cost"]) for r in stored
    )


def test_a_day_without_feedback_shares_evenly_over_active_organizations():
    row = {
        "id": uid("x"),
        "organization_id": None,
        "quantity": 3.0,
        "total_cost": Decimal("0.000100"),
        "cost_date": D2,
        "metadata": {"stage": "ingestion"},
    }
    split = allocate([row], {(D1, A): 5}, [A, B, C])
    # 0.0001 / 3 = 0.0000333 each; the remaining micro-dollar stays with the first.
    assert {r["organization_id"]: r["total_cost"] for r in split} == {
        A: Decimal("0.000034"),
        B: Decimal("0.000033"),
        C: Decimal("0.000033"),
    }
    assert {r["metadata"]["allocation"] for r in split} == {"even"}
    assert abs(sum(r["quantity"] for r in split) - 3.0) < 1e-12


def test_sharing_over_many_organizations_is_never_negative_and_keeps_the_total():
    orgs = [f"00000000-0000-4000-8000-{i:012d}" for i in range(100)]
    row = {
        "id": uid("y"),
        "organization_id": None,
        "quantity": 5.5,
        "unit_cost": Decimal("0.000100"),
        "total_cost": Decimal("0.000550"),
        "cost_date": D2,
        "metadata": {"stage": "ingestion"},
    }
    split = allocate([row], {}, orgs)
    # 0.0000055 each: 0.000005 rounded down, the 50 micro-dollars left one each to 50 of them
    assert Counter(r["total_cost"] for r in split) == {
        Decimal("0.000005"): 50,
        Decimal("0.000006"): 50,
    }
    assert sum(r["total_cost"] for r in split) == Decimal("0.000550")
    assert cost_rows_check(split).passed


def test_the_check_fails_on_a_mispriced_row_with_equal_counts():
    good = {
        "id": uid("g"),
        "organization_id": A,
        "quantity": 4.0,
        "unit_cost": Decimal("0.000250"),
        "total_cost": Decimal("0.001000"),
    }
    assert cost_rows_check([good]).passed
    bad = {**good, "total_cost": Decimal("0.002000")}  # same row count, twice the price
    check = cost_rows_check([bad])
    assert not check.passed and check.metadata["mispriced"].value == [uid("g")]
    orphan = {**good, "id": uid("o"), "organization_id": None}
    assert cost_rows_check([good, orphan]).metadata["no_organization"].value == [uid("o")]
    assert not cost_rows_check([good, good]).passed  # an id twice
    # Over a range, the days of the bad rows are named, not the clean ones.
    # (by cost_date, the table's partition column: rows as the table stores them)
    days = [{**good, "cost_date": D1}, {**bad, "id": uid("b"), "cost_date": D2}]
    check = cost_rows_check(days)
    assert check.metadata["failing_partitions"].value == [D2.isoformat()]
    assert check.description == f"1 mispriced (failing partitions: {D2.isoformat()})"


ORG_FIXTURE = {
    "raw_data/voice_feedback": FIXTURE["raw_data/voice_feedback"],
    "raw_data/sentiment_analysis": FIXTURE["raw_data/sentiment_analysis"],
    "raw_data/users": [
        {"id": uid("u1"), "organization_id": A, "is_active": True, "day": D0},
        {"id": uid("u2"), "organization_id": B, "is_active": True, "day": D1},
        {"id": uid("u3"), "organization_id": A, "is_active": True, "day": D2},  # after D1
        {"id": uid("u4"), "organization_id": A, "is_active": False, "day": D0},
    ],
    "analytics/cost_tracking": [
        {"organization_id": A, "total_cost": Decimal("0.5"), "cost_date": D1, "day": D1},
        {"organization_id": A, "total_cost": Decimal("0.25"), "cost_date": D1, "day": D1},
        {"organization_id": B, "total_cost": Decimal("0.1"), "cost_date": D1, "day": D1},
        # C spent on D1 (say a sync) but gave no feedback: still a row for C
        {"organization_id": C, "total_cost": Decimal("0.2"), "cost_date": D1, "day": D1},
    ],
}


def test_organization_metrics_hand_worked(spark):
    from voyce_assets_tests.analytics.harness import run_both

    got = run_both(
        spark,
        "analytics/organization_metrics",
        inputs(ORG_FIXTURE),
        {"start_date": D1, "end_date": D2},
    )
    assert_expected(
        got,
        {
            (A, D1): {
                "total_users": 1,  # u1; u3 joins later, u4 is inactive
                "active_users": 1,  # u1 gave both
                "total_feedback_count": 2,
                "avg_feedback_per_user": 2.0,
                "total_audio_minutes": 3.0,  # (60 + 120) / 60
                "storage_used_gb": 2.0,  # f0 (1 GiB, the day before) + 2 x 0.5 GiB
                "api_calls_count": 2,  # f1 messages, f2 batch
                "processing_cost_usd": Decimal("0.75"),
            },
            (B, D1): {
                "total_users": 1,
                "active_users": 1,
                "total_feedback_count": 1,
                "avg_feedback_per_user": 1.0,
                "total_audio_minutes": 0.5,
                "storage_used_gb": 1.0,
                "api_calls_count": 0,  # the local analyzer calls nothing
                "processing_cost_usd": Decimal("0.1"),
            },
            (C, D1): {
                "total_users": 0,
                "active_users": 0,
                "total_feedback_count": 0,
                "avg_feedback_per_user": None,  # 0 / 0 is null, not NaN
                "total_audio_minutes": None,
                "storage_used_gb": 0.0,
                "api_calls_count": 0,
                "processing_cost_usd": Decimal("0.2"),
            },
            # D2: nothing happened, so no rows (not an error).
        },
        ("organization_id", "metric_date"),
    )


def test_organization_metrics_asset_waits_then_writes(tmp_path):
    lakehouse = _lakehouse(tmp_path, ORG_FIXTURE)
    instance = DagsterInstance.ephemeral()
    for path in ("raw_data/voice_feedback", "raw_data/users", "raw_data/sentiment_analysis"):
        instance.report_runless_asset_event(
            AssetMaterialization(asset_key=table_key(path), partition=D1.isoformat())
        )
    waiting = materialize(
        [organization_metrics],
        resources={"lakehouse": lakehouse, "sql_engine": DuckDBEngine()},
        instance=instance,
        partition_key=D1.isoformat(),
        raise_on_error=False,
    )
    error = waiting.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "analytics/cost_tracking: 2026-11-20" in error.description
    instance.report_runless_asset_event(
        AssetMaterialization(asset_key=table_key(COSTS.path), partition=D1.isoformat())
    )
    done = materialize(
        [organization_metrics],
        resources={"lakehouse": lakehouse, "sql_engine": DuckDBEngine()},
        instance=instance,
        partition_key=D1.isoformat(),
    )
    meta = done.get_asset_materialization_events()[0].materialization.metadata
    assert meta["dagster/partition_row_count"].value == 3
    assert "| organization_id |" in meta["preview"].value


def test_a_sentiment_table_made_before_the_cache_columns_takes_the_stages_write(tmp_path):
    """A sentiment_analysis table created before cache_write_tokens / cache_read_tokens
    existed: the text stage's write adds them (an overwrite with columns the table lacks is
    refused otherwise), the older days read NULL, and the day is priced in full."""
    from deltalake import DeltaTable

    from voyce_assets.feedback import write_partition

    spec = table("raw_data/sentiment_analysis")
    new = {"cache_write_tokens", "cache_read_tokens"}
    lakehouse = _lakehouse(
        tmp_path, {p: r for p, r in FIXTURE.items() if p != "raw_data/sentiment_analysis"}
    )
    uri = lakehouse.table_uri(spec)
    DeltaTable.create(
        uri,
        schema=pa.schema([f for f in spec.arrow_schema() if f.name not in new]),
        partition_by=[spec.partition_column],
    )
    before = [dict(r, cache_write_tokens=None, cache_read_tokens=None) for r in _sentiment(D0)]
    write_deltalake(
        uri,
        pa.Table.from_pylist(
            [{k: v for k, v in r.items() if k not in new} for r in before],
            schema=pa.schema([f for f in spec.arrow_schema() if f.name not in new]),
        ),
        mode="append",
    )
    write_partition(lakehouse, spec, _sentiment(D1), [D1])
    assert new <= set(DeltaTable(uri).schema().to_arrow().names)
    older = lakehouse.read(spec, [D0], sorted(new)).to_pylist()
    assert older and all(v is None for r in older for v in r.values())

    result = _run([cost_tracking], lakehouse, _instance([D1]), [D1])
    assert result.success
    stored = lakehouse.read(COSTS).to_pylist()
    llm = {
        (r["organization_id"], r["operation"], json.loads(r["metadata"])["price_key"]): r
        for r in stored
        if r["resource_type"] == "llm_api"
    }
    for (org, kind, operation, price_key), (_, total) in STAGE_COSTS.items():
        if kind == "llm_api":
            assert llm[(org, operation, price_key)]["total_cost"] == Decimal(total)


def _sentiment(day: dt.date) -> list[dict]:
    """The fixture's sentiment rows as the stage writes them, on ``day``."""
    raw = [dict(r, day=day) for r in FIXTURE["raw_data/sentiment_analysis"]]
    return rows("raw_data/sentiment_analysis", raw).to_pylist()


def test_a_range_run_gives_each_day_its_own_rows_and_metadata_and_a_rerun_adds_none(tmp_path):
    """One run over three days (as a backfill runs) writes each day's rows to that day and
    records each day's own row count and preview; running the range again, or one day of it,
    replaces those days' rows instead of adding to them, and leaves the other days alone."""
    lakehouse = _lakehouse(tmp_path, ORG_FIXTURE)
    instance = DagsterInstance.ephemeral()
    days = [D0, D1, D2]
    for path in (i.path for i in METRICS_INPUTS if i.required):
        for day in days:
            instance.report_runless_asset_event(
                AssetMaterialization(asset_key=table_key(path), partition=day.isoformat())
            )
    resources = {"lakehouse": lakehouse, "sql_engine": DuckDBEngine()}
    tags = {
        "dagster/asset_partition_range_start": D0.isoformat(),
        "dagster/asset_partition_range_end": D2.isoformat(),
    }
    spec = table("analytics/organization_metrics")

    def stored() -> list[dict]:
        return lakehouse.read(spec).to_pylist()

    def per_day(rows) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {d.isoformat(): set() for d in days}
        for r in rows:
            out[r["metric_date"].isoformat()].add(r["organization_id"])
        return out

    expected = {D0.isoformat(): {A}, D1.isoformat(): {A, B, C}, D2.isoformat(): set()}
    for _ in range(2):  # the same range twice: the second run replaces, never appends
        result = materialize(
            [organization_metrics], resources=resources, tags=tags, instance=instance
        )
        rows = stored()
        assert len(rows) == 4
        assert (
            Counter((r["organization_id"], r["metric_date"]) for r in rows).most_common(1)[0][1]
            == 1
        )
        assert per_day(rows) == expected
        events = {
            e.materialization.partition: e.materialization.metadata
            for e in result.get_asset_materialization_events()
        }
        assert sorted(events) == sorted(expected)
        for day, orgs in expected.items():
            meta = events[day]
            assert meta["dagster/partition_row_count"].value == len(orgs)
            shown = {o for o in (A, B, C) if o in meta["preview"].value}
            assert shown == orgs, day  # each day's preview holds that day's rows, no other's
    before = {(r["organization_id"], r["metric_date"]): r["created_at"] for r in stored()}
    again = materialize(
        [organization_metrics], resources=resources, instance=instance, partition_key=D1.isoformat()
    )
    assert again.success
    after = {(r["organization_id"], r["metric_date"]): r["created_at"] for r in stored()}
    assert set(after) == set(before)
    assert after[(A, D0)] == before[(A, D0)]  # the day not run keeps its rows as they were
    assert all(after[(o, D1)] > before[(o, D1)] for o in (A, B, C))
