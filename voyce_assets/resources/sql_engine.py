"""The ``sql_engine`` resource: one SQL text (Spark SQL, as Databricks runs it), two engines.

SQL files name catalog tables as ``schema.table`` and take named parameters (``:start_date``).
An asset hands the engine the SQL and the input tables as Arrow; the engine runs it:

- ``DuckDBEngine`` (local): ``sqlglot`` transpiles the SQL from Spark to DuckDB, and the Arrow
  tables are registered as views under their catalog names (no DuckDB extension, nothing
  downloaded).
- ``SparkEngine``: pyspark, the inputs handed over as Arrow and registered as temporary views
  (what the parity tests run; Spark reads no Delta here);
- ``DatabricksSqlEngine`` (prod): a SQL warehouse runs the text against the Unity Catalog
  tables themselves (names qualified with the catalog, parameters bound by the API).

Assets never branch on the engine: which one runs is the environment's resource binding.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from abc import abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from voyce_assets.spark import is_live, local_builder

Params = Mapping[str, str | int | float | dt.date]
# An input table, or how to read it: an engine that reads the catalog itself never calls it.
Input = pa.Table | Callable[[], pa.Table]


def _load(data: Input) -> pa.Table:
    return data() if callable(data) else data


@functools.lru_cache(maxsize=256)
def _parsed(sql: str):
    """``sql`` parsed as Spark SQL, once per text in a process (parsing costs more than a
    small query). Callers never change the tree: ``transform`` copies it."""
    import sqlglot

    return sqlglot.parse_one(sql, read="spark")


def _names_in(tree) -> set[str]:
    from sqlglot import exp

    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    return {
        f"{t.db}.{t.name}" if t.db else t.name
        for t in tree.find_all(exp.Table)
        if t.name and not (not t.db and t.name in ctes)
    }


# What a cache file holds and how it is made: bump when either changes (the DuckDB text
# written differently, the table names found differently), so no file of the old code is read.
_CACHE_FORMAT = 1
_DIALECTS = "spark->duckdb"


def _cache_file(sql: str) -> Path | None:
    """Where ``_compiled`` keeps ``sql``'s DuckDB text: one file per text, code format, dialect
    pair and sqlglot version. None when the sqlglot version cannot be read (no cache then)."""
    import hashlib
    from importlib.metadata import version

    from voyce_assets.settings import voyce_home

    try:
        key = f"format {_CACHE_FORMAT}\n{_DIALECTS}\nsqlglot {version('sqlglot')}\n{sql}"
    except (ImportError, ValueError):  # PackageNotFoundError is an ImportError
        return None
    digest = hashlib.sha256(key.encode()).hexdigest()
    return voyce_home() / "cache" / "sql" / f"{digest}.json"


@functools.lru_cache(maxsize=256)
def _compiled(sql: str) -> tuple[str, tuple[str, ...]]:
    """``sql`` (Spark SQL) as DuckDB runs it, and the tables it reads.

    Kept on disk (``$VOYCE_HOME/cache/sql``, see ``_cache_file``): every run of an analytics
    asset is a fresh process under the multiprocess executor, and importing sqlglot, parsing
    and writing the text out again cost it 0.2-0.4 s, more than some of the queries. A file
    that cannot be read or written is simply not used. What a file says is run as SQL: the
    folder is trusted as the rest of ``$VOYCE_HOME`` is, and made readable by its owner only."""
    import json
    import os
    import tempfile

    path = _cache_file(sql)
    if path is not None:
        try:
            held = json.loads(path.read_text())
            return held["duckdb"], tuple(held["tables"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    tree = _parsed(sql)
    out = tree.sql(dialect="duckdb"), tuple(sorted(_names_in(tree)))
    if path is None:
        return out
    partial = None
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"duckdb": out[0], "tables": list(out[1])}, f)
        os.replace(partial, path)  # whole or not at all, whoever else writes it
    except OSError:
        if partial is not None:
            with contextlib.suppress(OSError):
                os.unlink(partial)
    return out


def spark_sql(sql: str, dialect: str, rename: Callable[[Any], Any] | None = None) -> str:
    """``sql`` re-written for Spark or Databricks, each ``schema.table`` replaced by what
    ``rename`` returns for it (unchanged when None).

    sqlglot writes ``percentile_cont(p) WITHIN GROUP (ORDER BY x)`` back out as
    ``PERCENTILE_APPROX`` (an approximation: another number than DuckDB's exact one); it is
    written as Spark's exact ``percentile(x, p)`` instead, the same linear interpolation.
    """
    from sqlglot import exp

    def rewrite(node):
        if isinstance(node, exp.Table) and node.db and rename is not None:
            return rename(node)
        if isinstance(node, exp.WithinGroup) and isinstance(node.this, exp.PercentileCont):
            (ordered,) = node.expression.expressions
            if ordered.args.get("desc"):
                raise ValueError("percentile_cont: order ascending (use 1 - p instead of DESC)")
            return exp.Anonymous(this="percentile", expressions=[ordered.this, node.this.this])
        return node

    return _parsed(sql).transform(rewrite).sql(dialect=dialect)


class SqlEngine(ConfigurableResource):
    """Runs one Spark SQL text over input tables; see ``run``."""

    def run(self, sql: str, inputs: Mapping[str, Input], params: Params) -> pa.Table:
        """The result of ``sql`` over ``inputs``: ``{"schema.table": Arrow table, or a
        function reading it}``; every table the SQL reads must be named there."""
        missing = self.tables(sql) - set(inputs)
        if missing:
            raise ValueError(f"the SQL reads tables it was not given: {sorted(missing)}")
        return self._run(sql, inputs, params)

    def tables(self, sql: str) -> set[str]:
        """The ``schema.table`` names ``sql`` (Spark SQL) reads, CTE names excluded."""
        return _names_in(_parsed(sql))

    @abstractmethod
    def _run(self, sql: str, inputs: Mapping[str, Input], params: Params) -> pa.Table:
        """``run`` once the inputs are known to cover the SQL."""

    @property
    @abstractmethod
    def name(self) -> str:
        """The engine's name, recorded in the asset's metadata."""


class DuckDBEngine(SqlEngine):
    """DuckDB in process, the SQL transpiled from Spark by sqlglot."""

    threads: int = Field(default=0, description="DuckDB threads; 0: all cores.")

    @property
    def name(self) -> str:
        return "duckdb"

    @staticmethod
    def transpile(sql: str) -> str:
        return _compiled(sql)[0]

    def tables(self, sql: str) -> set[str]:
        # Kept on disk with the DuckDB text: a run of this engine then imports no sqlglot.
        return set(_compiled(sql)[1])

    def _run(self, sql: str, inputs: Mapping[str, Input], params: Params) -> pa.Table:
        import duckdb

        con = duckdb.connect()
        try:
            # Dates of timestamps are UTC dates, as on Spark (the session's time zone).
            con.execute("SET TimeZone = 'UTC'")
            if self.threads:
                con.execute(f"SET threads = {int(self.threads)}")
            for n, (name, data) in enumerate(sorted(inputs.items())):
                schema, _, table = name.rpartition(".")
                con.register(f"__input_{n}", _load(data))
                if schema:
                    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                qualified = f'"{schema}"."{table}"' if schema else f'"{table}"'
                con.execute(f"CREATE VIEW {qualified} AS SELECT * FROM __input_{n}")
            # con.sql, not execute: execute's Arrow result is an extra copy of the rows.
            return con.sql(self.transpile(sql), params=dict(params)).to_arrow_table()
        finally:
            con.close()


class SparkEngine(SqlEngine):
    """pyspark (local mode here); inputs become temporary views of the same names."""

    master: str = Field(default="local[2]", description="Spark master.")
    driver_memory: str = Field(
        default="4g", description="Driver heap (local mode: the inputs arrive through it)."
    )

    _session: Any = PrivateAttr(default=None)

    @property
    def name(self) -> str:
        return "spark"

    def session(self):
        if not is_live(self._session):
            # The project's local builder: its Python workers run this interpreter. A session
            # built without it ran the system Python, and a later step in the same process
            # that reused it (xgboost.spark's training) found no pandas in its workers.
            self._session = (
                local_builder("voyce-analytics", self.master, self.driver_memory)
                .config("spark.sql.shuffle.partitions", "4")
                .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                .getOrCreate()
            )
        return self._session

    def _run(self, sql: str, inputs: Mapping[str, Input], params: Params) -> pa.Table:
        from sqlglot import exp

        spark = self.session()
        views = {}
        for name, data in inputs.items():
            view = name.replace(".", "__")
            spark.createDataFrame(_load(data)).createOrReplaceTempView(view)
            views[name] = view

        # Temporary views have no schema: ``raw_data.x`` is read as ``raw_data__x``.
        def rename(node):
            full = f"{node.db}.{node.name}"
            return exp.to_table(views[full]).as_(node.alias_or_name) if full in views else node

        result = spark.sql(spark_sql(sql, "spark", rename), args=dict(params))
        return result.toArrow()


class DatabricksSqlEngine(SqlEngine):
    """A Databricks SQL warehouse (Statement Execution API through databricks-sdk): the SQL
    reads the Unity Catalog tables themselves (``schema.table`` becomes
    ``<catalog>.schema.table``), so no input is read into this process."""

    host: str = Field(description="Workspace URL (DATABRICKS_HOST).")
    token: str = Field(description="Token (DATABRICKS_TOKEN, an EnvVar).")
    warehouse_id: str = Field(description="SQL warehouse that runs the analytics SQL.")
    catalog: str = Field(description="Catalog of the tables, e.g. voice_feedback_prod.")
    timeout_seconds: int = Field(default=1800, description="Per statement, then cancelled.")
    poll_interval_seconds: float = Field(
        default=0.5, gt=0, description="First wait between status reads (doubling to 5s)."
    )

    @property
    def name(self) -> str:
        return "databricks-sql"

    def qualified(self, sql: str) -> str:
        from sqlglot import exp

        def qualify(node):
            if not node.catalog:
                node.set("catalog", exp.to_identifier(self.catalog))
            return node

        return spark_sql(sql, "databricks", qualify)

    def _run(self, sql: str, inputs: Mapping[str, Input], params: Params) -> pa.Table:
        from databricks.sdk import WorkspaceClient

        from voyce_assets.resources.databricks_sql import execute, result_table

        client = WorkspaceClient(host=self.host, token=self.token)
        resp = execute(
            client,
            self.warehouse_id,
            self.qualified(sql),
            params,
            self.timeout_seconds,
            self.poll_interval_seconds,
        )
        return result_table(client, resp)
