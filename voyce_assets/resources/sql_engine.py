"""The ``sql_engine`` resource: one SQL text (Spark SQL, as Databricks runs it), two engines.

SQL files name catalog tables as ``schema.table`` and take named parameters (``:start_date``).
An asset hands the engine the SQL and the input tables as Arrow; the engine runs it:

- ``DuckDBEngine`` (local): ``sqlglot`` transpiles the SQL from Spark to DuckDB, and the Arrow
  tables are registered as views under their catalog names (no DuckDB extension, nothing
  downloaded).
- ``SparkEngine``: pyspark, the inputs handed over as Arrow and registered as temporary views
  (Spark reads no Delta here; on Databricks the same SQL reads the Unity Catalog tables).

Assets never branch on the engine: which one runs is the environment's resource binding.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

Params = Mapping[str, str | int | float | dt.date]


def _table_names(sql: str) -> set[str]:
    """The ``schema.table`` names a Spark SQL text reads (CTE names excluded)."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="spark")
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    return {
        f"{t.db}.{t.name}" if t.db else t.name
        for t in tree.find_all(exp.Table)
        if t.name and not (not t.db and t.name in ctes)
    }


class SqlEngine(ConfigurableResource):
    """Runs one Spark SQL text over input tables; see ``run``."""

    def run(self, sql: str, inputs: Mapping[str, pa.Table], params: Params) -> pa.Table:
        """The result of ``sql`` over ``inputs`` (``{"schema.table": Arrow table}``)."""
        missing = _table_names(sql) - set(inputs)
        if missing:
            raise ValueError(f"the SQL reads tables it was not given: {sorted(missing)}")
        return self._run(sql, inputs, params)

    def _run(self, sql: str, inputs: Mapping[str, pa.Table], params: Params) -> pa.Table:
        raise NotImplementedError

    @property
    def name(self) -> str:
        raise NotImplementedError


class DuckDBEngine(SqlEngine):
    """DuckDB in process, the SQL transpiled from Spark by sqlglot."""

    threads: int = Field(default=0, description="DuckDB threads; 0: all cores.")

    @property
    def name(self) -> str:
        return "duckdb"

    @staticmethod
    def transpile(sql: str) -> str:
        import sqlglot

        return sqlglot.transpile(sql, read="spark", write="duckdb")[0]

    def _run(self, sql: str, inputs: Mapping[str, pa.Table], params: Params) -> pa.Table:
        import duckdb

        con = duckdb.connect()
        try:
            if self.threads:
                con.execute(f"SET threads = {int(self.threads)}")
            for n, (name, data) in enumerate(sorted(inputs.items())):
                schema, _, table = name.rpartition(".")
                con.register(f"__input_{n}", data)
                if schema:
                    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                qualified = f'"{schema}"."{table}"' if schema else f'"{table}"'
                con.execute(f"CREATE VIEW {qualified} AS SELECT * FROM __input_{n}")
            return con.execute(self.transpile(sql), dict(params)).to_arrow_table()
        finally:
            con.close()


class SparkEngine(SqlEngine):
    """pyspark (local mode here); inputs become temporary views of the same names."""

    master: str = Field(default="local[2]", description="Spark master.")

    _session: Any = PrivateAttr(default=None)

    @property
    def name(self) -> str:
        return "spark"

    def session(self):
        if self._session is None:
            from pyspark.sql import SparkSession

            self._session = (
                SparkSession.builder.master(self.master)
                .appName("voyce-analytics")
                .config("spark.sql.session.timeZone", "UTC")
                .config("spark.sql.shuffle.partitions", "4")
                .config("spark.ui.enabled", "false")
                .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                .getOrCreate()
            )
        return self._session

    def _run(self, sql: str, inputs: Mapping[str, pa.Table], params: Params) -> pa.Table:
        import sqlglot
        from sqlglot import exp

        spark = self.session()
        views = {}
        for name, data in inputs.items():
            view = name.replace(".", "__")
            spark.createDataFrame(data).createOrReplaceTempView(view)
            views[name] = view

        # Temporary views have no schema: ``raw_data.x`` is read as ``raw_data__x``.
        def rename(node):
            if isinstance(node, exp.Table) and node.db:
                full = f"{node.db}.{node.name}"
                if full in views:
                    return exp.to_table(views[full]).as_(node.alias_or_name)
            return node

        tree = sqlglot.parse_one(sql, read="spark").transform(rename)
        result = spark.sql(tree.sql(dialect="spark"), args=dict(params))
        return result.toArrow()
