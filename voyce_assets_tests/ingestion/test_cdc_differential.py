"""The CDC against the source of truth: many rounds of random changes to the app tables, each
followed by the sensor's tick and the runs it requests (a sweep and its repairs when rows
were deleted, and now and then); after every round the mirror equals the source, row for
row and column for column.

``VOYCE_CDC_ROUNDS`` (default 50) and ``VOYCE_CDC_SEED`` set the length and the seed; a
failure names the seed and the round, and lists that round's changes, so it replays.
"""

import datetime as dt
import json
import os
import random
import uuid

from dagster import DagsterInstance, build_sensor_context, materialize

from voyce_assets.catalog import JSON, STRING, UUID, table
from voyce_assets.ingestion.mirrors import raw_mirrors
from voyce_assets.ingestion.reconciliation import (
    raw_reconciliation_checksum_job,
    raw_reconciliation_sweep,
)
from voyce_assets.ingestion.resources import IngestionSettings
from voyce_assets.ingestion.sensors import raw_cdc_sensor
from voyce_assets_tests.ingestion.conftest import DAYS, RANGE, checksum_run, delta_rows, sql_rows

ROUNDS = int(os.environ.get("VOYCE_CDC_ROUNDS", "50"))
SEED = int(os.environ.get("VOYCE_CDC_SEED", "20261206"))
CHECKSUMS = raw_reconciliation_checksum_job.name
COMPARED = ("raw_data/voice_feedback", "raw_data/action_items", "raw_data/tags")


def _source(engine, path: str, days: list[str]) -> list[tuple]:
    """The app table's rows of ``days``, each column as the mirror holds it (text types as
    their text), with the UTC date of created_at; sorted by id."""
    spec = table(path)
    exprs = [
        f'"{c.name}"::text' if c.type in (UUID, JSON, STRING) else f'"{c.name}"'
        for c in spec.source_columns
    ]
    rows = sql_rows(
        engine,
        f"SELECT {', '.join(exprs)}, (created_at AT TIME ZONE 'UTC')::date FROM {spec.name} "
        "WHERE (created_at AT TIME ZONE 'UTC')::date = ANY(CAST(:d AS date[])) ORDER BY 1",
        d=days,
    )
    return [tuple(r) for r in rows]


def _mirror(resources, path: str, days: list[str]) -> list[tuple]:
    spec = table(path)
    rows = delta_rows(resources, path).to_pylist()
    picked = [r for r in rows if r["event_date"].isoformat() in days]
    return sorted(tuple(r[c] for c in spec.column_names) for r in picked)


def _at(rng: random.Random, day: str) -> dt.datetime:
    start = dt.datetime.fromisoformat(f"{day}T00:00:00+00:00")
    return start + dt.timedelta(seconds=rng.randrange(86_400), microseconds=rng.randrange(10**6))


def _change(engine, rng: random.Random, log: list[str]) -> bool:
    """One random change to the app tables; whether it deleted rows (invisible to the CDC)."""
    feedback = [
        r[0]
        for r in sql_rows(
            engine,
            "SELECT id::text FROM voice_feedback WHERE created_at < '2100-01-01' ORDER BY id",
        )
    ]
    kind = rng.choice(
        ["insert", "insert", "update", "update", "move", "delete", "tag", "action", "future"]
    )
    log.append(kind)
    if kind in ("insert", "future"):
        org, user = sql_rows(
            engine,
            "SELECT organization_id::text, id::text FROM users ORDER BY id LIMIT 1 OFFSET :n",
            n=rng.randrange(3),
        )[0]
        created = (
            dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
            if kind == "future"
            else _at(rng, rng.choice(DAYS))
        )
        sql_rows(
            engine,
            "INSERT INTO voice_feedback (id, organization_id, user_id, audio_file_path, metadata, "
            "status, audio_duration_seconds, created_at, updated_at) "
            "VALUES (:i, :o, :u, :p, CAST(:m AS jsonb), :s, :d, :c, now())",
            i=str(uuid.UUID(int=rng.getrandbits(128))),
            o=org,
            u=user,
            p=f"r/{rng.getrandbits(32):08x}.wav",
            m=json.dumps({"round": len(log), "n": rng.random()}),
            s=rng.choice(["pending", "processing", "completed", "failed"]),
            d=rng.choice([None, round(rng.uniform(1, 300), 3)]),
            c=created,
        )
    elif kind == "update" and feedback:
        sql_rows(
            engine,
            "UPDATE voice_feedback SET status = :s, audio_file_path = audio_file_path || :x, "
            "audio_duration_seconds = :d, updated_at = now() WHERE id = :i",
            s=rng.choice(["pending", "processing", "completed", "failed"]),
            x=f"+{rng.randrange(100)}",
            d=rng.uniform(0, 600),
            i=rng.choice(feedback),
        )
    elif kind == "move" and feedback:
        sql_rows(
            engine,
            "UPDATE voice_feedback SET created_at = :c, updated_at = now() WHERE id = :i",
            c=_at(rng, rng.choice(DAYS)),
            i=rng.choice(feedback),
        )
    elif kind == "delete" and feedback:
        # Its action items and tags go with it (ON DELETE CASCADE): deletes everywhere.
        sql_rows(engine, "DELETE FROM voice_feedback WHERE id = :i", i=rng.choice(feedback))
        return True
    elif kind == "tag":
        # Tags are followed by created_at: a new one is stamped now (today's partition).
        sql_rows(
            engine,
            "INSERT INTO tags (id, name, category, created_at) VALUES (:i, :n, 'custom', now())",
            i=str(uuid.UUID(int=rng.getrandbits(128))),
            n=f"t{rng.getrandbits(40):010x}",
        )
    elif kind == "action":
        sql_rows(
            engine,
            "UPDATE action_items SET status = :s, updated_at = now() "
            "WHERE id = (SELECT id FROM action_items ORDER BY id LIMIT 1 OFFSET :n)",
            s=rng.choice(["open", "in_progress", "completed", "cancelled"]),
            n=rng.randrange(5),
        )
    return False


def _execute(resources, request, mirrors_by_key, where: str) -> None:
    assets = [mirrors_by_key[k] for k in request.asset_selection]
    if request.partition_key:
        run = materialize(
            assets,
            resources=resources,
            partition_key=request.partition_key,
            run_config=request.run_config,
            tags=request.tags,
            raise_on_error=False,
        )
    else:
        # A range: the sweep's full syncs, or a CDC tick's days beyond cdc_max_runs.
        run = materialize(
            assets,
            resources=resources,
            tags=request.tags,
            run_config=request.run_config,
            raise_on_error=False,
        )
    assert run.success, f"{where}: the run for {request.run_key} failed"


def test_randomized_cdc_rounds_keep_the_mirror_equal_to_the_source(env):
    engine, resources = env
    # Two runs a tick at most: changes on more days share runs over ranges.
    settings = IngestionSettings(cdc_lag_seconds=0, checksum_every_days=1, cdc_max_runs=2)
    resources = {**resources, "ingestion_settings": settings}
    by_key = {a.key: a for a in raw_mirrors}
    assert materialize(raw_mirrors, resources=resources, tags=RANGE).success
    today = dt.datetime.now(dt.UTC).date().isoformat()
    days = [*DAYS, today]
    rng = random.Random(SEED)
    with DagsterInstance.ephemeral() as instance:
        cdc = raw_cdc_sensor(build_sensor_context(instance=instance, resources=resources)).cursor
        sweep_cursor = None
        for round_ in range(ROUNDS):
            where = f"seed {SEED}, round {round_}"
            log: list[str] = []
            deleted = False
            for _ in range(rng.randint(1, 4)):
                deleted |= _change(engine, rng, log)
            where += f" (changes: {', '.join(log)})"
            tick = raw_cdc_sensor(
                build_sensor_context(cursor=cdc, instance=instance, resources=resources)
            )
            cdc = tick.cursor
            for request in tick.run_requests:
                _execute(resources, request, by_key, where)
            if deleted or rng.random() < 0.1:
                # A delete leaves no trace for the cursor: the sweep finds it (a new day's
                # sweep each time, every partition checksummed).
                state = json.loads(sweep_cursor) if sweep_cursor else {}
                state.pop("day", None)
                swept = raw_reconciliation_sweep(
                    build_sensor_context(
                        cursor=json.dumps(state), instance=instance, resources=resources
                    )
                )
                sweep_cursor = swept.cursor
                requests = list(swept.run_requests or [])
                for request in [r for r in requests if r.job_name == CHECKSUMS]:
                    # Each round's sweep is a day of its own: its checksum run too.
                    ops = request.run_config["ops"]["reconciliation_checksums"]["config"]
                    ops["sweep_day"] = (dt.date(2000, 1, 1) + dt.timedelta(days=round_)).isoformat()
                    assert checksum_run(instance, resources, request).success, where
                    # The next tick turns what the checksum run found into full syncs.
                    swept = raw_reconciliation_sweep(
                        build_sensor_context(
                            cursor=sweep_cursor, instance=instance, resources=resources
                        )
                    )
                    sweep_cursor = swept.cursor
                    requests += swept.run_requests or []
                for request in [r for r in requests if r.job_name != CHECKSUMS]:
                    _execute(resources, request, by_key, where + " [sweep]")
            for path in COMPARED:
                source, mirror = _source(engine, path, days), _mirror(resources, path, days)
                assert mirror == source, f"{where}: {path} differs from the app database"
