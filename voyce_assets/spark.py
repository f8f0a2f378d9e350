"""What the project's Spark users share (the analytics SQL engine, the voice jobs)."""

from __future__ import annotations

import os
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
