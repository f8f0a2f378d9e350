"""Following a Databricks one-time run, for both GPU launchers: the run's name (its step and
partitions), what its state means for the step, reading that state through transient API
errors, and ending a step's live runs before another one is submitted, so that a relaunch
never runs beside the run it replaces (two clusters writing the same partition).

What dagster-databricks 0.29.27 gets wrong here, each met by the local workspace's runs
(voyce_assets_tests/fakes/databricks_workspace.py): its step launcher takes TERMINATING (no
result state yet) for a failed end and SKIPPED for a success; one 500 on ``runs/get`` fails
the step (the SDK retries only 429 and 503); and it cancels a run without waiting for it to
end, while the Pipes client does not cancel at all when following the run fails.
"""

from __future__ import annotations

import time

# Life cycle states of a run that is over: its task's process and its cluster are gone.
# TERMINATING is not: the cluster is still being cleaned up, a cancelled task still dying.
ENDED = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")
# State reads in a row that may fail transiently before the step gives up on its run.
TRANSIENT_READS = 5


class RunFailed(RuntimeError):
    """The Databricks run ended without success (failed, cancelled, timed out, skipped, or
    an internal error such as a cluster or library failure)."""


class RunStillLive(RuntimeError):
    """A cancelled run of the step had not ended in time."""


def run_name(step_context) -> str:
    """``voyce <step key> [<partitions>]``: the same for every attempt of a step over the same
    partitions, and what ``end_live_runs`` looks for before a relaunch."""
    name = f"voyce {step_context.step.key}"
    if step_context.has_partitions:
        keys = step_context.partition_key_range
        name += f" [{keys.start}]" if keys.start == keys.end else f" [{keys.start}...{keys.end}]"
    return name


def is_transient(error: BaseException) -> bool:
    """An error reading a run that the next read may not meet: a 5xx, throttling the SDK's
    own retries did not outlast, a timeout or a dropped connection."""
    import requests
    from databricks.sdk.errors import (
        DatabricksError,
        DeadlineExceeded,
        InternalError,
        TemporarilyUnavailable,
        TooManyRequests,
    )

    if isinstance(
        error,
        (
            InternalError,
            TemporarilyUnavailable,
            TooManyRequests,
            DeadlineExceeded,
            TimeoutError,
            requests.ConnectionError,
            requests.Timeout,
        ),
    ):
        return True
    # The SDK maps no class to some answers (a load balancer's 502 with an HTML body): a
    # plain error without an error code; read again, at most TRANSIENT_READS in a row.
    return type(error) is DatabricksError and not error.error_code


def outcome(run_id: int, state) -> bool:
    """True once the run has ended successfully, False while it has not ended; ``RunFailed``
    when it ended otherwise. ``state`` is the SDK's ``jobs.RunState``."""
    life_cycle = state.life_cycle_state.value if state.life_cycle_state else None
    if life_cycle not in ENDED:
        return False
    result = state.result_state.value if state.result_state else None
    message = state.state_message or "no message"
    if life_cycle == "TERMINATED" and result == "SUCCESS":
        return True
    if life_cycle == "SKIPPED":
        raise RunFailed(f"Databricks skipped run {run_id}; the step did not run: {message}")
    ended = f"{life_cycle} ({result})" if result else life_cycle
    raise RunFailed(f"Databricks run {run_id} ended {ended}: {message}")


class RunFollower:
    """Reads one run's state, poll after poll. A transient error is logged and read again at
    the next poll, up to ``TRANSIENT_READS`` in a row; any other error fails at once."""

    def __init__(self, client, log):
        self.client, self.log = client, log
        self.failures = 0
        self.last_state: str | None = None

    def poll(self, run_id: int) -> bool:
        """``outcome`` of the run's state now; False after a transient error."""
        try:
            state = self.client.jobs.get_run(run_id).state
        except Exception as error:
            if not is_transient(error):
                raise
            self.failures += 1
            if self.failures >= TRANSIENT_READS:
                raise
            self.log.warning(
                f"Reading Databricks run {run_id} failed ({self.failures} in a row), "
                f"reading it again at the next poll: {error}"
            )
            return False
        self.failures = 0
        if state is None:
            raise RunFailed(f"Databricks run {run_id} has no state")
        life_cycle = state.life_cycle_state.value if state.life_cycle_state else None
        if life_cycle != self.last_state:
            self.log.info(f"Databricks run {run_id} is {life_cycle}")
            self.last_state = life_cycle
        return outcome(run_id, state)


def end_live_runs(client, name: str, log, wait_seconds: float, poll_seconds: float) -> list[int]:
    """Cancels every live one-time run named ``name`` and waits until each has ended
    (``ENDED``); ``RunStillLive`` when one has not after ``wait_seconds``. The runs' ids."""
    from databricks.sdk.service import jobs

    live = [
        run.run_id
        for run in client.jobs.list_runs(active_only=True, run_type=jobs.RunType.SUBMIT_RUN)
        if run.run_name == name
        and run.state
        and run.state.life_cycle_state
        and run.state.life_cycle_state.value not in ENDED
    ]
    for run_id in live:
        log.warning(f"Cancelling Databricks run {run_id} ({name}) and waiting for it to end")
        client.jobs.cancel_run(run_id)
    deadline = time.monotonic() + wait_seconds
    for run_id in live:
        while True:
            try:
                state = client.jobs.get_run(run_id).state
                life_cycle = state.life_cycle_state.value if state.life_cycle_state else None
                if life_cycle in ENDED:
                    break
            except Exception as error:
                if not is_transient(error):
                    raise
            if time.monotonic() > deadline:
                raise RunStillLive(
                    f"Databricks run {run_id} ({name}) had not ended {wait_seconds}s after "
                    "it was cancelled: another run of the step could write beside it"
                )
            time.sleep(poll_seconds)
    return live
