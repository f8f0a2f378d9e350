"""What the project's Spark users share (the analytics SQL engine, the voice jobs)."""

from __future__ import annotations

import os
import sys
from typing import Any

# Debian's libpostgresql-jdbc-java (``make jdbc``): the big sync reads the app tables with it.
DEBIAN_JDBC_JAR = "/usr/share/java/postgresql.jar"


def is_live(session: Any) -> bool:
    """A SparkSession that has not been stopped (a stopped one raises on its next query; a
    process has one SparkContext, which another user of it may have stopped)."""
    return session is not None and session.sparkContext._jsc is not None


def jdbc_jar() -> str:
    """The PostgreSQL JDBC driver's jar: ``VOYCE_JDBC_JAR``, else Debian's."""
    return os.environ.get("VOYCE_JDBC_JAR") or DEBIAN_JDBC_JAR


def with_local_jars(builder: Any) -> Any:
    """A local session's builder with the JDBC driver on the class path when the jar is there.

    A process starts one JVM, whose class path is fixed by the first session built in it: a
    later session (the big sync's) cannot add a driver to it. So every local session the
    project builds (voice, analytics, big sync) starts the JVM with it."""
    jar = jdbc_jar()
    return builder.config("spark.jars", jar) if os.path.exists(jar) else builder


def local_builder(app: str, master: str, driver_memory: str) -> Any:
    """The builder of a local session (``master``, e.g. ``local[2]``) as the project's local
    sessions start: this interpreter for the Python workers, no UI, UTC, the JDBC jar."""
    from pyspark.sql import SparkSession

    # The workers run this interpreter (and so import this environment).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.appName(app)
        .master(master)
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", driver_memory)
        .config("spark.python.worker.reuse", "true")
        .config("spark.sql.session.timeZone", "UTC")
        # PySpark gives Python workers one OpenMP thread per task cpu unless told; the
        # thread count moves a model's confidence in its fourth digit, so a local session
        # keeps this process's and its rows equal the in-process path's.
        .config(
            "spark.executorEnv.OMP_NUM_THREADS",
            os.environ.get("OMP_NUM_THREADS") or str(os.cpu_count() or 1),
        )
    )
    return with_local_jars(builder)
