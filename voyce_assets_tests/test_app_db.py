"""The app DB resource: embedded server lifecycle, VOYCE_SOURCE_URL, one-line config errors."""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from voyce_assets.resources.app_db import (
    EmbeddedAppDatabase,
    PostgresAppDatabase,
    embedded_server_pid,
    libpq_url,
    stop_embedded_server,
)
from voyce_assets.settings import ConfigError
from voyce_assets_tests.conftest import subprocess_env

START_AND_PRINT = (
    "import sys; from voyce_assets.resources.app_db import EmbeddedAppDatabase, embedded_server_pid;"
    "from pathlib import Path; r = EmbeddedAppDatabase(data_dir=sys.argv[1]); r.check_connection();"
    "print(r.describe(), embedded_server_pid(Path(sys.argv[1])))"
)


@pytest.fixture
def short_dir():
    root = Path(tempfile.mkdtemp(prefix="va", dir="/tmp"))
    yield root
    stop_embedded_server(root / "pg")
    shutil.rmtree(root, ignore_errors=True)


def test_embedded_server_is_started_once_and_shared_across_processes(short_dir):
    data_dir = short_dir / "pg"
    # Three processes race to start the same server: all get the same one.
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", START_AND_PRINT, str(data_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outputs]
    lines = {o[0].strip() for o in outputs}
    assert len(lines) == 1, lines
    url, pid = lines.pop().rsplit(" ", 1)
    assert url.startswith("postgresql://postgres:***@/voyce?host=")
    # The server outlived the processes that started it.
    assert embedded_server_pid(data_dir) == int(pid)

    resource = EmbeddedAppDatabase(data_dir=str(data_dir))
    with resource.engine().connect() as conn:
        assert conn.execute(sa.text("SHOW server_version")).scalar().startswith("18")
        assert conn.execute(sa.text("SELECT current_database()")).scalar() == "voyce"

    assert stop_embedded_server(data_dir) is True
    assert embedded_server_pid(data_dir) is None
    assert stop_embedded_server(data_dir) is False
    # Restart on the same data: nothing lost.
    EmbeddedAppDatabase(data_dir=str(data_dir)).check_connection()
    assert embedded_server_pid(data_dir) not in (None, int(pid))


def test_source_url_is_used_instead_of_the_embedded_server(pg_database, tmp_path):
    resource = EmbeddedAppDatabase(source_url=pg_database, data_dir=str(tmp_path / "never"))
    resource.check_connection()
    assert not (tmp_path / "never").exists(), "no embedded server when VOYCE_SOURCE_URL is set"
    assert resource.url().drivername == "postgresql+psycopg"


def test_unreachable_source_url_is_one_line_naming_the_setting(tmp_path):
    resource = EmbeddedAppDatabase(
        source_url="postgresql://app:hunter2@127.0.0.1:9/voyce", data_dir=str(tmp_path)
    )
    with pytest.raises(ConfigError) as info:
        resource.check_connection()
    message = str(info.value)
    assert message.startswith(
        "VOYCE_SOURCE_URL: cannot connect to postgresql://app:***@127.0.0.1:9/voyce"
    )
    assert "\n" not in message and "hunter2" not in message


def test_malformed_source_url(tmp_path):
    with pytest.raises(ConfigError, match=r"^VOYCE_SOURCE_URL: "):
        EmbeddedAppDatabase(source_url="mysql://x@y/z", data_dir=str(tmp_path)).url()


def test_prod_url_masks_the_password():
    resource = PostgresAppDatabase(host="db.example", database="voyce", user="u", password="s3cret")
    assert libpq_url(resource.url()) == "postgresql://u:***@db.example:5432/voyce?sslmode=require"
    assert "s3cret" in libpq_url(resource.url(), show_password=True)


def _voyce(*args, **env):
    return subprocess.run(
        [sys.executable, "-m", "voyce_assets.cli", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        timeout=120,
    )


def test_cli_db_url_masks_password_unless_asked(pg_database, tmp_path):
    with_password = pg_database.replace("postgres:@", "postgres:pa55word@")
    assert "pa55word" in with_password
    masked = _voyce("db", "url", VOYCE_SOURCE_URL=with_password, VOYCE_HOME=str(tmp_path))
    assert masked.returncode == 0, masked.stderr
    assert masked.stdout.strip() == with_password.replace("pa55word", "***")
    shown = _voyce(
        "db", "url", "--show-password", VOYCE_SOURCE_URL=with_password, VOYCE_HOME=str(tmp_path)
    )
    assert shown.stdout.strip() == with_password


def test_cli_config_errors_are_one_line(tmp_path):
    bad = _voyce(
        "db", "url", VOYCE_SOURCE_URL="postgresql://a:b@127.0.0.1:9/x", VOYCE_HOME=str(tmp_path)
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith(
        "voyce: VOYCE_SOURCE_URL: cannot connect"
    )
    assert ":b@" not in bad.stderr
    env = _voyce("db", "url", VOYCE_ENV="staging")
    assert env.returncode == 2 and env.stderr.strip() == (
        "voyce: VOYCE_ENV: must be one of local, prod, got 'staging'"
    )
    prod = _voyce("db", "url", VOYCE_ENV="prod")
    assert prod.returncode == 2 and "POSTGRES_HOST" in prod.stderr and prod.stderr.count("\n") == 1
