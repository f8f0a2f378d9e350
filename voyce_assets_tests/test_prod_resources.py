"""Prod bindings that need no service: secrets named after the voice-feedback scope keys,
typed cloud credentials for the lakehouse, and neither ever shown as a value."""

import pytest
from dagster import EnvVar
from dagster_deltalake import AzureConfig, GcsConfig, LocalConfig, S3Config

from voyce_assets.resources import prod_resources
from voyce_assets.resources.lakehouse import Lakehouse, cloud_storage
from voyce_assets.settings import SECRET_KEYS, ConfigError, secret_env


def test_every_scope_key_has_its_variable_and_nothing_else_does():
    assert [secret_env(k) for k in SECRET_KEYS] == [
        "POSTGRES_HOST",
        "POSTGRES_PORT",
        "POSTGRES_DATABASE",
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
    ]
    with pytest.raises(ConfigError, match="'postgres-pass' is not a key of the voice-feedback"):
        secret_env("postgres-pass")


def test_the_app_database_reads_the_scope_keys_as_env_vars(prod_env):
    app_db = prod_resources()["app_db"]
    # Bound as EnvVar (the UI shows the variable's name, never its value).
    assert app_db.password == EnvVar("POSTGRES_PASSWORD")
    assert app_db.host == EnvVar("POSTGRES_HOST")


@pytest.mark.parametrize(
    "root, kind, fields",
    [
        ("s3://bucket/uc", S3Config, {"region": "AWS_REGION"}),
        ("abfss://lake@voyceprod.dfs.core.windows.net/uc", AzureConfig, {}),
        ("gs://bucket/uc", GcsConfig, {}),
        ("/tmp/lake", LocalConfig, {}),
    ],
)
def test_the_storage_credentials_are_typed_by_the_roots_scheme(monkeypatch, root, kind, fields):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    storage = cloud_storage(root)
    assert type(storage) is kind
    for field, variable in fields.items():
        assert getattr(storage, field) == EnvVar(variable)
    if kind is AzureConfig:
        assert storage.account_name == "voyceprod"


def test_storage_options_merge_the_typed_credentials_and_resolve_env_vars(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3-secret-never-shown")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-test")
    lake = Lakehouse(
        catalog="c",
        root_uri="s3://bucket/uc",
        volumes_root="/Volumes",
        storage=cloud_storage("s3://bucket/uc"),
        extra_storage_options={"timeout": "120s"},
    )
    # Unresolved, the secret is only its variable's name; as a run sees it, its value.
    assert lake.storage.secret_access_key == EnvVar("AWS_SECRET_ACCESS_KEY")
    options = lake.process_config_and_initialize().storage_options
    assert options["region"] == "eu-west-1" and options["timeout"] == "120s"
    assert options["secret_access_key"] == "s3-secret-never-shown"
    assert "provider" not in options
    assert Lakehouse(catalog="c", root_uri="/x", volumes_root="/v").storage_options == {}
