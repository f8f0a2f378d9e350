"""The CDC sensor's cursor: where it starts, and what it leaves to later ticks."""

import datetime as dt
import uuid

from dagster import AssetKey, DagsterInstance, build_sensor_context

from voyce_assets.ingestion.resources import IngestionSettings
from voyce_assets.ingestion.sensors import raw_cdc_sensor
from voyce_assets_tests.ingestion.conftest import sql_rows


def _with_lag(resources, seconds):
    return {**resources, "ingestion_settings": IngestionSettings(cdc_lag_seconds=seconds)}


def test_first_tick_leaves_rows_younger_than_the_lag_to_a_later_tick(env):
    engine, resources = env
    # A tag stamped a moment ago: its transaction may still be adding rows stamped earlier,
    # so the first cursor must stay behind it, as every later tick's would.
    today = dt.datetime.now(dt.UTC)
    sql_rows(
        engine,
        "INSERT INTO tags (id, name, category, created_at) VALUES (:i, 'fresh', 'custom', :t)",
        i=str(uuid.uuid4()),
        t=today,
    )
    with DagsterInstance.ephemeral() as instance:
        first = raw_cdc_sensor(
            build_sensor_context(instance=instance, resources=_with_lag(resources, 3600))
        )
        assert not first.run_requests
        later = raw_cdc_sensor(
            build_sensor_context(
                cursor=first.cursor, instance=instance, resources=_with_lag(resources, 0)
            )
        )
    assert [(r.partition_key, r.asset_selection) for r in later.run_requests] == [
        (today.date().isoformat(), [AssetKey(["raw_data", "tags"])])
    ]
