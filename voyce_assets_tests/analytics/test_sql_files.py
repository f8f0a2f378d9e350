"""Every analytics SQL file: on empty inputs both engines give zero rows (an empty day is not
an error) in exactly the table's columns, and no file uses a construct whose meaning differs
between Spark and DuckDB."""

import datetime as dt
import re

import pytest

from voyce_assets.analytics.cost_tracking import INPUTS as COST_INPUTS
from voyce_assets.analytics.daily_feedback_summary import INPUTS as SUMMARY_INPUTS
from voyce_assets.analytics.organization_metrics import INPUTS as METRICS_INPUTS
from voyce_assets.analytics.pipeline_health import INPUTS as HEALTH_INPUTS
from voyce_assets.analytics.sql_asset import SQL_DIR, sql_text
from voyce_assets.analytics.sql_macros import MACROS, render
from voyce_assets.analytics.views import VIEWS
from voyce_assets.catalog import COST_FLAG_MEDIAN, COST_FLAG_P90, table
from voyce_assets.resources.sql_engine import DuckDBEngine
from voyce_assets_tests.analytics.harness import empty_inputs, run

TABLES = {
    "analytics/daily_feedback_summary": SUMMARY_INPUTS,
    "analytics/organization_metrics": METRICS_INPUTS,
    "analytics/pipeline_health": HEALTH_INPUTS,
    **VIEWS,
}
D1 = dt.date(2026, 11, 20)
PARAMS = {"start_date": D1, "end_date": D1}


def test_one_sql_file_per_analytics_table_and_no_other():
    names = {p.stem for p in SQL_DIR.glob("*.sql")}
    assert names == {table(p).name for p in TABLES} | {"cost_tracking"}


@pytest.mark.parametrize("path", sorted(TABLES))
def test_an_empty_day_is_zero_rows_in_the_tables_columns(path, spark):
    data = empty_inputs(i.path for i in TABLES[path])
    for engine in (DuckDBEngine(), spark):
        # run() casts to the table's schema and fails on a missing or extra column.
        assert run(engine, path, data, PARAMS) == []


def test_cost_quantities_of_an_empty_day(spark):
    data = empty_inputs(i.path for i in COST_INPUTS)
    for engine in (DuckDBEngine(), spark):
        assert engine.run(sql_text("cost_tracking"), data, PARAMS).num_rows == 0


# Each gives other numbers on DuckDB after transpiling: percentile -> a discrete quantile,
# percentile_approx -> an approximation of its own, dayofweek 1..7 -> 0..6.
DIVERGENT = re.compile(r"\b(percentile|percentile_approx|approx_percentile|dayofweek)\s*\(", re.I)


@pytest.mark.parametrize("name", sorted(p.stem for p in SQL_DIR.glob("*.sql")))
def test_no_construct_that_means_something_else_on_duckdb(name):
    found = DIVERGENT.findall(sql_text(name))
    assert not found, f"{name}.sql uses {found}; see the rules in sql_asset.py"


def test_percentile_cont_interpolates_on_both_engines(spark):
    import pyarrow as pa

    data = {"t.x": pa.table({"g": [1, 1, 1, 2], "x": [1.0, 2.0, 4.0, None]})}
    sql = "SELECT g, percentile_cont(0.9) WITHIN GROUP (ORDER BY x) AS p90 FROM t.x GROUP BY g"
    for engine in (DuckDBEngine(), spark):
        got = {r["g"]: r["p90"] for r in engine.run(sql, data, {}).to_pylist()}
        # [1, 2, 4]: position 0.9 x 2 = 1.8, so 2 + 0.8 x (4 - 2) = 3.6 (not 4, not approx)
        assert abs(got[1] - 3.6) < 1e-12 and got[2] is None, (engine.name, got)


@pytest.mark.parametrize("name", sorted(p.stem for p in SQL_DIR.glob("*.sql")))
def test_the_cost_flag_is_written_once(name):
    # The rule (1.2x p90 or 1.5x median, the catalog's numbers) lives in the cost_flag macro;
    # a file that flags says {{ cost_flag }}, and every placeholder is rendered.
    raw = (SQL_DIR / f"{name}.sql").read_text()
    flags = name in ("cost_by_day", "cost_by_month", "cost_by_organization")
    assert ("{{ cost_flag }}" in raw) == flags, name
    assert "t.median" not in raw and "t.p90" not in raw, name  # no copy of the rule by hand
    if flags:
        assert MACROS["cost_flag"].splitlines()[0] in sql_text(name)
    assert "{{" not in sql_text(name) and "}}" not in sql_text(name), name


def test_a_macro_is_indented_where_it_stands_and_an_unknown_one_is_an_error():
    assert f"{COST_FLAG_P90} * t.p90" in MACROS["cost_flag"]
    assert f"{COST_FLAG_MEDIAN} * t.median" in MACROS["cost_flag"]
    rendered = render("SELECT a,\n       {{ cost_flag }}\nFROM p").splitlines()
    first, second = MACROS["cost_flag"].splitlines()
    assert rendered == ["SELECT a,", "       " + first, "       " + second, "FROM p"]
    with pytest.raises(KeyError, match="cost_flag"):
        render("SELECT {{ nope }}")


def test_a_process_finds_the_duckdb_text_compiled_before_and_a_broken_copy_is_redone(tmp_path):
    """The DuckDB text and table names of a SQL file, compiled once, are found by a later
    process without sqlglot (what each run of an analytics asset paid again); a cached file
    that is not a whole one is compiled again, never used."""
    import json
    import os
    import subprocess
    import sys

    import sqlglot

    sql = sql_text("organization_metrics")
    expected = sqlglot.transpile(sql, read="spark", write="duckdb")[0]
    script = (
        "import json, sys\n"
        "from voyce_assets.analytics.sql_asset import sql_text\n"
        "from voyce_assets.resources.sql_engine import DuckDBEngine\n"
        "sql = sql_text('organization_metrics')\n"
        "out = {'duckdb': DuckDBEngine.transpile(sql), 'tables': sorted(DuckDBEngine().tables(sql)),\n"
        "       'sqlglot': 'sqlglot' in sys.modules}\n"
        "print(json.dumps(out))\n"
    )
    env = {**os.environ, "VOYCE_HOME": str(tmp_path)}

    def child() -> dict:
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        return json.loads(done.stdout.splitlines()[-1])

    tables = ["analytics.cost_tracking", "raw_data.sentiment_analysis", "raw_data.users"]
    tables = sorted([*tables, "raw_data.voice_feedback"])
    first = child()
    assert first == {"duckdb": expected, "tables": tables, "sqlglot": True}
    assert child() == {"duckdb": expected, "tables": tables, "sqlglot": False}
    (held,) = (tmp_path / "cache" / "sql").glob("*.json")
    held.write_text(held.read_text()[:100])  # cut short, as by a full disk
    assert child() == {"duckdb": expected, "tables": tables, "sqlglot": True}
    assert child()["sqlglot"] is False


def _fresh(sql: str) -> str:
    """What the DuckDB engine runs for ``sql``, as this process would find it first."""
    from voyce_assets.resources import sql_engine

    sql_engine._compiled.cache_clear()
    return DuckDBEngine.transpile(sql)


def test_the_sql_cache_is_its_owners_alone_and_a_failed_write_leaves_nothing(voyce_home):
    import sqlglot

    from voyce_assets.resources.sql_engine import _cache_file

    folder = voyce_home / "cache" / "sql"
    sql = "SELECT COUNT(*) AS n FROM raw_data.users -- owner only"
    assert _fresh(sql) == sqlglot.transpile(sql, read="spark", write="duckdb")[0]
    assert folder.stat().st_mode & 0o777 == 0o700
    settings = (SQL_DIR.parents[2] / "docs" / "settings.md").read_text()
    local_state = settings[settings.index("## Local state") :]
    assert f"\n.voyce/{folder.relative_to(voyce_home)}/ " in local_state
    assert [p.suffix for p in folder.iterdir()] == [".json"]
    # A write that cannot be completed (a folder stands where the file goes) is not used,
    # and its temporary file does not stay behind.
    other = "SELECT COUNT(*) AS n FROM raw_data.tags -- cannot be written"
    _cache_file(other).mkdir()
    assert _fresh(other) == sqlglot.transpile(other, read="spark", write="duckdb")[0]
    assert sorted(p.is_dir() for p in folder.iterdir()) == [False, True]  # no .tmp left


def test_a_cache_file_of_another_cache_format_is_not_read(voyce_home, monkeypatch):
    import json

    from voyce_assets.resources import sql_engine

    sql = "SELECT COUNT(*) AS n FROM raw_data.users -- format"
    expected = _fresh(sql)
    (held,) = (voyce_home / "cache" / "sql").glob("*.json")
    held.write_text(json.dumps({"duckdb": "SELECT 'stale'", "tables": []}))
    assert _fresh(sql) == "SELECT 'stale'"  # what a file says is used as it is ...
    monkeypatch.setattr(sql_engine, "_CACHE_FORMAT", sql_engine._CACHE_FORMAT + 1)
    assert _fresh(sql) == expected  # ... unless written by another format of the code


def test_without_the_sqlglot_version_nothing_is_cached(voyce_home, monkeypatch):
    import importlib.metadata

    import sqlglot

    def unknown(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", unknown)
    sql = "SELECT COUNT(*) AS n FROM raw_data.users -- no version"
    assert _fresh(sql) == sqlglot.transpile(sql, read="spark", write="duckdb")[0]
    assert not (voyce_home / "cache").exists()


def test_only_the_duckdb_engine_finds_the_tables_read_through_the_cache(voyce_home):
    from voyce_assets.resources.sql_engine import DatabricksSqlEngine, SparkEngine

    sql = "WITH u AS (SELECT * FROM raw_data.users) SELECT COUNT(*) AS n FROM u -- tables"
    databricks = DatabricksSqlEngine(host="https://x", token="t", warehouse_id="w", catalog="c")
    for engine in (SparkEngine(), databricks):
        assert engine.tables(sql) == {"raw_data.users"}
        with pytest.raises(ValueError, match=r"raw_data\.users"):
            engine.run(sql, {}, PARAMS)
    assert not (voyce_home / "cache").exists()
    with pytest.raises(ValueError, match=r"raw_data\.users"):
        DuckDBEngine().run(sql, {}, PARAMS)
    assert len(list((voyce_home / "cache" / "sql").glob("*.json"))) == 1
