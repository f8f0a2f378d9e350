"""The voice stage as one Spark job (``SparkVoice``, pyspark ``local[2]``) against the same
work in process: the same rows; Python workers killed mid-job (retried, staged chunks kept;
given up on, error rows for that task only); a step killed mid-run and run again."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from dagster import materialize
from deltalake import DeltaTable

from voyce_assets.catalog import table, volume
from voyce_assets.lake import replace_partitions
from voyce_assets.resources.lakehouse import Lakehouse
from voyce_assets.voice.audio_features import audio_features
from voyce_assets.voice.compute import SparkVoice, VoiceCompute
from voyce_assets.voice.processed_audio import processed_audio
from voyce_assets.voice.transcriber import Transcriber
from voyce_assets.voice.transcriptions import transcriptions
from voyce_assets_tests.conftest import subprocess_env
from voyce_assets_tests.voice.test_bad_recordings import _speech

DAYS = [dt.date(2026, 5, 1), dt.date(2026, 5, 2)]
ORG = "0b0d3a52-8d1c-4a39-9d43-3b1b3f9c2f11"
LINES = [
    "My package arrived a day early and in perfect condition.",
    "The support agent solved my problem in five minutes.",
    "The zipper broke after two days. Very poor quality.",
    "I waited forty minutes on the phone and nobody answered.",
    "The new app update is fast and easy to use.",
    "My refund still has not arrived after three weeks.",
    "Delivery was quick but the box was damaged.",
    "Great prices, I will order again next month.",
]
TAGS = {
    "dagster/asset_partition_range_start": DAYS[0].isoformat(),
    "dagster/asset_partition_range_end": DAYS[1].isoformat(),
}
VOICE = [processed_audio, transcriptions, audio_features]
# Only what a run decides may differ: when a row was made and how long it took.
VARIES = {"created_at", "processing_time_ms"}


def _demo_lake(root: Path, lines=LINES) -> Lakehouse:
    """A voice_feedback mirror over two days: spoken lines plus a corrupt and a missing one."""
    lakehouse = Lakehouse(catalog="c", root_uri=str(root / "lake"), volumes_root=str(root / "v"))
    uploads = lakehouse.volume_path(volume("raw_data/audio_files"))
    paths = []
    for n, text in enumerate(lines):
        _speech(uploads / ORG / f"ok-{n}.wav", text)
        paths.append(f"{ORG}/ok-{n}.wav")
    (uploads / ORG / "corrupt.m4a").write_bytes(b"not audio at all")
    paths += [f"{ORG}/corrupt.m4a", f"{ORG}/missing.wav"]
    spec = table("raw_data/voice_feedback")
    rows = []
    for n, path in enumerate(paths):
        day = DAYS[n % 2]
        when = dt.datetime.combine(day, dt.time(12), dt.UTC)
        rows.append(
            {
                "id": str(uuid.UUID(int=n + 1)),
                "organization_id": ORG,
                "audio_file_path": path,
                "status": "pending",
                "created_at": when,
                "updated_at": when,
                "event_date": day,
            }
        )
    schema = pa.schema([f.with_nullable(True) for f in spec.arrow_schema()])
    batch = pa.RecordBatch.from_pylist(rows, schema=schema).cast(spec.arrow_schema())
    replace_partitions(lakehouse.ensure_table(spec), spec, [batch], DAYS)
    return lakehouse


def _resources(lakehouse: Lakehouse, compute: VoiceCompute) -> dict:
    return {
        "lakehouse": lakehouse,
        # One thread per task: what a Spark task slot is given.
        "transcriber": Transcriber(cpu_threads=1),
        "voice_compute": compute,
        "gpu_step_launcher": None,
    }


def _table(lakehouse: Lakehouse, path: str) -> dict[str, dict]:
    rows = DeltaTable(lakehouse.table_uri(table(path))).to_pyarrow_table().to_pylist()
    assert len(rows) == len({r["voice_feedback_id"] for r in rows}), "a duplicated row"
    return {r["voice_feedback_id"]: {k: v for k, v in r.items() if k not in VARIES} for r in rows}


def _metadata(result, key: str) -> list[dict]:
    return [
        {k: getattr(v, "value", v) for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.path[-1] == key
    ]


@pytest.fixture(autouse=True)
def own_session():
    """A process has one SparkContext: a session another test file started (the analytics
    tests') is stopped first, so these tests get the session their SparkVoice asks for."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    yield


@pytest.fixture
def spark_voice():
    compute = SparkVoice(master="local[2]", chunk_recordings=2)
    yield compute
    compute.session().stop()


def test_spark_and_in_process_give_the_same_rows(tmp_path, spark_voice):
    local = _demo_lake(tmp_path / "local")
    # The same uploads and mirror, byte for byte (speech synthesis is not byte-stable).
    shutil.copytree(tmp_path / "local", tmp_path / "spark")
    spark = Lakehouse(
        catalog="c", root_uri=str(tmp_path / "spark/lake"), volumes_root=str(tmp_path / "spark/v")
    )
    in_process = materialize(
        VOICE, resources=_resources(local, VoiceCompute(chunk_recordings=2)), tags=TAGS
    )
    on_spark = materialize(VOICE, resources=_resources(spark, spark_voice), tags=TAGS)
    assert in_process.success and on_spark.success
    for path in ("raw_data/transcriptions", "processed_data/audio_features"):
        expected, got = _table(local, path), _table(spark, path)
        assert got.keys() == expected.keys()
        for fid, row in got.items():
            diff = {k: (v, expected[fid][k]) for k, v in row.items() if v != expected[fid][k]}
            # An error names the file: its folder differs between the two lakes.
            if "error_message" in diff:
                a, b = diff.pop("error_message")
                assert a.replace("/spark/", "/local/") == b
            assert not diff, (path, fid, diff)
    texts = _table(spark, "raw_data/transcriptions")
    assert sum(1 for r in texts.values() if r["transcription_text"]) == len(LINES)
    assert sum(1 for r in texts.values() if r["error_message"]) == 2
    # Where each ran is on every materialization of the Spark path, on none in process.
    for key in ("processed_audio", "transcriptions", "audio_features"):
        for meta in _metadata(on_spark, key):
            assert meta["voyce/spark_master"].startswith("local[2")
            assert meta["voyce/spark_tasks"] == 2  # 10 recordings in 5 chunks over 2 slots
        for meta in _metadata(in_process, key):
            assert "voyce/spark_master" not in meta and "voyce/spark_tasks" not in meta
    # The stage is emptied once the rows are committed.
    stage = spark.volume_path(volume("processed_data/processed_audio")) / ".voice-stage"
    assert not list(stage.glob("*.jsonl"))


def _python_workers() -> list[int]:
    """PIDs of pyspark's Python workers (the daemon's forked children) of this process tree."""
    me = os.getpid()
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            parent = (Path("/proc") / str(ppid) / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if "pyspark.daemon" in cmd and b"pyspark.daemon" in parent and ppid != me:
            out.append(int(proc.name))
    return out


def _kill_workers_when_staged(stage: Path, staged: int, result: dict) -> None:
    """Once ``staged`` chunks are staged, SIGKILL every Python worker (the tasks running)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        done = list(stage.glob("transcribe-*.jsonl"))
        workers = _python_workers()
        if len(done) >= staged and workers:
            result["staged_at_kill"] = len(done)
            for pid in workers:
                os.kill(pid, signal.SIGKILL)
            result["killed"] = len(workers)
            return
        time.sleep(0.05)


@pytest.mark.parametrize("retries", [3, 0])
def test_killed_python_workers_lose_only_the_chunks_they_were_in(tmp_path, retries):
    """Every Python worker SIGKILLed mid-job: Spark retries the tasks (retries=3) or aborts
    the job and the chunks left go again (retries=0); either way the chunks staged before the
    kill are read back, not worked again, and every recording is transcribed."""
    import threading

    lakehouse = _demo_lake(tmp_path)
    compute = SparkVoice(master="local[2]", chunk_recordings=1, task_retries=retries)
    resources = _resources(lakehouse, compute)
    assert materialize([processed_audio], resources=resources, tags=TAGS).success
    stage = lakehouse.volume_path(volume("processed_data/processed_audio")) / ".voice-stage"
    killed: dict = {}
    killer = threading.Thread(target=_kill_workers_when_staged, args=(stage, 2, killed))
    killer.start()
    try:
        result = materialize([transcriptions], resources=resources, tags=TAGS)
    finally:
        killer.join()
        compute.session().stop()
    assert killed.get("killed"), "no Python worker was running to kill"
    assert result.success
    rows = _table(lakehouse, "raw_data/transcriptions")
    assert len(rows) == len(LINES) + 2
    (meta,) = _metadata(result, "transcriptions")[:1]
    # Read back by the retried tasks, or kept when the aborted job's chunks left went again.
    kept = meta["chunks_reused"] if retries else meta["chunks_kept_after_abort"]
    assert kept >= killed["staged_at_kill"]
    assert meta["chunks_failed"] == 0
    assert sum(1 for r in rows.values() if r["transcription_text"]) == len(LINES)


def _chunks_and_job(lakehouse, compute):
    """The transcriptions asset's chunks and job for the demo days, as it makes them."""
    from voyce_assets.feedback import partition_feedback
    from voyce_assets.voice.chunks import cut
    from voyce_assets.voice.compute import BYTES_PER_AUDIO_MINUTE
    from voyce_assets.voice.paths import work_item
    from voyce_assets.voice.transcriptions import transcription_job

    feedback = partition_feedback(lakehouse, DAYS)
    items = [work_item(lakehouse, f, "processed") for f in feedback]
    limit = int(compute.chunk_audio_minutes * BYTES_PER_AUDIO_MINUTE)
    job = transcription_job(lakehouse, Transcriber(cpu_threads=1))
    return cut(items, limit, compute.chunk_recordings), job, items


def test_a_chunk_that_keeps_failing_is_error_rows_and_the_rest_is_written(tmp_path):
    """The volume refuses one chunk's stage file (a folder is in its place): its task fails
    every attempt, Spark aborts the job, the other chunks go again and are written; that
    chunk's recordings are error rows naming the failure, which the check reports."""
    lakehouse = _demo_lake(tmp_path)
    compute = SparkVoice(master="local[2]", chunk_recordings=2, task_retries=1)
    resources = _resources(lakehouse, compute)
    assert materialize([processed_audio], resources=resources, tags=TAGS).success
    chunks, job, _ = _chunks_and_job(lakehouse, compute)
    poisoned = chunks[1]
    Path(job.stage_root, f"{job.key(poisoned)}.jsonl").mkdir(parents=True)
    try:
        result = materialize([transcriptions], resources=resources, tags=TAGS)
    finally:
        compute.session().stop()
    assert result.success  # a day of rows, not a failed step
    rows = _table(lakehouse, "raw_data/transcriptions")
    assert len(rows) == len(LINES) + 2
    lost = {i.feedback_id for i in poisoned.items}
    for fid, row in rows.items():
        if fid in lost:
            assert row["error_message"].startswith("task failed: "), row
            assert (
                "IsADirectoryError" in row["error_message"] or "directory" in row["error_message"]
            )
        else:
            assert not (row["error_message"] or "").startswith("task failed")
    bad_uploads = {str(uuid.UUID(int=len(LINES) + 1)), str(uuid.UUID(int=len(LINES) + 2))}
    assert lost and lost.isdisjoint(bad_uploads)  # two spoken recordings
    spoken = {fid for fid, r in rows.items() if r["transcription_text"]}
    assert spoken == set(rows) - lost - bad_uploads
    (meta,) = _metadata(result, "transcriptions")[:1]
    assert meta["chunks_failed"] == 1
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["failure_rate"].passed


def test_a_job_that_finishes_nothing_fails_the_step(tmp_path):
    """Every task fails (the stage folder is a file): no rows are made up, the step fails."""
    from dagster import Failure

    lakehouse = _demo_lake(tmp_path)
    compute = SparkVoice(master="local[2]", chunk_recordings=2, task_retries=0)
    resources = _resources(lakehouse, compute)
    assert materialize([processed_audio], resources=resources, tags=TAGS).success
    _, job, items = _chunks_and_job(lakehouse, compute)
    shutil.rmtree(job.stage_root)  # processed_audio's, emptied
    Path(job.stage_root).write_text("not a folder")
    try:
        with pytest.raises(Failure, match="failed before any chunk was done"):
            compute.run(job, items)
    finally:
        compute.session().stop()


KILLED_STEP = """
import sys
from dagster import materialize
from voyce_assets_tests.voice.test_voice_spark import TAGS, _resources, Lakehouse
from voyce_assets.voice.compute import VoiceCompute
from voyce_assets.voice.transcriptions import transcriptions
lake = Lakehouse(catalog="c", root_uri=sys.argv[1] + "/lake", volumes_root=sys.argv[1] + "/v")
materialize([transcriptions], resources=_resources(lake, VoiceCompute(chunk_recordings=1)),
            tags=TAGS)
"""


def test_a_step_killed_mid_run_is_rerun_without_redoing_or_duplicating(tmp_path):
    lakehouse = _demo_lake(tmp_path)
    resources = _resources(lakehouse, VoiceCompute(chunk_recordings=1))
    assert materialize([processed_audio], resources=resources, tags=TAGS).success
    stage = lakehouse.volume_path(volume("processed_data/processed_audio")) / ".voice-stage"
    step = subprocess.Popen(
        [sys.executable, "-c", KILLED_STEP, str(tmp_path)],
        env=subprocess_env(PYTHONPATH=os.getcwd(), HF_HUB_OFFLINE="1"),
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while len(list(stage.glob("transcribe-*.jsonl"))) < 3 and time.monotonic() < deadline:
        assert step.poll() is None, "the step ended before it was killed"
        time.sleep(0.05)
    os.killpg(step.pid, signal.SIGKILL)
    step.wait()
    staged = len(list(stage.glob("transcribe-*.jsonl")))
    assert 3 <= staged < len(LINES) + 2
    assert not lakehouse.exists(table("raw_data/transcriptions"))  # nothing was written
    again = materialize([transcriptions], resources=resources, tags=TAGS)
    (meta,) = _metadata(again, "transcriptions")[:1]
    assert meta["chunks_reused"] == staged  # in process: one task, it redoes nothing staged
    rows = _table(lakehouse, "raw_data/transcriptions")
    assert len(rows) == len(LINES) + 2
    assert sum(1 for r in rows.values() if r["transcription_text"]) == len(LINES)


def test_a_range_backfill_is_one_run_where_spark_does_the_voice_work(monkeypatch):
    from dagster import AssetKey, BackfillPolicy

    from voyce_assets.definitions import build_definitions

    voice = [
        AssetKey(["processed_data", "processed_audio"]),
        AssetKey(["raw_data", "transcriptions"]),
        AssetKey(["processed_data", "audio_features"]),
    ]
    other = AssetKey(["processed_data", "enhanced_transcriptions"])

    def policies():
        graph = build_definitions("local").resolve_asset_graph()
        return [graph.get(k).backfill_policy for k in voice], graph.get(other).backfill_policy

    monkeypatch.delenv("VOYCE_SPARK_MASTER", raising=False)
    in_process, rest = policies()
    assert all(p == BackfillPolicy.multi_run(31) for p in in_process)
    monkeypatch.setenv("VOYCE_SPARK_MASTER", "local[2]")
    on_spark, rest_on_spark = policies()
    assert all(p == BackfillPolicy.single_run() for p in on_spark)
    assert rest == rest_on_spark == BackfillPolicy.multi_run(31)  # only the voice stage's


def test_where_the_voice_work_runs_and_the_cluster_size_are_settings(
    voyce_home, prod_env, monkeypatch
):
    from voyce_assets.definitions import build_definitions
    from voyce_assets.resources.gpu_cluster import FORWARDED_SETTINGS

    def compute(env):
        resource = build_definitions(env).resources["voice_compute"]
        return resource.process_config_and_initialize()

    assert type(compute("local")) is VoiceCompute  # the laptop default: in process
    on_cluster = compute("prod")
    assert isinstance(on_cluster, SparkVoice) and on_cluster.master is None  # the cluster's
    monkeypatch.setenv("VOYCE_SPARK_MASTER", "local[2]")
    monkeypatch.setenv("VOYCE_SPARK_TASKS", "3")
    local = compute("local")
    assert isinstance(local, SparkVoice) and (local.master, local.tasks) == ("local[2]", 3)

    monkeypatch.setenv("VOYCE_GPU_MIN_WORKERS", "3")
    monkeypatch.setenv("VOYCE_GPU_MAX_WORKERS", "8")
    launcher = build_definitions("prod").resources["gpu_step_launcher"]
    cluster = launcher.process_config_and_initialize().run_config["cluster"]["new"]
    assert cluster["size"]["autoscale"] == {"min_workers": 3, "max_workers": 8}
    assert cluster["spark_conf"]["spark.task.resource.gpu.amount"] == "1"
    # The cluster rebuilds the launcher from the same settings: they travel with the step.
    assert {"VOYCE_GPU_MIN_WORKERS", "VOYCE_GPU_MAX_WORKERS"} <= set(FORWARDED_SETTINGS)
