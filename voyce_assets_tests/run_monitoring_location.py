"""The code location test_run_monitoring.py launches runs from: two jobs whose one op is in the
``gpu`` pool (the first holds its slot until killed) and one job in no pool. They run on the
default executor, as the project's jobs do: a step runs in a child of the run worker, and the
run worker is the process that claims and frees pool slots."""

import time

from dagster import Definitions, job, op


@op(pool="gpu")
def hold_gpu() -> None:
    # Held until the test kills its run worker (and, in its cleanup, this step's process):
    # a holder that woke up on a slow machine before the kill would succeed.
    time.sleep(3600)


@op(pool="gpu")
def use_gpu() -> int:
    return 1


@op
def sync_tables() -> int:
    return 1


@job
def hold_gpu_job():
    hold_gpu()


@job
def use_gpu_job():
    use_gpu()


@job
def sync_job():
    sync_tables()


defs = Definitions(jobs=[hold_gpu_job, use_gpu_job, sync_job])
