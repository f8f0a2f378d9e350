"""The prod ``gpu_step_launcher``: GPU steps (Whisper, training) as one-off runs on a new
Databricks GPU job cluster, through dagster-databricks' step launcher.

The cluster replaces the notebooks' shared GPU cluster and its init script: a GPU ML runtime
(>= 14.3 LTS), a GPU node type, autoscaling 2-4 workers, spot workers with an on-demand
driver, and the project's wheel plus its pip requirements as cluster libraries (all shared
with the Pipes launcher: ``resources/gpu_cluster.py``). The step launcher stages the step
through DBFS; a workspace without DBFS root uses the Pipes launcher
(``resources/pipes_launcher.py``) instead, picked by ``VOYCE_GPU_LAUNCH``.

What the step launcher needs that its own defaults get wrong, each learnt from its source
(docs/databricks-launch-path.md): ``secrets_to_env_variables`` given explicitly; a host with
its scheme; a code folder holding only our package (it zips the whole folder it is given, so
a checkout's root would ship ``.venv``); and, because the remote side rebuilds this resource
from the same config, the host must be resolvable there too (it is sent as an env variable).
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

from dagster import DagsterEvent, DagsterEventType, EnvVar, InitResourceContext
from dagster._core.events import EngineEventData
from pydantic import Field

from voyce_assets.resources.databricks_runs import (
    RunFailed,
    RunFollower,
    end_live_runs,
    is_transient,
    run_name,
)
from voyce_assets.resources.gpu_cluster import GpuJobCluster, OnTheCluster, upstream_of_step
from voyce_assets.resources.pipes_launcher import DatabricksPipesStepLauncher
from voyce_assets.settings import ConfigError, from_env
from voyce_assets.upstream import is_remote_step, upstream_failure


class DatabricksGpuStepLauncher(GpuJobCluster):
    """Runs each GPU step as a Databricks one-time run on a new GPU job cluster, with the
    step's code, its run context and its events staged through DBFS."""

    staging_prefix: str = Field(
        default="/dagster_staging", description="DBFS folder for each step's staged files."
    )

    def cluster(self) -> dict[str, Any]:
        """``new_cluster`` in the step launcher's config schema."""
        spec = self.new_cluster()
        new = {
            "size": {"autoscale": spec.pop("autoscale")},
            "spark_version": spec.pop("spark_version"),
            "nodes": {
                "node_types": {
                    "node_type_id": spec.pop("node_type_id"),
                    "driver_node_type_id": spec.pop("driver_node_type_id"),
                }
            },
            "custom_tags": [{"key": k, "value": v} for k, v in spec.pop("custom_tags").items()],
        }
        return {"new": {**new, **spec}}

    def launcher_config(self) -> dict[str, Any]:
        """The dagster-databricks step launcher's own config, as this resource's fields say."""
        run_config: dict[str, Any] = {
            "run_name": "voyce gpu step",
            "cluster": self.cluster(),
            "libraries": self.libraries(),
        }
        if self.run_timeout_seconds:
            run_config["timeout_seconds"] = self.run_timeout_seconds
        return {
            "run_config": run_config,
            "permissions": {},
            "databricks_host": self.host,
            "databricks_token": self.token,
            # Required although optional in its schema. The GPU steps need no scope secret:
            # MLflow authenticates as the job's owner, Delta writes use the cluster's identity.
            "secrets_to_env_variables": [],
            "env_variables": self.remote_env(),
            "storage": None,
            "staging_prefix": self.staging_prefix,
            "wait_for_logs": False,
            "max_completion_wait_time_seconds": self.max_wait_seconds,
            "poll_interval_sec": self.poll_interval_seconds,
            "local_pipeline_package_path": str(self.code_dir_path()),
        }

    def create_resource(self, context: InitResourceContext):
        if is_remote_step():
            return OnTheCluster()
        return _launcher_class()(
            cancel_wait_seconds=self.cancel_wait_seconds, **self.launcher_config()
        )


@functools.cache
def _launcher_class():
    # Imported on first use: dagster-databricks pulls in pyspark, which loading the code
    # location should not pay for. (The classes below subclass its, so they are built here.)
    from dagster_databricks.databricks import DatabricksClient
    from dagster_databricks.databricks_pyspark_step_launcher import (
        DatabricksPySparkStepLauncher,
    )

    class FollowingClient(DatabricksClient):
        """The launcher's client, reading run states as ``databricks_runs`` does (TERMINATING
        is not the end, SKIPPED is no success, a transient error is read again)."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.followers: dict[int, RunFollower] = {}

        def poll_run_state(
            self, logger, start_poll_time, databricks_run_id, max_wait_time_sec, verbose_logs=True
        ) -> bool:
            follower = self.followers.setdefault(
                databricks_run_id, RunFollower(self.workspace_client, logger)
            )
            if follower.poll(databricks_run_id):
                return True
            if time.time() - start_poll_time > max_wait_time_sec:
                raise RunFailed(
                    f"Run `{databricks_run_id}` took more than {max_wait_time_sec}s to complete."
                    " Failing the run."
                )
            return False

    class VoyceStepLauncher(DatabricksPySparkStepLauncher):
        """The step launcher, checking upstream days on the host before anything launches,
        following its run with ``FollowingClient``, and never leaving a run of the step live
        beside another: it ends any before submitting, and waits for its own to end when the
        step fails or is interrupted."""

        def __init__(self, *, cancel_wait_seconds: int, **config):
            super().__init__(**config)
            self.cancel_wait_seconds = cancel_wait_seconds
            # The runner has no setter; our config always gives a host and a token.
            self.databricks_runner._client = FollowingClient(
                host=self.databricks_host, token=self.databricks_token
            )

        def get_databricks_run_dagster_event(self, context, databricks_run_id):
            # Only for the run's URL in the UI: a transient error here must not fail the step.
            try:
                return super().get_databricks_run_dagster_event(context, databricks_run_id)
            except Exception as error:
                if not is_transient(error):
                    raise
                context.log.warning(f"Databricks run {databricks_run_id}: no URL ({error})")
                return DagsterEvent.from_step(
                    event_type=DagsterEventType.ENGINE_EVENT,
                    message=f"Waiting for Databricks run {databricks_run_id} to complete...",
                    step_context=context,
                    event_specific_data=EngineEventData(metadata={}),
                )

        def launch_step(self, step_context):
            missing = upstream_of_step(step_context)
            if missing:
                raise upstream_failure(missing)
            name = run_name(step_context)
            self.run_config = {**self.run_config, "run_name": name}
            end_runs = functools.partial(
                end_live_runs,
                self.databricks_runner.client.workspace_client,
                name,
                step_context.log,
                self.cancel_wait_seconds,
                self.databricks_runner.poll_interval_sec,
            )
            end_runs()
            try:
                yield from super().launch_step(step_context)
            except BaseException:
                # The parent cancelled its run but does not wait for it to end.
                try:
                    end_runs()
                except Exception as error:
                    step_context.log.error(str(error))
                raise

    return VoyceStepLauncher


# Where the lakehouse lives tells the cloud, and so the spot settings.
CLOUD_OF_SCHEME = {"s3": "aws", "abfss": "azure", "gs": "gcp"}
LAUNCH_MODES = ("step_launcher", "pipes")


def gpu_step_launcher(mode: str | None):
    """The prod ``gpu_step_launcher`` for ``VOYCE_GPU_LAUNCH`` (default ``step_launcher``)."""
    mode = (mode or "step_launcher").strip()
    if mode not in LAUNCH_MODES:
        raise ConfigError(
            "VOYCE_GPU_LAUNCH", f"must be one of {', '.join(LAUNCH_MODES)}, got {mode!r}"
        )
    scheme = os.environ.get("VOYCE_LAKEHOUSE_ROOT", "").partition("://")[0]
    settings = dict(
        host=EnvVar("DATABRICKS_HOST"),
        token=EnvVar("DATABRICKS_TOKEN"),
        cloud=CLOUD_OF_SCHEME.get(scheme, "aws"),
        **from_env(
            spark_version="VOYCE_GPU_SPARK_VERSION",
            node_type_id="VOYCE_GPU_NODE_TYPE",
            min_workers=("VOYCE_GPU_MIN_WORKERS", int),
            max_workers=("VOYCE_GPU_MAX_WORKERS", int),
            wheel="VOYCE_WHEEL",
        ),
    )
    if mode == "pipes":
        return DatabricksPipesStepLauncher(volume=EnvVar("VOYCE_PIPES_VOLUME"), **settings)
    return DatabricksGpuStepLauncher(**settings)
