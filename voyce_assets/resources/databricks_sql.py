"""Running one statement on a Databricks SQL warehouse (Statement Execution API 2.0) through
databricks-sdk: submit, poll until it ends (cancelled past its deadline), and read the rows
back from the JSON_ARRAY result, every chunk of it, typed by the result's manifest.

Every way a statement can fail ends in ``StatementFailed`` naming the statement: FAILED with
the warehouse's error (its SQL error class, e.g. ``[TABLE_OR_VIEW_NOT_FOUND]``), CANCELED or
CLOSED on the warehouse, past the deadline (cancelled first), or refused by the API (403 on a
warehouse one may not use, 404 for one that does not exist). Throttling (429) and an
unavailable service (503) are retried by the SDK as their ``Retry-After`` says; a statement is
never submitted twice by this module."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections.abc import Mapping
from decimal import Decimal

import pyarrow as pa


class StatementFailed(RuntimeError):
    """The warehouse ran the statement and it failed, or it did not end in time."""


def head(statement: str) -> str:
    return statement.strip().splitlines()[0].rstrip(" (")


def _parameter(name: str, value):
    from databricks.sdk.service.sql import StatementParameterListItem

    kind = (
        "DATE"
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime)
        else "TIMESTAMP"
        if isinstance(value, dt.datetime)
        else "BIGINT"
        if isinstance(value, int)
        else "DOUBLE"
        if isinstance(value, float)
        else "STRING"
    )
    return StatementParameterListItem(name=name, value=str(value), type=kind)


def execute(
    client,
    warehouse_id: str,
    statement: str,
    parameters: Mapping[str, object] | None = None,
    timeout_seconds: float = 600,
    poll_interval_seconds: float = 0.5,
):
    """The finished statement's response; ``StatementFailed`` when it failed or timed out."""
    from databricks.sdk.errors import DatabricksError
    from databricks.sdk.service.sql import (
        Disposition,
        ExecuteStatementRequestOnWaitTimeout,
        Format,
        StatementState,
    )

    from voyce_assets.resources.databricks_runs import TRANSIENT_READS, is_transient

    api = client.statement_execution
    deadline = time.monotonic() + timeout_seconds
    try:
        resp = api.execute_statement(
            statement=statement,
            warehouse_id=warehouse_id,
            parameters=[_parameter(k, v) for k, v in (parameters or {}).items()] or None,
            wait_timeout="30s",
            on_wait_timeout=ExecuteStatementRequestOnWaitTimeout.CONTINUE,
            format=Format.JSON_ARRAY,
            disposition=Disposition.INLINE,
        )
        delay = poll_interval_seconds
        misses = 0
        while resp.status.state in (StatementState.PENDING, StatementState.RUNNING):
            if time.monotonic() > deadline:
                # Its own error must not hide why: the statement ran out of time.
                with contextlib.suppress(Exception):
                    api.cancel_execution(resp.statement_id)
                raise StatementFailed(
                    f"timed out after {timeout_seconds}s, cancelled: {head(statement)}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            try:
                resp = api.get_statement(resp.statement_id)
                misses = 0
            except Exception as error:
                # A status read lost to a 5xx or the network: the statement still runs on the
                # warehouse; read again (a few in a row), then cancel it and give up.
                misses += 1
                if not is_transient(error) or misses >= TRANSIENT_READS:
                    with contextlib.suppress(Exception):
                        api.cancel_execution(resp.statement_id)
                    raise
    except DatabricksError as error:  # refused by the API, or still throttled after retries
        code = f"{error.error_code}: " if error.error_code else ""
        raise StatementFailed(f"{head(statement)} failed: {code}{error}") from None
    state = resp.status.state
    if state == StatementState.FAILED:
        error = resp.status.error.message if resp.status.error else "no error given"
        raise StatementFailed(f"{head(statement)} failed: {error}")
    if state == StatementState.CANCELED:
        raise StatementFailed(f"{head(statement)} was cancelled on the warehouse")
    if state == StatementState.CLOSED:
        raise StatementFailed(f"{head(statement)} was closed before its result was read")
    if state != StatementState.SUCCEEDED:
        raise StatementFailed(f"{head(statement)} ended {state}")
    return resp


_ARROW = {
    "STRING": pa.string(),
    "BIGINT": pa.int64(),
    "LONG": pa.int64(),
    "INT": pa.int32(),
    "SHORT": pa.int16(),
    "BYTE": pa.int8(),
    "DOUBLE": pa.float64(),
    "FLOAT": pa.float32(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
}


def _convert(type_name: str, type_text: str, value: str | None):
    if value is None:
        return None
    if type_name in ("BIGINT", "LONG", "INT", "SHORT", "BYTE"):
        return int(value)
    if type_name in ("DOUBLE", "FLOAT"):
        return float(value)
    if type_name == "BOOLEAN":
        return value.lower() == "true"
    if type_name == "DATE":
        return dt.date.fromisoformat(value)
    if type_name == "TIMESTAMP":
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if type_name == "DECIMAL":
        return Decimal(value)
    if type_name == "ARRAY":
        return json.loads(value)
    return value


def _type(type_name: str, type_text: str) -> pa.DataType:
    if type_name == "ARRAY":
        inner = type_text[type_text.index("<") + 1 : -1].strip().upper()
        return pa.list_(_ARROW.get(inner, pa.string()))
    if type_name == "DECIMAL":
        precision, scale = type_text[type_text.index("(") + 1 : -1].split(",")
        return pa.decimal128(int(precision), int(scale))
    return _ARROW.get(type_name, pa.string())


def result_table(client, resp) -> pa.Table:
    """The rows of a finished statement as Arrow, every chunk, typed by its manifest."""
    columns = resp.manifest.schema.columns or []
    names = [c.name for c in columns]
    kinds = [(c.type_name.value if c.type_name else "STRING", c.type_text or "") for c in columns]
    rows: list[list] = list(resp.result.data_array or []) if resp.result else []
    chunk = resp.result.next_chunk_index if resp.result else None
    while chunk is not None:
        part = client.statement_execution.get_statement_result_chunk_n(resp.statement_id, chunk)
        rows += part.data_array or []
        chunk = part.next_chunk_index
    arrays = [
        pa.array([_convert(k, t, row[i]) for row in rows], _type(k, t))
        for i, (k, t) in enumerate(kinds)
    ]
    return pa.table(dict(zip(names, arrays, strict=True)))
