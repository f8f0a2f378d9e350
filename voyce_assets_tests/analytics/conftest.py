"""One local Spark session per test process (about 8 s to start)."""

import pytest

from voyce_assets.resources.sql_engine import SparkEngine


@pytest.fixture(scope="session")
def spark():
    engine = SparkEngine()
    yield engine
    engine.session().stop()
