"""Process-wide settings read from the environment: VOYCE_ENV, VOYCE_HOME, catalog name.

Everything local (embedded PostgreSQL, lakehouse, volumes, MLflow, Dagster home) lives under
``$VOYCE_HOME`` so that two checkouts, or a test run, never share state. Tunables of single
resources (``WHISPER_*``, ``BATCH_SIZE``, ``VOYCE_FULL_SYNC_DAYS`` ...) are not read here:
they are resource fields fed by ``from_env``, so the UI shows where each value comes from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dagster import EnvVar

ENVIRONMENTS = ("local", "prod")
DEFAULT_CATALOG = {"local": "voice_feedback_dev", "prod": "voice_feedback_prod"}
DEFAULT_PARTITIONS_START = "2025-01-01"


class ConfigError(Exception):
    """A setting is missing or wrong. The message is one line and names the setting."""

    def __init__(self, setting: str, problem: str):
        self.setting = setting
        self.problem = problem
        super().__init__(f"{setting}: {problem}")


def voyce_env() -> str:
    env = os.environ.get("VOYCE_ENV", "local").strip() or "local"
    if env not in ENVIRONMENTS:
        raise ConfigError("VOYCE_ENV", f"must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")
    return env


def voyce_home() -> Path:
    """Root of all local state; relative values resolve against the current directory."""
    home = Path(os.environ.get("VOYCE_HOME", ".voyce")).expanduser()
    return home.resolve()


def redact_pii() -> bool:
    """``VOYCE_REDACT_PII``: personal data is redacted (transcripts, audio, what providers
    receive) unless a deployment that must turns it off; a typo keeps it on."""
    return env_flag("VOYCE_REDACT_PII")


def catalog_name(env: str | None = None) -> str:
    env = env or voyce_env()
    name = os.environ.get("VOYCE_CATALOG", DEFAULT_CATALOG[env]).strip()
    if not name.replace("_", "").isalnum():
        raise ConfigError("VOYCE_CATALOG", f"must be a plain identifier, got {name!r}")
    return name


# A yes/no setting is off only when it says so; anything else leaves it on.
OFF_WORDS = frozenset({"false", "0", "no", "off"})


def env_flag(name: str, default: bool = True) -> bool:
    """A yes/no tunable, read when the resources are built: unset or empty gives ``default``,
    ``false``, ``0``, ``no`` or ``off`` (any case) gives False, anything else True.

    Dagster's ``EnvVar`` cannot feed a ``bool`` field (only strings and ``EnvVar.int``), so
    the value is read here; the GPU cluster rebuilds the resources from the same forwarded
    variable (``resources/gpu_cluster.py``), so both read the same.
    """
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    return value not in OFF_WORDS


def from_env(**fields: str | tuple[str, type]) -> dict[str, Any]:
    """Resource keyword arguments for the fields whose variable is set, as ``EnvVar``.

    ``from_env(model="WHISPER_MODEL_SIZE", batch_size=("BATCH_SIZE", int))``: a field whose
    variable is unset is left out, so the resource's own field default is the only default.
    """
    out = {}
    for field_name, spec in fields.items():
        name, kind = (spec, str) if isinstance(spec, str) else spec
        if os.environ.get(name, "").strip():
            # Shown in the UI as "from environment variable NAME", never its value, so a
            # secret stays hidden; resolved when a run or sensor starts, not at load.
            out[field_name] = EnvVar.int(name) if kind is int else EnvVar(name)
    return out


# The notebooks' Databricks secret scope and its keys. In prod each key is an environment
# variable of the same name, upper-cased with underscores (postgres-host -> POSTGRES_HOST):
# the deployment fills them from the scope (or its own secret store), the code reads EnvVar.
SECRET_SCOPE = "voice-feedback"
SECRET_KEYS = (
    "postgres-host",
    "postgres-port",
    "postgres-database",
    "postgres-user",
    "postgres-password",
    "anthropic-api-key",
    "openai-api-key",
)


def secret_env(key: str) -> str:
    """The environment variable holding scope key ``key``."""
    if key not in SECRET_KEYS:
        raise ConfigError("secret", f"{key!r} is not a key of the {SECRET_SCOPE} scope")
    return key.upper().replace("-", "_")


def secret(key: str) -> EnvVar:
    return EnvVar(secret_env(key))


def partitions_start() -> str:
    return os.environ.get("VOYCE_PARTITIONS_START", DEFAULT_PARTITIONS_START)


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME, defaulting to ``$VOYCE_HOME/dagster`` with the repo's dagster.yaml in it."""
    home = Path(os.environ.get("DAGSTER_HOME") or voyce_home() / "dagster").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    template = Path(__file__).resolve().parent.parent / "dagster.yaml"
    target = home / "dagster.yaml"
    # The repo's file is the source of truth; the copy is refreshed whenever it changes.
    if template.is_file() and (not target.exists() or target.read_text() != template.read_text()):
        target.write_text(template.read_text())
    return home
