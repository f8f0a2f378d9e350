"""analytics.daily_feedback_summary: the one SQL file on DuckDB (transpiled) and on Spark
(pyspark, local mode) over the same fixture, checked against numbers worked out by hand."""

from __future__ import annotations

import datetime as dt
import math

import pyarrow as pa
import pytest
from dagster import AssetMaterialization, DagsterInstance, materialize
from deltalake import DeltaTable

from voyce_assets.analytics.daily_feedback_summary import (
    INPUTS,
    SUMMARY,
    daily_feedback_summary,
)
from voyce_assets.analytics.sql_asset import sql_text
from voyce_assets.resources import Lakehouse
from voyce_assets.resources.sql_engine import DuckDBEngine
from voyce_assets.tables import table_key
from voyce_assets_tests.analytics.harness import A, B, rows, write_tables

D1, D2 = dt.date(2026, 11, 20), dt.date(2026, 11, 21)


def _fid(n: int) -> str:
    return f"00000000-0000-4000-8000-0000000000f{n}"


# f1, f2: analysed; f3: transcription failed; f4 (org B): analysis failed, no duration;
# f5 (day 2): not transcribed yet.
FIXTURE: dict[str, list[dict]] = {
    "raw_data/voice_feedback": [
        {"id": _fid(1), "organization_id": A, "audio_duration_seconds": 10.0, "day": D1},
        {"id": _fid(2), "organization_id": A, "audio_duration_seconds": 20.0, "day": D1},
        {"id": _fid(3), "organization_id": A, "audio_duration_seconds": 30.0, "day": D1},
        {"id": _fid(4), "organization_id": B, "audio_duration_seconds": None, "day": D1},
        {"id": _fid(5), "organization_id": A, "audio_duration_seconds": 40.0, "day": D2},
    ],
    "raw_data/transcriptions": [
        {"voice_feedback_id": _fid(1), "processing_time_ms": 100, "day": D1},
        {"voice_feedback_id": _fid(2), "processing_time_ms": 300, "day": D1},
        {
            "voice_feedback_id": _fid(3),
            "processing_time_ms": 999,
            "day": D1,
            "error_message": "cannot read audio",
        },
        {"voice_feedback_id": _fid(4), "processing_time_ms": 200, "day": D1},
    ],
    "raw_data/sentiment_analysis": [
        {
            "voice_feedback_id": _fid(1),
            "sentiment_label": "negative",
            "sentiment_score": -0.8,
            "day": D1,
        },
        {
            "voice_feedback_id": _fid(2),
            "sentiment_label": "positive",
            "sentiment_score": 0.6,
            "day": D1,
        },
        {
            "voice_feedback_id": _fid(4),
            "sentiment_label": None,
            "sentiment_score": None,
            "day": D1,
            "error_message": "invalid answer after a retry",
        },
    ],
    "processed_data/enhanced_transcriptions": [
        {
            "voice_feedback_id": _fid(1),
            "organization_id": A,
            "topics": ["delivery", "support"],
            "day": D1,
        },
        {"voice_feedback_id": _fid(2), "organization_id": A, "topics": ["delivery"], "day": D1},
        {"voice_feedback_id": _fid(4), "organization_id": B, "topics": [], "day": D1},
    ],
    "raw_data/tags": [
        {"id": "00000000-0000-4000-8000-0000000000c1", "name": "urgent", "day": D1},
        {"id": "00000000-0000-4000-8000-0000000000c2", "name": "shipping", "day": D1},
    ],
    "raw_data/feedback_tags": [
        {
            "voice_feedback_id": _fid(1),
            "tag_id": "00000000-0000-4000-8000-0000000000c1",
            "day": D2,
        },  # tagged the next day: still the tag of day 1's feedback
        {"voice_feedback_id": _fid(1), "tag_id": "00000000-0000-4000-8000-0000000000c2", "day": D1},
        {"voice_feedback_id": _fid(2), "tag_id": "00000000-0000-4000-8000-0000000000c2", "day": D1},
    ],
}

# Worked out by hand from the fixture above.
EXPECTED = {
    (D1, A): {
        "total_feedback_count": 3,
        "avg_duration_seconds": 20.0,  # (10 + 20 + 30) / 3
        "sentiment_positive_count": 1,
        "sentiment_neutral_count": 0,
        "sentiment_negative_count": 1,
        "avg_sentiment_score": -0.1,  # (-0.8 + 0.6) / 2
        "top_topics": ["delivery", "support"],  # 2, then 1
        "top_tags": ["shipping", "urgent"],  # 2, then 1
        "processing_success_rate": 2 / 3,
        "avg_processing_time_ms": 200.0,  # successful ones only: (100 + 300) / 2
    },
    (D1, B): {
        "total_feedback_count": 1,
        "avg_duration_seconds": None,
        "sentiment_positive_count": 0,
        "sentiment_neutral_count": 0,
        "sentiment_negative_count": 0,
        "avg_sentiment_score": None,  # its analysis failed
        "top_topics": [],
        "top_tags": [],
        "processing_success_rate": 1.0,
        "avg_processing_time_ms": 200.0,
    },
    (D2, A): {
        "total_feedback_count": 1,
        "avg_duration_seconds": 40.0,
        "sentiment_positive_count": 0,
        "sentiment_neutral_count": 0,
        "sentiment_negative_count": 0,
        "avg_sentiment_score": None,
        "top_topics": [],
        "top_tags": [],
        "processing_success_rate": None,  # nothing tried yet: null, not 0/0
        "avg_processing_time_ms": None,
    },
}


def _arrow(path: str) -> pa.Table:
    return rows(path, FIXTURE[path])


def _inputs() -> dict[str, pa.Table]:
    return {path.replace("/", "."): _arrow(path) for path in FIXTURE}


def _check(rows: list[dict]) -> None:
    got = {(r["date"], r["organization_id"]): r for r in rows}
    assert set(got) == set(EXPECTED)
    for key, expected in EXPECTED.items():
        for column, value in expected.items():
            actual = got[key][column]
            if isinstance(value, float):
                assert actual is not None and math.isclose(actual, value, abs_tol=1e-9), (
                    key,
                    column,
                    actual,
                )
            else:
                assert actual == value, (key, column, actual)


PARAMS = {"start_date": D1, "end_date": D2}


def test_duckdb_gives_the_hand_worked_numbers():
    _check(DuckDBEngine().run(sql_text("daily_feedback_summary"), _inputs(), PARAMS).to_pylist())


def test_spark_gives_the_same_numbers(spark):
    _check(spark.run(sql_text("daily_feedback_summary"), _inputs(), PARAMS).to_pylist())


def test_the_engine_refuses_sql_reading_a_table_it_was_not_given():
    inputs = _inputs()
    del inputs["raw_data.tags"]
    with pytest.raises(ValueError, match=r"raw_data\.tags"):
        DuckDBEngine().run(sql_text("daily_feedback_summary"), inputs, PARAMS)


def test_the_asset_writes_each_day_and_an_empty_day_is_zero_rows(tmp_path):
    lakehouse = Lakehouse(catalog="c", root_uri=str(tmp_path / "lake"), volumes_root=str(tmp_path))
    write_tables(lakehouse, FIXTURE)
    resources = {"lakehouse": lakehouse, "sql_engine": DuckDBEngine()}
    days = [D1.isoformat(), D2.isoformat(), "2026-11-22"]
    tags = {
        "dagster/asset_partition_range_start": days[0],
        "dagster/asset_partition_range_end": days[-1],
    }
    instance = DagsterInstance.ephemeral()
    # The upstream days exist as materializations (the voice and text stages' runs), all but
    # the transcriptions of day 2: the summary waits, naming what it waits for.
    for path in (i.path for i in INPUTS if i.required):
        for day in days:
            if (path, day) != ("raw_data/transcriptions", D2.isoformat()):
                instance.report_runless_asset_event(
                    AssetMaterialization(asset_key=table_key(path), partition=day)
                )
    waiting = materialize(
        [daily_feedback_summary],
        resources=resources,
        tags=tags,
        instance=instance,
        raise_on_error=False,
    )
    assert not waiting.success and not lakehouse.exists(SUMMARY)
    error = waiting.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "raw_data/transcriptions: 2026-11-21" in error.description
    instance.report_runless_asset_event(
        AssetMaterialization(asset_key=table_key("raw_data/transcriptions"), partition=days[1])
    )
    result = materialize(
        [daily_feedback_summary], resources=resources, tags=tags, instance=instance
    )
    assert result.success
    stored = DeltaTable(lakehouse.table_uri(SUMMARY)).to_pyarrow_table().to_pylist()
    _check(stored)
    counts = {
        e.materialization.partition: e.materialization.metadata["dagster/partition_row_count"].value
        for e in result.get_asset_materialization_events()
    }
    assert counts == {D1.isoformat(): 2, D2.isoformat(): 1, "2026-11-22": 0}
    check = result.get_asset_check_evaluations()[0]
    assert check.check_name == "feedback_counts_reconcile" and check.passed
    trend = {
        e.materialization.partition: e.materialization.metadata["sentiment_trend"].value
        for e in result.get_asset_materialization_events()
    }
    assert all("data:image/png;base64," in chart for chart in trend.values())
    assert len(set(trend.values())) == 3  # each day its own window, not the run's
    # Late data for day 2 recomputes day 2 only: day 1's rows are the same rows.
    again = materialize(
        [daily_feedback_summary],
        resources=resources,
        partition_key="2026-11-21",
        instance=instance,
    )
    assert again.success
    after = DeltaTable(lakehouse.table_uri(SUMMARY)).to_pyarrow_table().to_pylist()

    def day1(rows):
        return sorted((r["organization_id"], r["created_at"]) for r in rows if r["date"] == D1)

    assert day1(after) == day1(stored) and len(after) == 3


def _warehouse(catalog: str, inputs: dict[str, pa.Table]):
    """A stand-in for the warehouse's compute behind the local Databricks server: runs the
    statement it received (Databricks SQL over ``catalog.schema.table``) and answers in
    the API's JSON_ARRAY form (every value a string)."""
    import json

    import duckdb
    import sqlglot

    kinds = {
        "BIGINT": ("LONG", "BIGINT"),
        "HUGEINT": ("LONG", "BIGINT"),
        "INTEGER": ("INT", "INT"),
        "DOUBLE": ("DOUBLE", "DOUBLE"),
        "VARCHAR": ("STRING", "STRING"),
        "DATE": ("DATE", "DATE"),
        "VARCHAR[]": ("ARRAY", "ARRAY<STRING>"),
    }

    def query(statement: str, parameters: list[dict]):
        con = duckdb.connect()
        con.execute(f"ATTACH ':memory:' AS {catalog}")
        for name, data in inputs.items():
            schema, _, name_ = name.partition(".")
            con.register("incoming", data)
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {catalog}.{schema}")
            con.execute(f"CREATE TABLE {catalog}.{schema}.{name_} AS SELECT * FROM incoming")
            con.unregister("incoming")
        values = {
            p["name"]: dt.date.fromisoformat(p["value"]) if p.get("type") == "DATE" else p["value"]
            for p in parameters
        }
        sql = sqlglot.transpile(statement, read="databricks", write="duckdb")[0]
        cur = con.execute(sql, values)
        columns = [(d[0], *kinds[str(d[1])]) for d in cur.description]
        rows = [
            [None if v is None else json.dumps(v) if isinstance(v, list) else str(v) for v in row]
            for row in cur.fetchall()
        ]
        return columns, rows

    return query


def test_the_sql_warehouse_engine_speaks_the_statement_api():
    from voyce_assets.resources.databricks_sql import StatementFailed
    from voyce_assets.resources.sql_engine import DatabricksSqlEngine
    from voyce_assets_tests.fakes.databricks import FakeDatabricks

    inputs = _inputs()
    with FakeDatabricks(token="dapi-test", chunk_rows=1) as fake:
        fake.query = _warehouse("voice_feedback_prod", inputs)
        engine = DatabricksSqlEngine(
            host=fake.host, token="dapi-test", warehouse_id="wh1", catalog="voice_feedback_prod"
        )
        # The warehouse reads the catalog: the inputs are only named, never read here.
        never = {name: (lambda: pytest.fail("read an input")) for name in inputs}
        result = engine.run(sql_text("daily_feedback_summary"), never, PARAMS)
        _check(result.to_pylist())
        sent = fake.statements[-1]
        assert "voice_feedback_prod.raw_data.voice_feedback" in sent.statement
        assert {(p["name"], p["type"], p["value"]) for p in sent.parameters} == {
            ("start_date", "DATE", "2026-11-20"),
            ("end_date", "DATE", "2026-11-21"),
        }
        assert len(result) == 3  # one row per chunk: every chunk was fetched
        # The warehouse's own error (a column that does not exist) reaches the caller.
        with pytest.raises(StatementFailed, match="no_such_column"):
            engine.run(
                "SELECT no_such_column FROM raw_data.tags",
                {"raw_data.tags": never["raw_data.tags"]},
                {},
            )


def test_the_count_check_fails_when_a_day_loses_feedback():
    from voyce_assets.analytics.daily_feedback_summary import feedback_count_check

    feedback = _arrow("raw_data/voice_feedback")
    summary = pa.table(
        {
            "date": pa.array([D1, D1, D2], pa.date32()),
            "total_feedback_count": pa.array([3, 1, 1], pa.int64()),
        }
    )
    assert feedback_count_check(summary, feedback).passed
    # Same number of rows, one count off (a join that dropped a feedback of org B).
    short = summary.set_column(1, "total_feedback_count", pa.array([3, 0, 1], pa.int64()))
    check = feedback_count_check(short, feedback)
    assert not check.passed
    assert check.metadata["mismatches"].value == {"2026-11-20": {"summary": 3, "voice_feedback": 4}}
    assert check.metadata["failing_partitions"].value == ["2026-11-20"]
    assert check.description.endswith(": 2026-11-20")
