"""What the demo shows on the terminal, and the log file that gets everything else.

Dagster's event log lines, third-party warnings (MLflow, scikit-learn), libraries' prints and
the output of processes the steps start all write to the process's stdout and stderr. While
the demo runs both file descriptors point at its log file, so none of it reaches the
terminal and all of it is kept; the lines meant for a person go to a copy of the terminal
(and into the log too, where they mark what happened when).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

from voyce_assets.settings import voyce_home

Say = Callable[..., None]


def log_path(now: dt.datetime | None = None) -> Path:
    """A new log file's path under ``$VOYCE_HOME/logs`` (one per demo run)."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d-%H%M%S")
    return voyce_home().resolve() / "logs" / f"demo-{stamp}.log"


@contextmanager
def logged_to(path: Path) -> Iterator[Say]:
    """Point stdout and stderr (the descriptors, so child processes too) at ``path`` and
    yield ``say(text, end="\\n")``, which writes to the terminal and the log.

    An exception out of the body is written to the log with its traceback and told on the
    terminal in one line before it goes on; the terminal is given back whatever happens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _flush()
    with ExitStack() as stack:
        log = stack.enter_context(open(path, "ab"))
        terminal = stack.enter_context(
            os.fdopen(os.dup(1), "w", encoding="utf-8", errors="replace")
        )
        saved = os.dup(1), os.dup(2)
        stack.callback(_restore, saved)  # first on the way out: before the files close
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)

        def say(text: str, end: str = "\n") -> None:
            terminal.write(text + end)
            terminal.flush()
            sys.stdout.write(text + end)
            sys.stdout.flush()

        try:
            yield say
        except Exception as exc:
            traceback.print_exc()  # into the log
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            # A new line first: the failure may land on an unfinished progress line.
            say(f"\nfailed: {first} (details in {path})")
            raise


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a closed pipe must not keep the fds pointed
            stream.flush()


def _restore(saved: tuple[int, int]) -> None:
    _flush()
    os.dup2(saved[0], 1)
    os.dup2(saved[1], 2)
    for fd in saved:
        os.close(fd)
