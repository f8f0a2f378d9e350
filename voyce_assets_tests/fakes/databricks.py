"""A Databricks SQL warehouse on localhost: the Statement Execution API (2.0) in its real
wire format.

Only the HTTP boundary is fake; callers use the official databricks-sdk against it. It runs
DDL and maintenance statements, and answers queries with a ``query`` function the test gives
it, in JSON_ARRAY chunks. The launch path (DBFS, Files API, Jobs runs) is the other fake,
``databricks_workspace.py``.

It fails as a warehouse does: a statement is PENDING while the warehouse starts
(``pending_polls``), RUNNING (``polls_before_done``; ``hang_pattern`` keeps it RUNNING until it
is cancelled), then SUCCEEDED, or FAILED with ``status.error`` (``errors``: the SQL error
class in the message, as ``[TABLE_OR_VIEW_NOT_FOUND] ...``, under error_code BAD_REQUEST), or
CANCELED (``POST .../cancel``, or ``ends`` for one cancelled on the warehouse) or CLOSED.
``fail_requests`` answers the next requests with an HTTP error in Databricks' error body
(429 and 503 with ``Retry-After``, 403 PERMISSION_DENIED on a warehouse one may not use).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Statement:
    statement_id: str
    statement: str
    warehouse_id: str
    polls_left: int
    pending_left: int = 0
    error: str | None = None
    # A terminal state other than SUCCEEDED/FAILED: CANCELED or CLOSED.
    end: str | None = None
    hang: bool = False
    # Every state the API answered for it, in order.
    served: list[str] = field(default_factory=list)
    parameters: list[dict] = field(default_factory=list)
    # A query's answer: [(name, type_name, type_text)], rows of JSON_ARRAY strings.
    columns: list[tuple[str, str, str]] = field(default_factory=list)
    rows: list[list[str | None]] = field(default_factory=list)


@dataclass
class FakeDatabricks:
    token: str
    # Statements matching this regex fail with a Databricks-style error.
    fail_pattern: str | None = None
    # How many GETs a statement stays RUNNING before it finishes (exercises polling).
    polls_before_done: int = 1
    statements: list[Statement] = field(default_factory=list)
    auth_headers: list[str] = field(default_factory=list)
    # Answers a statement that returns rows (SELECT, WITH, OPTIMIZE) as a warehouse would:
    # (statement, parameters) -> (columns, rows), where columns are (name, type_name,
    # type_text) and rows hold JSON_ARRAY strings or None.
    query: Callable[[str, list[dict]], tuple[list, list]] | None = None
    # Rows per result chunk: larger answers come in chunks fetched one by one.
    chunk_rows: int = 1000
    # How many GETs a statement stays PENDING (the warehouse starting) before RUNNING.
    pending_polls: int = 0
    # Statements matching a key fail with its message ("[ERROR_CLASS] text").
    errors: dict[str, str] = field(default_factory=dict)
    # Statements matching a key end in its state (CANCELED, CLOSED) instead of SUCCEEDED.
    ends: dict[str, str] = field(default_factory=dict)
    # Statements matching this stay RUNNING until cancelled.
    hang_pattern: str | None = None
    # Ids of the statements cancelled through the API, in order.
    cancelled: list[str] = field(default_factory=list)
    # (method, path suffix, status, error_code, message, retry_after) of requests to refuse.
    faults: list[tuple] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def fail_requests(
        self,
        method: str,
        path: str,
        status: int,
        times: int = 1,
        retry_after: int | None = None,
        error_code: str | None = None,
        message: str | None = None,
    ) -> None:
        """Answers the next ``times`` ``method`` requests whose path ends with ``path`` with
        ``status`` and Databricks' error body (and ``Retry-After`` when given)."""
        code, text = {
            429: ("REQUEST_LIMIT_EXCEEDED", "Too many requests. Please wait and retry."),
            503: ("TEMPORARILY_UNAVAILABLE", "The service is temporarily unavailable."),
            403: ("PERMISSION_DENIED", "You do not have permission to use this SQL warehouse."),
        }.get(status, ("INTERNAL_ERROR", "Internal error."))
        for _ in range(times):
            self.faults.append(
                (method, path, status, error_code or code, message or text, retry_after)
            )

    def _fault(self, method: str, path: str) -> tuple | None:
        for fault in self.faults:
            if fault[0] == method and path.rstrip("/").endswith(fault[1].rstrip("/")):
                self.faults.remove(fault)
                return fault
        return None

    @property
    def host(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeDatabricks:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _reply(self, status: int, body: dict, headers: dict | None = None) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _authorized(self) -> bool:
                header = self.headers.get("Authorization", "")
                fake.auth_headers.append(header)
                if header != f"Bearer {fake.token}":
                    self._reply(
                        401, {"error_code": "UNAUTHENTICATED", "message": "Invalid access token."}
                    )
                    return False
                fault = fake._fault(self.command, self.path)
                if fault is not None:
                    _, _, status, code, message, retry_after = fault
                    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
                    self._reply(status, {"error_code": code, "message": message}, headers)
                    return False
                return True

            def do_POST(self):
                if not self._authorized():
                    return
                body = json.loads(
                    self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}"
                )
                if self.path.rstrip("/") == "/api/2.0/sql/statements":
                    stmt = Statement(
                        statement_id=f"01ef-{uuid.uuid4().hex[:12]}",
                        statement=body["statement"],
                        warehouse_id=body["warehouse_id"],
                        polls_left=fake.polls_before_done,
                    )
                    stmt.parameters = body.get("parameters") or []
                    is_query = re.match(
                        r"\s*(?:/\*.*?\*/\s*|--[^\n]*\n\s*)*(SELECT|WITH|OPTIMIZE)\b",
                        stmt.statement,
                        re.IGNORECASE | re.DOTALL,
                    )
                    if fake.query and is_query:
                        try:
                            stmt.columns, stmt.rows = fake.query(stmt.statement, stmt.parameters)
                        except Exception as exc:  # the warehouse's own error, as a FAILED state
                            stmt.error = f"[PARSE_SYNTAX_ERROR] {exc}"
                    if fake.fail_pattern and re.search(fake.fail_pattern, stmt.statement):
                        stmt.error = (
                            "[PERMISSION_DENIED] User does not have CREATE VOLUME on Schema."
                        )
                    for pattern, message in fake.errors.items():
                        if re.search(pattern, stmt.statement):
                            stmt.error = message
                    for pattern, state in fake.ends.items():
                        if re.search(pattern, stmt.statement):
                            stmt.end = state
                    stmt.pending_left = fake.pending_polls
                    stmt.hang = bool(
                        fake.hang_pattern and re.search(fake.hang_pattern, stmt.statement)
                    )
                    fake.statements.append(stmt)
                    return self._reply(200, fake._status(stmt, poll=False))
                m = re.fullmatch(r"/api/2.0/sql/statements/([^/]+)/cancel", self.path)
                if m:
                    stmt = next((s for s in fake.statements if s.statement_id == m.group(1)), None)
                    if stmt is not None:
                        fake.cancelled.append(stmt.statement_id)
                        if stmt.hang or stmt.polls_left > 0 or stmt.pending_left > 0:
                            stmt.end = "CANCELED"
                            stmt.hang, stmt.polls_left, stmt.pending_left = False, 0, 0
                    return self._reply(200, {})
                self._reply(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": self.path})

            def do_GET(self):
                if not self._authorized():
                    return
                m = re.fullmatch(r"/api/2.0/sql/statements/([^/]+)/result/chunks/(\d+)", self.path)
                if m:
                    stmt = next(s for s in fake.statements if s.statement_id == m.group(1))
                    return self._reply(200, fake._chunk(stmt, int(m.group(2))))
                m = re.fullmatch(r"/api/2.0/sql/statements/([^/]+)", self.path)
                if m:
                    stmt = next((s for s in fake.statements if s.statement_id == m.group(1)), None)
                    if stmt is None:
                        return self._reply(
                            404, {"error_code": "NOT_FOUND", "message": "no statement"}
                        )
                    return self._reply(200, fake._status(stmt, poll=True))
                self._reply(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": self.path})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def _status(self, stmt: Statement, poll: bool) -> dict:
        status = self._state(stmt, poll)
        stmt.served.append(status["status"]["state"])
        return status

    def _state(self, stmt: Statement, poll: bool) -> dict:
        if stmt.pending_left > 0:
            stmt.pending_left -= int(poll)
            return {"statement_id": stmt.statement_id, "status": {"state": "PENDING"}}
        if poll and stmt.polls_left > 0:
            stmt.polls_left -= 1
        if stmt.hang or stmt.polls_left > 0:
            return {"statement_id": stmt.statement_id, "status": {"state": "RUNNING"}}
        if stmt.end:
            return {"statement_id": stmt.statement_id, "status": {"state": stmt.end}}
        if stmt.error:
            # Analysis errors come as BAD_REQUEST, their SQL error class in the message.
            return {
                "statement_id": stmt.statement_id,
                "status": {
                    "state": "FAILED",
                    "error": {"error_code": "BAD_REQUEST", "message": stmt.error},
                },
            }
        chunks = max(1, -(-len(stmt.rows) // self.chunk_rows))
        return {
            "statement_id": stmt.statement_id,
            "status": {"state": "SUCCEEDED"},
            "manifest": {
                "format": "JSON_ARRAY",
                "schema": {
                    "column_count": len(stmt.columns),
                    "columns": [
                        {"name": name, "type_name": kind, "type_text": text, "position": i}
                        for i, (name, kind, text) in enumerate(stmt.columns)
                    ],
                },
                "total_row_count": len(stmt.rows),
                "total_chunk_count": chunks,
            },
            "result": self._chunk(stmt, 0),
        }

    def _chunk(self, stmt: Statement, index: int) -> dict:
        rows = stmt.rows[index * self.chunk_rows : (index + 1) * self.chunk_rows]
        more = (index + 1) * self.chunk_rows < len(stmt.rows)
        return {
            "chunk_index": index,
            "row_offset": index * self.chunk_rows,
            "row_count": len(rows),
            "data_array": rows,
            **({"next_chunk_index": index + 1} if more else {}),
        }
