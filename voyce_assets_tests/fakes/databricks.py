"""A Databricks SQL warehouse on localhost: the Statement Execution API (2.0) in its real
wire format.

Only the HTTP boundary is fake; callers use the official databricks-sdk against it. It runs
DDL and maintenance statements, and answers queries with a ``query`` function the test gives
it, in JSON_ARRAY chunks. The launch path (DBFS, Files API, Jobs runs) is the other fake,
``databricks_workspace.py``.
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
    error: str | None = None
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
    _server: ThreadingHTTPServer | None = None

    @property
    def host(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeDatabricks:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _reply(self, status: int, body: dict) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
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
                    fake.statements.append(stmt)
                    return self._reply(200, fake._status(stmt, poll=False))
                m = re.fullmatch(r"/api/2.0/sql/statements/([^/]+)/cancel", self.path)
                if m:
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
        if poll and stmt.polls_left > 0:
            stmt.polls_left -= 1
        if stmt.polls_left > 0:
            return {"statement_id": stmt.statement_id, "status": {"state": "RUNNING"}}
        if stmt.error:
            return {
                "statement_id": stmt.statement_id,
                "status": {
                    "state": "FAILED",
                    "error": {"error_code": "PERMISSION_DENIED", "message": stmt.error},
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
