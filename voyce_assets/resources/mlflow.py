"""``ModelRegistry``: MLflow tracking and model registry, local or on Databricks.

Locally a sqlite store and an artifact folder under ``$VOYCE_HOME/mlflow`` (what ``mlflow ui``
opens); in prod Databricks MLflow with the Unity Catalog registry, whose model names are
``<catalog>.ml_models.sentiment_classifier_*``. MLflow's fluent API keeps its URIs in the
process; ``session()`` sets them for a block and puts the previous ones back, so two
resources (or a test and an asset) never see each other's store.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from voyce_assets.models import FAMILIES, registered_name

# MLflow keeps its store and experiment in module globals and mirrors them into these
# variables (so subprocesses inherit them): a session saves and restores both, exactly.
_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
)
NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")

# Models loaded in this process, by what identifies a registered version for good: the
# registry, the name and version, and the run and source it was made from (a version
# number never points to another model; a registry deleted and made again gets new runs).
# The few most recent are kept: a new champion is loaded once, an old one falls out.
LOADED_MODELS: OrderedDict[tuple, Any] = OrderedDict()
KEEP_LOADED = 4
_LOADING = threading.Lock()


def _globals():
    import mlflow.tracking._model_registry.utils as registry
    import mlflow.tracking._tracking_service.utils as tracking
    import mlflow.tracking.fluent as fluent

    return {
        (tracking, "_tracking_uri"),
        (registry, "_registry_uri"),
        (fluent, "_active_experiment_id"),
    }


def _saved_state() -> dict:
    return {
        "env": {name: os.environ.get(name) for name in _ENV},
        "globals": [(module, name, getattr(module, name)) for module, name in _globals()],
    }


def _restore(saved: dict) -> None:
    for module, name, value in saved["globals"]:
        setattr(module, name, value)
    for name, value in saved["env"].items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


class ModelRegistry(ConfigurableResource):
    """Where models are tracked and registered (no secret here: Databricks credentials are
    the DATABRICKS_HOST / DATABRICKS_TOKEN variables MLflow reads itself)."""

    tracking_uri: str = Field(description="MLflow tracking URI: sqlite:///… or databricks.")
    registry_uri: str = Field(description="MLflow registry URI: sqlite:///… or databricks-uc.")
    artifact_root: str | None = Field(
        default=None,
        description="Where a new experiment keeps its artifacts (local store only; "
        "Databricks picks its own).",
    )
    experiment: str = Field(
        default="voice_feedback_sentiment", description="The training runs' MLflow experiment."
    )
    model_prefix: str = Field(
        default="",
        description="Prefix of the registered model names (<catalog>.ml_models. in Unity Catalog).",
    )

    def name(self, family: str) -> str:
        return registered_name(self.model_prefix, family)

    def names(self) -> dict[str, str]:
        return {family: self.name(family) for family in FAMILIES}

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    @contextmanager
    def session(self, experiment: bool = True) -> Iterator[str | None]:
        """MLflow's fluent API pointed at this store for the block; yields the experiment id
        (created if missing), or None with ``experiment=False`` (reading models only)."""
        import mlflow

        for uri in (self.tracking_uri, self.registry_uri):
            if uri.startswith("sqlite:///"):
                Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        saved = _saved_state()
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri)
        try:
            if not experiment:
                yield None
                return
            client = self.client()
            found = client.get_experiment_by_name(self.experiment)
            experiment_id = (
                found.experiment_id
                if found
                else client.create_experiment(self.experiment, artifact_location=self.artifact_root)
            )
            mlflow.set_experiment(experiment_id=experiment_id)
            yield experiment_id
        finally:
            _restore(saved)

    def by_alias(self, alias: str) -> Any | None:
        """The model version holding ``alias`` in any family, or None (no model has it yet)."""
        from mlflow.exceptions import MlflowException

        client = self.client()
        held = []
        for name in self.names().values():
            try:
                held.append(client.get_model_version_by_alias(name, alias))
            except MlflowException as exc:
                # No such model, or it lacks the alias; anything else (the store cannot be
                # reached, no permission) is raised, never taken for "no champion".
                if exc.error_code not in NOT_FOUND:
                    raise
        if len(held) > 1:
            found = ", ".join(f"{v.name} v{v.version}" for v in held)
            raise RuntimeError(f"alias {alias!r} is held by several models: {found}")
        return held[0] if held else None

    def load(self, version: Any):
        """The scikit-learn pipeline of a registered version (scores raw feature vectors),
        loaded once per process: the same version again is the model already in memory.
        Which version an alias names is for the caller to resolve on every use."""
        key = (
            self.registry_uri,
            version.name,
            str(version.version),
            getattr(version, "run_id", None),
            getattr(version, "source", None),
        )
        with _LOADING:
            if key in LOADED_MODELS:
                LOADED_MODELS.move_to_end(key)
                return LOADED_MODELS[key]
            model = self._load(version)
            LOADED_MODELS[key] = model
            while len(LOADED_MODELS) > KEEP_LOADED:
                LOADED_MODELS.popitem(last=False)
            return model

    def _load(self, version: Any):
        """A model stored on this machine (the local store) is unpickled from its folder as
        ``mlflow.sklearn.load_model`` does, its ``MLmodel`` read with libyaml: MLflow's own
        load parses that file (420 feature names) in pure Python and copies the model to a
        temporary folder first. Anything else (a remote store, another format, code paths)
        goes through ``mlflow.sklearn.load_model``, and so does every model while
        ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` is false: MLflow's loader refuses it then."""
        from mlflow.environment_variables import MLFLOW_ALLOW_PICKLE_DESERIALIZATION

        allowed = MLFLOW_ALLOW_PICKLE_DESERIALIZATION.get()
        folder = self._local_folder(version) if allowed else None
        flavor = _sklearn_flavor(folder) if folder else None
        if flavor and not flavor.get("code"):
            fmt = flavor.get("serialization_format", "pickle")
            if fmt in ("pickle", "cloudpickle"):
                loader = __import__(fmt)
                with open(folder / flavor["pickled_model"], "rb") as fh:
                    return loader.load(fh)
        import mlflow.sklearn

        with self.session(experiment=False):
            return mlflow.sklearn.load_model(f"models:/{version.name}/{version.version}")

    def _local_folder(self, version: Any) -> Path | None:
        if not self.registry_uri.startswith("sqlite:"):
            return None
        uri = self.client().get_model_version_download_uri(version.name, version.version)
        path = (
            Path(uri.removeprefix("file://")) if "://" not in uri.removeprefix("file://") else None
        )
        return path if path is not None and (path / "MLmodel").is_file() else None


def _sklearn_flavor(folder: Path) -> dict | None:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(folder / "MLmodel", encoding="utf-8") as fh:
        return (yaml.load(fh, Loader=loader).get("flavors") or {}).get("sklearn")
