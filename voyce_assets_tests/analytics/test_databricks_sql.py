"""The SQL warehouse path (resources/databricks_sql.py, DatabricksSqlEngine) against a warehouse
that behaves as Databricks' does (voyce_assets_tests/fakes/databricks.py): a warehouse still
starting, DECIMAL and TIMESTAMP results, statements cancelled or closed on the warehouse, a
deadline, SQL errors, and the API refusing or throttling a submit."""

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
from databricks.sdk import WorkspaceClient

from voyce_assets.resources.databricks_sql import StatementFailed, execute
from voyce_assets.resources.sql_engine import DatabricksSqlEngine
from voyce_assets_tests.fakes.databricks import FakeDatabricks

TOKEN = "dapi-sql-test-token"
COLUMNS = [
    ("amount", "DECIMAL", "DECIMAL(10,2)"),
    ("at", "TIMESTAMP", "TIMESTAMP"),
    ("n", "LONG", "BIGINT"),
    ("day", "DATE", "DATE"),
]
# As the JSON_ARRAY format writes them: strings, timestamps in UTC with a Z.
ROWS = [
    ["12.30", "2026-05-01T10:15:30.123Z", "3", "2026-05-01"],
    ["-0.05", "2026-05-01T23:59:59Z", "9007199254740993", "2026-05-02"],
    [None, None, None, None],
]


@pytest.fixture
def warehouse():
    with FakeDatabricks(token=TOKEN, query=lambda statement, params: (COLUMNS, ROWS)) as fake:
        yield fake


def _client(fake) -> WorkspaceClient:
    return WorkspaceClient(host=fake.host, token=TOKEN)


def _run(fake, statement="SELECT 1", **kwargs):
    kwargs.setdefault("poll_interval_seconds", 0.01)
    return execute(_client(fake), "wh1", statement, **kwargs)


def test_a_starting_warehouse_is_waited_for_and_decimal_and_timestamp_come_back_typed(
    warehouse,
):
    warehouse.pending_polls, warehouse.polls_before_done = 2, 2
    engine = DatabricksSqlEngine(
        host=warehouse.host,
        token=TOKEN,
        warehouse_id="wh1",
        catalog="voice_feedback_prod",
        poll_interval_seconds=0.01,
    )
    result = engine.run(
        "SELECT amount, at, n, day FROM raw_data.x", {"raw_data.x": lambda: None}, {}
    )
    (statement,) = warehouse.statements
    # The submit answers PENDING, then two polls do; one RUNNING, then done.
    assert statement.served == ["PENDING", "PENDING", "PENDING", "RUNNING", "SUCCEEDED"]
    assert result.schema == pa.schema(
        [
            ("amount", pa.decimal128(10, 2)),
            ("at", pa.timestamp("us", tz="UTC")),
            ("n", pa.int64()),
            ("day", pa.date32()),
        ]
    )
    utc = dt.UTC
    assert result.to_pylist() == [
        {
            "amount": Decimal("12.30"),
            "at": dt.datetime(2026, 5, 1, 10, 15, 30, 123000, tzinfo=utc),
            "n": 3,
            "day": dt.date(2026, 5, 1),
        },
        {
            "amount": Decimal("-0.05"),
            "at": dt.datetime(2026, 5, 1, 23, 59, 59, tzinfo=utc),
            "n": 9007199254740993,  # beyond a float's integers: parsed as an int
            "day": dt.date(2026, 5, 2),
        },
        {"amount": None, "at": None, "n": None, "day": None},
    ]


@pytest.mark.parametrize(
    "state, message",
    [("CANCELED", "was cancelled on the warehouse"), ("CLOSED", "was closed before")],
)
def test_a_statement_cancelled_or_closed_on_the_warehouse_fails_clearly(warehouse, state, message):
    warehouse.ends = {"daily": state}
    with pytest.raises(StatementFailed, match=f"^SELECT \\* FROM daily {message}"):
        _run(warehouse, "SELECT * FROM daily")
    assert warehouse.statements[0].served[-1] == state
    assert warehouse.cancelled == []  # not ours to cancel


def test_past_its_deadline_a_statement_is_cancelled_and_fails(warehouse):
    warehouse.hang_pattern = "OPTIMIZE"
    with pytest.raises(StatementFailed, match=r"timed out after 0.3s, cancelled: OPTIMIZE t"):
        _run(warehouse, "OPTIMIZE t", timeout_seconds=0.3)
    (statement,) = warehouse.statements
    assert warehouse.cancelled == [statement.statement_id]  # POST .../cancel
    # And the warehouse did stop it.
    status = _client(warehouse).statement_execution.get_statement(statement.statement_id)
    assert status.status.state.value == "CANCELED"


@pytest.mark.parametrize(
    "error",
    [
        "[PARSE_SYNTAX_ERROR] Syntax error at or near 'FORM'. SQLSTATE: 42601 (line 1, pos 9)",
        "[TABLE_OR_VIEW_NOT_FOUND] The table or view `voice_feedback_prod`.`raw_data`.`nope` "
        "cannot be found. SQLSTATE: 42P01; line 1 pos 14",
        "[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does not have SELECT on "
        "Table 'voice_feedback_prod.raw_data.nope'. SQLSTATE: 42501",
    ],
    ids=["syntax", "missing_table", "no_privilege"],
)
def test_a_failed_statement_fails_with_the_warehouse_error_and_is_not_resubmitted(warehouse, error):
    warehouse.errors = {"nope": error}
    with pytest.raises(StatementFailed) as failure:
        _run(warehouse, "SELECT * FORM raw_data.nope")
    assert str(failure.value) == f"SELECT * FORM raw_data.nope failed: {error}"
    assert len(warehouse.statements) == 1
    assert TOKEN not in str(failure.value)


def test_a_warehouse_one_may_not_use_fails_the_statement_at_once(warehouse):
    warehouse.fail_requests("POST", "/api/2.0/sql/statements", 403)
    with pytest.raises(
        StatementFailed,
        match=r"^SELECT 1 failed: PERMISSION_DENIED: You do not have permission to use",
    ):
        _run(warehouse)
    assert warehouse.statements == [] and warehouse.faults == []  # refused once, no retry


def test_a_throttled_or_unavailable_submit_is_retried_and_runs_once(warehouse):
    warehouse.fail_requests("POST", "/api/2.0/sql/statements", 429, retry_after=1)
    warehouse.fail_requests("POST", "/api/2.0/sql/statements", 503, retry_after=1)
    resp = _run(warehouse)
    assert resp.status.state.value == "SUCCEEDED"
    assert warehouse.faults == [] and len(warehouse.statements) == 1
