"""What the analytics parity tests share: spec-shaped fixture tables from a few fields per
row, running one SQL file on DuckDB and on Spark, and comparing rows order-free with a float
tolerance. Expected numbers are always worked out by hand in the test itself."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa

from voyce_assets.analytics.sql_asset import as_table_rows, sql_text
from voyce_assets.catalog import table
from voyce_assets.resources.sql_engine import DuckDBEngine, SqlEngine

A = "00000000-0000-4000-8000-00000000000a"
B = "00000000-0000-4000-8000-00000000000b"
TOLERANCE = 1e-9

_FILLER = {
    "string": "x",
    "uuid": A,
    "json": "{}",
    "boolean": False,
    "bigint": 0,
    "int": 0,
    "double": 0.0,
    "decimal(18,6)": Decimal(0),
    "date": dt.date(2026, 1, 1),
    "timestamp": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
}


def uid(tag: str) -> str:
    """A stable UUID for a fixture name (``uid("f1")``)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"voyce-test:{tag}"))


def ts(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), dt.UTC)


def rows(path: str, raw: Iterable[Mapping[str, Any]]) -> pa.Table:
    """The table ``path`` holding ``raw`` rows: each gives ``day`` (its partition) and the
    columns the SQL reads; ids, timestamps and required columns nobody reads are filled."""
    spec = table(path)
    out = []
    for n, given in enumerate(raw):
        row = {c: None for c in spec.column_names}
        row.update({k: v for k, v in given.items() if k != "day"})
        if "id" in row and row["id"] is None:
            row["id"] = uid(f"{path}:{n}")
        row[spec.partition_column] = given["day"]
        for column in ("created_at", "updated_at"):
            if column in row and row[column] is None:
                row[column] = ts(given["day"])
        for column in spec.columns:
            if not column.nullable and row[column.name] is None:
                row[column.name] = _FILLER[column.type.name]
        out.append(row)
    schema = pa.schema([f.with_nullable(True) for f in spec.arrow_schema()])
    return pa.Table.from_pylist(out, schema=schema)


def write_tables(lakehouse, fixture: Mapping[str, Iterable[Mapping[str, Any]]]):
    """Write ``{schema/table: raw rows}`` into ``lakehouse``'s Delta tables, each row in the
    partition of its ``day``; the lakehouse is returned."""
    from voyce_assets.lake import replace_partitions

    for path, raw in fixture.items():
        raw = list(raw)
        spec = table(path)
        days = sorted({r["day"] for r in raw})
        replace_partitions(lakehouse.ensure_table(spec), spec, rows(path, raw).to_batches(), days)
    return lakehouse


def inputs(fixture: Mapping[str, Iterable[Mapping[str, Any]]]) -> dict[str, pa.Table]:
    """``{schema.table: Arrow}`` for the engines, from ``{schema/table: raw rows}``."""
    return {path.replace("/", "."): rows(path, raw) for path, raw in fixture.items()}


def empty_inputs(paths: Iterable[str]) -> dict[str, pa.Table]:
    return {p.replace("/", "."): rows(p, []) for p in paths}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float | Decimal) and isinstance(b, float | Decimal):
        return math.isclose(float(a), float(b), rel_tol=TOLERANCE, abs_tol=TOLERANCE)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _typed(result: pa.Table, path: str) -> list[dict]:
    """The engine's rows in the table's own types (what the asset writes)."""
    return [
        {k: v for k, v in r.items() if k != "created_at"}
        for r in as_table_rows(result, table(path), dt.datetime.now(dt.UTC)).to_pylist()
    ]


def run(engine: SqlEngine, path: str, data: Mapping[str, pa.Table], params) -> list[dict]:
    """``sql/<name>.sql`` of table ``path`` run by ``engine``, in the table's types."""
    return _typed(engine.run(sql_text(table(path).name), data, params), path)


def assert_same_rows(left: Sequence[dict], right: Sequence[dict], key: Sequence[str]) -> None:
    """Equal as sets of rows keyed by ``key``; floats to a tolerance."""

    def keyed(rs):
        out = {tuple(r[k] for k in key): r for r in rs}
        assert len(out) == len(rs), f"duplicate keys {key}"
        return out

    a, b = keyed(left), keyed(right)
    assert set(a) == set(b), (sorted(set(a) - set(b), key=str), sorted(set(b) - set(a), key=str))
    for k in a:
        for column in a[k]:
            assert _same(a[k][column], b[k][column]), (k, column, a[k][column], b[k][column])


def assert_expected(got: Sequence[dict], expected: Mapping[tuple, Mapping[str, Any]], key) -> None:
    """Exactly the rows of ``expected`` (keyed by ``key``), each with the given values."""
    by_key = {tuple(r[k] for k in key): r for r in got}
    assert set(by_key) == set(expected), (
        sorted(set(by_key) - set(expected), key=str),
        sorted(set(expected) - set(by_key), key=str),
    )
    for k, values in expected.items():
        for column, value in values.items():
            assert _same(by_key[k][column], value), (k, column, by_key[k][column], value)


def run_both(spark: SqlEngine, path: str, data: Mapping[str, pa.Table], params) -> list[dict]:
    """The SQL on DuckDB and on Spark: the same rows (order-free), DuckDB's returned."""
    key = table(path).primary_key
    duck = run(DuckDBEngine(), path, data, params)
    on_spark = run(spark, path, data, params)
    assert_same_rows(duck, on_spark, key)
    return duck
