"""The cascade of the app's own deletes against a real app database and mirror: a feedback
the app still holds is never erased because the mirror lacks it, and a cascade that did not
complete is asked for again."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    ResourceDefinition,
    SkipReason,
    build_sensor_context,
    materialize,
)

from voyce_assets.catalog import table
from voyce_assets.feedback import row_id
from voyce_assets.ingestion.mirrors import raw_mirrors
from voyce_assets.operations.erasure import erasure_cascade, erasure_log
from voyce_assets.privacy.erasure import LOG, ErasureStores
from voyce_assets.privacy.tombstones import subject_hash
from voyce_assets_tests.ingestion.conftest import DAYS, RANGE, env, sql_rows  # noqa: F401

TRANSCRIPTIONS = table("raw_data/transcriptions")
FEEDBACK = AssetKey(["raw_data", "voice_feedback"])


def _transcribed(resources, ids: list[str], day: dt.date) -> None:
    """The pipeline's rows of ``ids``: one transcription each."""
    created = dt.datetime.combine(day, dt.time(12), dt.UTC)
    rows = [
        {
            "id": row_id(i, "transcription:faster-whisper/tiny.en"),
            "voice_feedback_id": i,
            "transcription_engine": "faster-whisper/tiny.en",
            "created_at": created,
            "event_date": day,
        }
        for i in ids
    ]
    schema = pa.schema([f.with_nullable(True) for f in TRANSCRIPTIONS.arrow_schema()])
    resources["lakehouse"].write_partitions(
        TRANSCRIPTIONS, pa.Table.from_pylist(rows, schema=schema), [day]
    )


def _transcribed_ids(resources) -> set[str]:
    return set(resources["lakehouse"].read(TRANSCRIPTIONS).column("voice_feedback_id").to_pylist())


@pytest.fixture
def app_deleted(env):  # noqa: F811
    """The mirror synced, two feedback of a day transcribed; then in the app one is deleted
    and the other gets a NULL status (the mirror holds it back), and the day is synced again.
    (resources, instance, deleted id, held-back id)."""
    engine, resources = env
    resources = {
        **resources,
        "erasure_stores": ResourceDefinition.hardcoded_resource(ErasureStores([])),
    }
    day = dt.date.fromisoformat(DAYS[1])
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    deleted, held = [
        r[0]
        for r in sql_rows(
            engine,
            "SELECT id::text FROM voice_feedback WHERE (created_at AT TIME ZONE 'UTC')::date = :d "
            "ORDER BY id LIMIT 2",
            d=day,
        )
    ]
    _transcribed(resources, [deleted, held], day)
    sql_rows(engine, "ALTER TABLE voice_feedback ALTER COLUMN status DROP NOT NULL")
    sql_rows(engine, "UPDATE voice_feedback SET status = NULL WHERE id = :i", i=held)
    for child in ("feedback_tags", "action_items"):
        sql_rows(engine, f"DELETE FROM {child} WHERE voice_feedback_id = :i", i=deleted)
    sql_rows(engine, "DELETE FROM voice_feedback WHERE id = :i", i=deleted)
    with DagsterInstance.ephemeral() as instance:
        sync = materialize(
            [a for a in raw_mirrors if a.key == FEEDBACK],
            resources=resources,
            partition_key=DAYS[1],
            instance=instance,
            raise_on_error=False,
        )
        # Synced; its reconciliation check names the row held back.
        assert sync.get_asset_materialization_events()
        mirror = set(
            resources["lakehouse"].read(table("raw_data/voice_feedback")).column("id").to_pylist()
        )
        assert deleted not in mirror and held not in mirror
        yield resources, instance, deleted, held


def _tick(resources, instance, cursor=None):
    sensor_resources = {k: resources[k] for k in ("lakehouse", "app_db")}
    with build_sensor_context(
        instance=instance, cursor=cursor, resources=sensor_resources
    ) as context:
        return erasure_cascade(context), context.cursor


def test_a_feedback_the_app_still_holds_is_never_cascaded(app_deleted):
    resources, instance, deleted, held = app_deleted
    request, _ = _tick(resources, instance)
    config = request.run_config["ops"]["raw_data__erasure_log"]["config"]
    assert config["subject_hashes"] == [subject_hash(deleted)]
    # Asked by hand (or by a request made before the app's row was seen) all the same: the
    # erasure asks the app first and leaves it alone.
    config = {**config, "subject_hashes": [subject_hash(held), subject_hash(deleted)]}
    run = materialize(
        [erasure_log],
        partition_key=request.partition_key,
        run_config={"ops": {"raw_data__erasure_log": {"config": config}}},
        instance=instance,
        resources=resources,
    )
    assert run.success
    (event,) = run.get_asset_materialization_events()
    assert event.materialization.metadata["still_in_app"].value == 1
    assert _transcribed_ids(resources) == {held}
    logged = set(resources["lakehouse"].read(LOG).column("subject_hash").to_pylist())
    assert logged == {subject_hash(deleted)}


def test_a_cascade_no_log_row_holds_is_asked_for_again_and_logged_on_its_day(app_deleted):
    resources, instance, deleted, _ = app_deleted
    first, cursor = _tick(resources, instance)
    assert first.run_config["ops"]["raw_data__erasure_log"]["config"]["subject_hashes"] == [
        subject_hash(deleted)
    ]
    # Its run failed (or never ran): nothing more the same day ...
    again, cursor = _tick(resources, instance, cursor)
    assert isinstance(again, SkipReason)
    # ... and asked for again the next day, under a new run key.
    state = json.loads(cursor)
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date()
    state["pending"] = dict.fromkeys(state["pending"], yesterday.isoformat())
    retry, cursor = _tick(resources, instance, json.dumps(state))
    assert retry.run_config == first.run_config and retry.run_key != first.run_key
    # A run requested yesterday and run today (queued over midnight) logs on yesterday.
    run = materialize(
        [erasure_log],
        partition_key=yesterday.isoformat(),
        run_config=retry.run_config,
        instance=instance,
        resources=resources,
    )
    assert run.success
    (row,) = resources["lakehouse"].read(LOG).to_pylist()
    assert row["event_date"] == yesterday and row["subject_hash"] == subject_hash(deleted)
    assert deleted not in _transcribed_ids(resources)
    # Logged: no longer pending.
    done, cursor = _tick(resources, instance, cursor)
    assert isinstance(done, SkipReason) and json.loads(cursor)["pending"] == {}
    # A day it was not requested on is refused.
    before = (yesterday - dt.timedelta(days=1)).isoformat()
    refused = materialize(
        [erasure_log],
        partition_key=before,
        run_config=retry.run_config,
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    assert not refused.success
