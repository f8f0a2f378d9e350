"""``voice_compute``: where the voice stage's heavy work runs, as a resource per environment.

- ``VoiceCompute`` (the laptop default): the run's chunks one after another in the step's
  own process; one chunk's audio in memory at a time.
- ``SparkVoice``: one Spark job per step, ``spark.range(tasks).mapInPandas(...)``, each task
  working its chunks (``voice/tasks.py``) with the model loaded once per Python worker. On
  Databricks it takes the cluster's own SparkSession (the step runs on the cluster's driver
  through the step launcher or Pipes); with ``master`` set (``VOYCE_SPARK_MASTER``, e.g.
  ``local[2]``) it starts a local one, tasks retried as a cluster retries them.

Both run the same chunks through the same code and stage each chunk's rows on the volume
(``voice/chunks.py``); the rows are read back from there. When Spark gives up on a task it
aborts the job: the chunks left go again, one per task, while rounds still finish something;
what never finishes becomes error rows naming the failure, and the rest is written. When no
chunk at all could be worked, the step fails instead (the job itself is broken).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dagster import ConfigurableResource, Failure
from pydantic import Field, PrivateAttr

from voyce_assets.spark import is_live, local_builder
from voyce_assets.voice.chunks import Chunk, Stage, WorkItem, cut, deal
from voyce_assets.voice.tasks import WORK, ChunkDone, VoiceJob, run_task

# A processed copy holds 16 kHz 16-bit mono: 1.92 MB a minute. Uploads are weighed the same.
BYTES_PER_AUDIO_MINUTE = 16000 * 2 * 60


@dataclass
class VoiceRun:
    """A finished voice job: every item's rows, and where and how the work ran."""

    rows: list[dict]
    keys: list[str]  # the staged chunks: removed once the rows are committed
    metadata: dict[str, Any]

    def commit(self, job: VoiceJob) -> None:
        """The rows are written: the stage is no longer needed."""
        Stage(job.stage_root).remove(self.keys)


class VoiceCompute(ConfigurableResource):
    """Runs a voice job in this process, chunk after chunk (no Spark)."""

    chunk_audio_minutes: float = Field(
        default=5.0,
        gt=0,
        description="Audio per chunk: the unit of work, of staged progress and of what a "
        "retry redoes.",
    )
    chunk_recordings: int = Field(
        default=8,
        ge=1,
        description="Recordings per chunk at most (one packed window at batch_size 8): small "
        "enough that a day of short recordings is spread evenly over the task slots.",
    )

    def run(self, job: VoiceJob, items: Sequence[WorkItem]) -> VoiceRun:
        chunks = cut(
            items, int(self.chunk_audio_minutes * BYTES_PER_AUDIO_MINUTE), self.chunk_recordings
        )
        if not chunks:  # nothing to work: no session started, nothing said about one
            return VoiceRun([], [], {"chunks": 0})
        stage = Stage(job.stage_root)
        keys = {c.index: job.key(c) for c in chunks}
        staged_before = {i for i, key in keys.items() if stage.has(key)}
        done: set[int] = set()
        reported: list[ChunkDone] = []  # what tasks said of each chunk they finished
        by_index = {c.index: c for c in chunks}
        first = deal(chunks, self.parallelism())
        pending, tasks, failure, kept = chunks, first, None, 0
        while pending:
            # The first round deals the chunks over the task slots; when Spark aborts a job
            # (a task failed past its retries, and the other tasks are killed with it), what
            # is left goes again, one chunk per task, while rounds still finish something.
            results, failure = self._execute(job, [[by_index[i] for i in t] for t in tasks])
            reported += results
            if failure is None:  # every task finished (and staged) its chunks
                done |= {c.index for c in pending}
                break
            left = [c for c in pending if not stage.has(keys[c.index])]
            done |= {c.index for c in pending} - {c.index for c in left}
            kept += len(pending) - len(left)  # finished before the abort: never sent again
            if not left or len(left) == len(pending):
                break
            pending, tasks = left, [[c.index] for c in left]
        if failure is not None and len(done) < len(chunks) and not done - staged_before:
            raise Failure(
                description=f"voice {job.kind} job failed before any chunk was done: {failure}",
                allow_retries=True,
            )
        rows, committed = [], []
        for chunk in chunks:
            staged = stage.load(keys[chunk.index]) if chunk.index in done else None
            if chunk.index in done and not _rows_of(staged, chunk):
                # Gone since (another run over the same days committed and removed it) or
                # not whole: worked again here, never written as errors.
                staged = WORK[job.kind](job, list(chunk.items))
                stage.save(keys[chunk.index], staged)
            if chunk.index in done:
                committed.append(keys[chunk.index])
            else:  # Spark gave up on it: its recordings are error rows, the day goes on
                why = f"task failed: {failure}"[:500]
                staged = WORK[job.kind](job, [_failed(item, why) for item in chunk.items])
            rows += [decode(row) for row in staged]
        # Found staged by the task instead of worked: left by an earlier run, an attempt
        # Spark retried, or an aborted round (a round Spark aborted reports nothing).
        reused = sum(1 for r in reported if r.reused)
        failed = len(chunks) - len(done)
        return VoiceRun(
            rows=rows,
            keys=committed,
            metadata={
                "chunks": len(chunks),
                "chunks_reused": reused,
                "chunks_kept_after_abort": kept,
                "chunks_failed": failed,
                **self.where(len(first)),
            },
        )

    def parallelism(self) -> int:
        return 1

    def where(self, tasks: int) -> dict[str, Any]:
        """What each voice materialization says about where it ran (nothing in process)."""
        return {}

    def _execute(
        self, job: VoiceJob, tasks: list[list[Chunk]]
    ) -> tuple[list[ChunkDone], str | None]:
        """Work the tasks' chunks, staging each: what the tasks reported, and the failure
        Spark gave up with, if any."""
        return [done for chunks in tasks for done in run_task(job, chunks)], None


def _rows_of(staged: list[dict] | None, chunk: Chunk) -> bool:
    """Staged rows that are the chunk's own, one per recording, in order."""
    return staged is not None and [r.get("voice_feedback_id") for r in staged] == [
        i.feedback_id for i in chunk.items
    ]


class SparkVoice(VoiceCompute):
    """Runs a voice job as one Spark job over the cluster's (or a local session's) tasks."""

    master: str | None = Field(
        default=None,
        description="VOYCE_SPARK_MASTER: a master to start a session with (local[2]); unset: "
        "the session that exists (the cluster's, on Databricks).",
    )
    tasks: int = Field(
        default=0,
        ge=0,
        description="VOYCE_SPARK_TASKS: tasks per job; 0: the session's default parallelism "
        "(its cores; Whisper tasks then run one at a time per GPU, the rest waiting).",
    )
    task_retries: int = Field(
        default=3, ge=0, description="Local masters: times a failed task is tried again."
    )
    driver_memory: str = Field(default="2g", description="Local masters: the driver's heap.")
    cpu_tasks_without_gpu: bool = Field(
        default=True,
        description="On a GPU cluster, decoding and features run as CPU tasks (a task "
        "resource profile of one core, no GPU), so they use every core, not one per GPU.",
    )

    _session: Any = PrivateAttr(default=None)

    def session(self):
        if not is_live(self._session):
            from pyspark.sql import SparkSession

            if self.master:
                builder = local_builder(
                    "voyce-voice",
                    local_with_retries(self.master, self.task_retries),
                    self.driver_memory,
                )
            else:
                builder = SparkSession.builder.appName("voyce-voice")
            self._session = builder.getOrCreate()
            _ship_code(self._session)
        return self._session

    def parallelism(self) -> int:
        if self.tasks:
            return self.tasks
        return max(1, self.session().sparkContext.defaultParallelism)

    def _cpu_profile(self, spark):
        """A one-core task profile for CPU work on a cluster whose tasks take a GPU each;
        None where there is nothing to change (a local master, a CPU cluster)."""
        conf = spark.sparkContext.getConf()
        gpu_per_task = float(conf.get("spark.task.resource.gpu.amount", "0") or 0)
        if not self.cpu_tasks_without_gpu or gpu_per_task == 0:
            return None
        from pyspark.resource import ResourceProfileBuilder, TaskResourceRequests

        return ResourceProfileBuilder().require(TaskResourceRequests().cpus(1)).build

    def where(self, tasks: int) -> dict[str, Any]:
        return {
            "voyce/spark_master": self.session().sparkContext.master,
            "voyce/spark_tasks": tasks,
        }

    def _execute(
        self, job: VoiceJob, tasks: list[list[Chunk]]
    ) -> tuple[list[ChunkDone], str | None]:
        spark = self.session()
        frame = spark.range(len(tasks), numPartitions=len(tasks))
        function = _task_function(job, tasks)
        profile = self._cpu_profile(spark) if job.kind != "transcribe" else None
        try:
            try:
                # Only where it applies: Databricks runtimes before Spark 4 take no profile.
                extra = {"profile": profile} if profile is not None else {}
                results = frame.mapInPandas(function, DONE_SCHEMA, **extra).collect()
            except Exception as exc:
                if profile is None or not _no_profiles(exc):
                    raise
                # The cluster cannot schedule by task profile: CPU work takes GPU slots.
                results = frame.mapInPandas(function, DONE_SCHEMA).collect()
        except Exception as exc:
            if not _job_aborted(exc):
                raise  # not a task's failure: the step's own (a bug, a lost session)
            return [], _spark_error(exc)
        return [ChunkDone(**row.asDict()) for row in results], None


DONE_SCHEMA = "index long, key string, rows long, reused boolean, seconds double"


def _task_function(job: VoiceJob, assignments: list[list[Chunk]]):
    def work(batches):
        import pandas as pd

        for batch in batches:
            for task in batch["id"]:
                for finished in run_task(_on_this_task(job), assignments[int(task)]):
                    yield pd.DataFrame([dataclasses.asdict(finished)])

    return work


def _on_this_task(job: VoiceJob) -> VoiceJob:
    """The job as this task runs it: on a GPU cluster, on the GPU Spark gave the task."""
    if job.settings.get("device") != "cuda":
        return job
    from pyspark import TaskContext

    context = TaskContext.get()
    gpus = context.resources().get("gpu") if context else None
    if not gpus or not gpus.addresses:
        return job
    return dataclasses.replace(
        job, settings={**job.settings, "device_index": int(gpus.addresses[0])}
    )


def local_with_retries(master: str, retries: int) -> str:
    """``local[N]`` as ``local[N,F]``: local mode tries a task once unless told otherwise."""
    if master.startswith("local[") and "," not in master and master.endswith("]"):
        return f"{master[:-1]},{retries + 1}]"
    if master == "local":
        return f"local[1,{retries + 1}]"
    return master


def _ship_code(spark) -> None:
    """Send the step's own ``voyce_assets`` to the executors when it is not installed there
    (the step launcher and Pipes ship the package as a zip to the driver only)."""
    import voyce_assets
    from voyce_assets.resources.gpu_cluster import code_package_dir

    package = os.path.dirname(os.path.abspath(voyce_assets.__file__))
    if "site-packages" in package or "dist-packages" in package:
        return  # installed (the cluster's wheel): the executors have the same
    if getattr(spark.sparkContext, "_voyce_code_shipped", False):
        return  # a run's resource copy met the session this process already set up
    import shutil

    folder = code_package_dir()
    archive = f"{folder}.zip"
    if not os.path.exists(archive):
        made = shutil.make_archive(f"{folder}.{os.getpid()}", "zip", root_dir=folder)
        os.replace(made, archive)  # another process's identical archive may win: same bytes
    spark.sparkContext.addPyFile(archive)
    spark.sparkContext._voyce_code_shipped = True


def _job_aborted(exc: BaseException) -> bool:
    """Spark gave up on a task (after its retries) and aborted the job: the task's Python
    error as PySpark raises it, or Spark's own (a crashed worker, a lost executor)."""
    from pyspark.errors import PythonException

    text = str(exc)
    return isinstance(exc, PythonException) or "Job aborted" in text or "SparkException" in text


def _no_profiles(exc: BaseException) -> bool:
    text = str(exc)
    return "ResourceProfile" in text or ("profile" in text and isinstance(exc, TypeError))


def _spark_error(exc: BaseException) -> str:
    """The failed task's own error out of Spark's long message: the Python exception that
    ended it, else Spark's reason for the abort (a crashed worker, a lost executor)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    python = [line for line in lines if re.match(r"^[A-Z]\w*(Error|Exception|Exit): ", line)]
    if python:
        return python[-1][:400]
    aborted = [line for line in lines if "Job aborted" in line]
    return (aborted or lines or [type(exc).__name__])[0][:400]


def _failed(item: WorkItem, why: str) -> WorkItem:
    return dataclasses.replace(item, error=why)


def decode(row: dict) -> dict:
    """A staged row with its dates and times as Python values again."""
    out = dict(row)
    if isinstance(out.get("event_date"), str):
        out["event_date"] = dt.date.fromisoformat(out["event_date"])
    if isinstance(out.get("created_at"), str):
        out["created_at"] = dt.datetime.fromisoformat(out["created_at"])
    return out
