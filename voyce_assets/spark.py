"""What the project's Spark users share (the analytics SQL engine, the voice jobs)."""

from __future__ import annotations

from typing import Any


def is_live(session: Any) -> bool:
    """A SparkSession that has not been stopped (a stopped one raises on its next query; a
    process has one SparkContext, which another user of it may have stopped)."""
    return session is not None and session.sparkContext._jsc is not None
