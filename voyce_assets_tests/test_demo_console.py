"""The demo's console: the terminal gets what ``say`` says, the log file everything, and the
terminal is given back after a failure, which it is told of in one line."""

import subprocess
import sys

from voyce_assets_tests.conftest import subprocess_env

SCRIPT = """
import os, subprocess, sys, warnings
from pathlib import Path
from voyce_assets.demo.console import logged_to

log = Path(sys.argv[1])
with logged_to(log) as say:
    say("progress ...", end="")
    print("a library's print")
    warnings.warn("a library's warning")
    subprocess.run(["echo", "a child process"], check=True)
    os.write(2, b"raw stderr\\n")
    if sys.argv[2] == "fail":
        raise ValueError("boom\\nsecond line")
    say(" done")
print("after: back on the terminal")
"""


def _run(tmp_path, mode):
    log = tmp_path / "logs" / "demo.log"
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(log), mode],
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(),
    )
    return out, log.read_text()


def test_the_terminal_gets_only_what_is_said(tmp_path):
    out, log = _run(tmp_path, "ok")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "progress ... done\nafter: back on the terminal\n"
    assert out.stderr == ""
    for noise in ("a library's print", "a library's warning", "a child process", "raw stderr"):
        assert noise in log, noise
    # What is said is in the log too, where it happened among the rest.
    assert log.startswith("progress ...") and log.endswith(" done\n") and "after:" not in log


def test_a_failure_is_one_line_on_the_terminal_and_the_traceback_in_the_log(tmp_path):
    out, log = _run(tmp_path, "fail")
    assert out.returncode == 1
    log_path = tmp_path / "logs" / "demo.log"
    # The unfinished progress line is ended; the failure's first line and where to look.
    assert out.stdout == f"progress ...\nfailed: boom (details in {log_path})\n"
    assert "Traceback" in log and "ValueError: boom" in log
    # The terminal was given back: the uncaught error reaches the real stderr.
    assert "ValueError: boom" in out.stderr
    assert "after:" not in out.stdout + log
