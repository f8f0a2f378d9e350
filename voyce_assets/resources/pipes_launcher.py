"""The Pipes launcher: the prod ``gpu_step_launcher`` for workspaces without DBFS root
(``VOYCE_GPU_LAUNCH=pipes``).

The same steps as the step launcher, on the same GPU job cluster, with everything staged on
a Unity Catalog volume instead of DBFS: the step run ref, the code zip and the runner script
go up through the Files API, and Dagster Pipes (``PipesDatabricksClient`` with the Volumes
context injector and message reader) starts the run, follows it, and brings the step's
events back as custom messages, which are replayed into the host's instance. Assets do not
change: the step runs from its run ref exactly as under the step launcher.

Differences from the step launcher: events arrive when the run has finished (Pipes reads
messages while it runs, but the step's result is replayed at the end). Like the step
launcher, a run still unfinished after ``max_wait_seconds`` is cancelled, terminating the
Dagster run cancels the Databricks run, a step that fails waits for its run to end, and a
relaunch first ends any live run of the same step and partitions (``databricks_runs``).
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

from dagster import InitResourceContext
from dagster._core.definitions.step_launcher import StepLauncher
from pydantic import Field

from voyce_assets.resources.databricks_runs import (
    RunFollower,
    end_live_runs,
    is_transient,
    run_name,
)
from voyce_assets.resources.gpu_cluster import GpuJobCluster, OnTheCluster, upstream_of_step
from voyce_assets.upstream import is_remote_step, upstream_failure

RUNNER = Path(__file__).parent / "remote" / "pipes_step_main.py"


class DatabricksPipesStepLauncher(GpuJobCluster):
    """Runs each GPU step as a Databricks one-time run on a new GPU job cluster, staged on a
    Unity Catalog volume and followed through Dagster Pipes (no DBFS)."""

    volume: str = Field(
        description="A Unity Catalog volume path for staging and Pipes messages, e.g. "
        "/Volumes/voice_feedback_prod/ml_models/artifacts."
    )
    message_interval_seconds: float = Field(
        default=10.0, gt=0, description="How often the host reads the step's messages."
    )

    def create_resource(self, context: InitResourceContext) -> StepLauncher:
        if is_remote_step():
            return OnTheCluster()
        return PipesStepLauncher(self)


class PipesStepLauncher(StepLauncher):
    def __init__(self, settings: DatabricksPipesStepLauncher):
        self.settings = settings

    def launch_step(self, step_context):
        from dagster import OpExecutionContext
        from dagster._core.errors import (
            DagsterExecutionInterruptedError,
            raise_execution_interrupts,
        )
        from dagster._core.events.log import EventLogEntry
        from dagster._core.execution.plan.external_step import step_context_to_step_run_ref
        from dagster._serdes import deserialize_value
        from dagster_databricks.pipes import (
            PipesUnityCatalogVolumesContextInjector,
            PipesUnityCatalogVolumesMessageReader,
        )
        from dagster_pyspark.utils import build_pyspark_zip
        from databricks.sdk import WorkspaceClient
        from databricks.sdk.service import jobs

        missing = upstream_of_step(step_context)
        if missing:
            raise upstream_failure(missing)
        s = self.settings
        client = WorkspaceClient(host=s.host, token=s.token)
        name = run_name(step_context)
        end_runs = functools.partial(
            end_live_runs,
            client,
            name,
            step_context.log,
            s.cancel_wait_seconds,
            s.poll_interval_seconds,
        )
        end_runs()  # a previous attempt's run, still live: never two beside each other
        code_dir = s.code_dir_path()
        step_run_ref = step_context_to_step_run_ref(step_context, str(code_dir))
        step_key = step_run_ref.step_key.replace("[", "__").replace("]", "__")
        staging = f"{s.volume.rstrip('/')}/dagster_staging/{step_context.run_id}/{step_key}"
        step_context.log.info(f"Staging the step on {staging}")
        client.files.upload(
            f"{staging}/{RUNNER.name}", io.BytesIO(RUNNER.read_bytes()), overwrite=True
        )
        client.files.upload(
            f"{staging}/step_run_ref.pkl", io.BytesIO(pickle.dumps(step_run_ref)), overwrite=True
        )
        with tempfile.TemporaryDirectory() as tmp:
            zip_path = os.path.join(tmp, "code.zip")
            build_pyspark_zip(zip_path, str(code_dir))
            with open(zip_path, "rb") as handle:
                client.files.upload(f"{staging}/code.zip", handle, overwrite=True)

        task: dict[str, Any] = {
            "task_key": "voyce-gpu-step",
            "new_cluster": s.new_cluster(),
            "libraries": s.libraries(),
            "spark_python_task": {
                "python_file": f"{staging}/{RUNNER.name}",
                "parameters": [f"{staging}/step_run_ref.pkl", f"{staging}/code.zip"],
            },
        }
        if s.run_timeout_seconds:
            task["timeout_seconds"] = s.run_timeout_seconds
        pipes = _client_class()(
            client=client,
            env=s.remote_env(),
            context_injector=PipesUnityCatalogVolumesContextInjector(
                client=client, volume_path=s.volume
            ),
            message_reader=PipesUnityCatalogVolumesMessageReader(
                client=client,
                volume_path=s.volume,
                interval=s.message_interval_seconds,
                include_stdio_in_messages=False,
            ),
            poll_interval_seconds=s.poll_interval_seconds,
        )
        pipes.max_wait_seconds = s.max_wait_seconds
        # Terminating the Dagster run raises here while the run is followed; the client then
        # cancels the Databricks run, and the step must end interrupted, not as a success.
        # Whatever ends the step early, its run has ended before the step does.
        try:
            with raise_execution_interrupts():
                invocation = pipes.run(
                    context=OpExecutionContext(step_context),
                    task=jobs.SubmitTask.from_dict(task),
                    submit_args={"run_name": name},
                )
            if pipes.interrupted:
                raise DagsterExecutionInterruptedError()
        except BaseException:
            try:
                end_runs()
            except Exception as error:
                step_context.log.error(str(error))
            raise
        for message in invocation.get_custom_messages():
            record = deserialize_value(message, EventLogEntry)
            step_context.instance.handle_new_event(record)
            if record.is_dagster_event:
                yield record.get_dagster_event()


@functools.cache
def _client_class():
    from dagster._core.errors import DagsterExecutionInterruptedError
    from dagster_databricks import PipesDatabricksClient
    from dagster_pipes import DagsterPipesError

    class FollowedClient(PipesDatabricksClient):
        """The Pipes client, telling when it swallowed an interrupt (it cancels the run, then
        returns as if the run had finished), giving up on a run after ``max_wait_seconds`` (it
        has no deadline of its own), and reading run states as ``databricks_runs`` does (a
        transient error is read again)."""

        interrupted = False
        max_wait_seconds = 0

        def _poll_til_success(self, context, run_id):
            follower = RunFollower(self.client, context.log)
            deadline = time.monotonic() + self.max_wait_seconds
            try:
                while not follower.poll(run_id):
                    if time.monotonic() > deadline:
                        self.client.jobs.cancel_run(run_id)
                        raise DagsterPipesError(
                            f"Databricks run {run_id} took more than {self.max_wait_seconds}s: "
                            "cancelled"
                        )
                    time.sleep(self.poll_interval_seconds)
            except DagsterExecutionInterruptedError:
                self.interrupted = True
                raise

        def _poll_til_terminating(self, run_id):
            # After an interrupt the launcher waits for the cancelled run to end itself, with a
            # limit (``end_live_runs``); the client's own wait here has none.
            pass

        def _extract_dagster_metadata(self, run_id):
            # Only the run's URL for the UI: a transient error here must not fail the step.
            try:
                return super()._extract_dagster_metadata(run_id)
            except Exception as error:
                if not is_transient(error):
                    raise
                return {"Databricks Job Run ID": str(run_id)}

    return FollowedClient
