"""catalog_setup: local Delta tables and volumes, and Unity Catalog DDL via databricks-sdk."""

import pyarrow as pa
import pytest
import sqlglot
from dagster import materialize
from deltalake import DeltaTable, write_deltalake

from voyce_assets.catalog import TABLES, VOLUMES, table
from voyce_assets.ddl import databricks_ddl, table_properties
from voyce_assets.operations.catalog_setup import catalog_setup
from voyce_assets.resources import local_resources
from voyce_assets.resources.lakehouse import Lakehouse
from voyce_assets.resources.unity_catalog import (
    CatalogSetupError,
    DatabricksUnityCatalog,
    LocalUnityCatalog,
)
from voyce_assets_tests.fakes.databricks import FakeDatabricks


def _metadata(result):
    return result.asset_materializations_for_node("catalog_setup")[0].metadata


def test_local_setup_creates_empty_partitioned_tables_and_volumes(voyce_home):
    resources = local_resources()
    result = materialize([catalog_setup], resources=resources)
    assert result.success
    meta = _metadata(result)
    assert meta["tables_created"].value == len(TABLES) and meta["volumes_created"].value == 3
    lakehouse = resources["lakehouse"]
    for spec in TABLES:
        uri = lakehouse.table_uri(spec)
        assert uri == f"{voyce_home}/lakehouse/voice_feedback_dev/{spec.schema}/{spec.name}"
        dt = DeltaTable(uri)
        assert dt.metadata().partition_columns == [spec.partition_column]
        assert dt.metadata().configuration == table_properties(spec)
        arrow = pa.schema(dt.schema().to_arrow())
        assert arrow.names == spec.column_names
        assert [f.type for f in arrow] == [f.type for f in spec.arrow_schema()]
        assert dt.to_pyarrow_table().num_rows == 0
    for vol in VOLUMES:
        assert lakehouse.volume_path(vol).is_dir()
        assert str(lakehouse.volume_path(vol)).startswith(str(voyce_home / "volumes"))

    again = materialize([catalog_setup], resources=resources)
    meta = _metadata(again)
    assert meta["tables_exists"].value == len(TABLES) and meta["volumes_exists"].value == 3
    assert "tables_created" not in meta


def test_setup_writes_compatible_tables_that_partition_writes_respect(voyce_home):
    resources = local_resources()
    materialize([catalog_setup], resources=resources)
    spec = table("raw_data/tags")
    uri = resources["lakehouse"].table_uri(spec)
    rows = pa.Table.from_pylist(
        [
            {
                "id": "a",
                "name": "x",
                "category": "topic",
                "description": None,
                "created_at": 0,
                "event_date": 0,
            },
            {
                "id": "b",
                "name": "y",
                "category": "topic",
                "description": None,
                "created_at": 86_400_000_000,
                "event_date": 1,
            },
        ],
        schema=spec.arrow_schema(),
    )
    write_deltalake(uri, rows, mode="append")
    # Replacing one partition leaves the other alone: the DATE partition column works.
    write_deltalake(uri, rows.slice(0, 1), mode="overwrite", predicate="event_date = '1970-01-01'")
    assert sorted(DeltaTable(uri).to_pyarrow_table().column("id").to_pylist()) == ["a", "b"]


def test_setup_evolves_new_columns_and_rejects_type_conflicts(voyce_home, tmp_path):
    lakehouse = Lakehouse(
        catalog="c", root_uri=str(tmp_path / "lake"), volumes_root=str(tmp_path / "vol")
    )
    spec = table("raw_data/tags")
    uri = lakehouse.table_uri(spec)
    older = pa.schema([f for f in spec.arrow_schema() if f.name != "description"])
    DeltaTable.create(uri, schema=older, partition_by=["event_date"])
    actions = {a.name: a for a in LocalUnityCatalog(lakehouse=lakehouse).setup()}
    assert actions["c.raw_data.tags"].action == "evolved"
    assert [f.name for f in DeltaTable(uri).schema().fields][-1] == "description"
    assert LocalUnityCatalog(lakehouse=lakehouse).setup()[0].action == "exists"

    fresh = Lakehouse(
        catalog="c", root_uri=str(tmp_path / "lake2"), volumes_root=str(tmp_path / "vol")
    )
    other = table("raw_data/feedback_tags")
    conflicting = pa.schema(
        [
            pa.field(f.name, pa.string()) if f.name == "confidence_score" else f
            for f in other.arrow_schema()
        ]
    )
    DeltaTable.create(fresh.table_uri(other), schema=conflicting, partition_by=["event_date"])
    with pytest.raises(
        CatalogSetupError, match=r"raw_data/feedback_tags: column confidence_score is"
    ):
        LocalUnityCatalog(lakehouse=fresh).setup()


_COLUMNS_QUERY = (
    "SELECT table_schema, table_name, column_name "
    "FROM system.information_schema.columns WHERE table_catalog = :catalog"
)


def _columns_of(tables: dict[str, list[str]]):
    """A warehouse whose catalog holds ``tables`` ({schema/table: columns})."""

    def query(statement, parameters):
        assert statement == _COLUMNS_QUERY, statement
        assert [p["value"] for p in parameters] == ["voice_feedback_prod"]
        names = ("table_schema", "table_name", "column_name")
        rows = [[*path.split("/"), c] for path, cols in tables.items() for c in cols]
        return [(n, "STRING", "string") for n in names], rows

    return query


def test_prod_setup_runs_the_ddl_through_the_statement_execution_api():
    token = "dapi-test-token-never-logged"
    with FakeDatabricks(token=token, polls_before_done=2, query=_columns_of({})) as fake:
        uc = DatabricksUnityCatalog(
            host=fake.host,
            token=token,
            warehouse_id="wh-1",
            catalog="voice_feedback_prod",
            location_root="s3://lake/uc",
            poll_interval_seconds=0.01,
        )
        result = materialize([catalog_setup], resources={"unity_catalog": uc})
        assert result.success
        sent = [s.statement for s in fake.statements]
        # A catalog with no table yet: the columns asked for, then the DDL, no ALTER of one.
        assert sent[0] == _COLUMNS_QUERY
        sent = sent[1:]
        assert sent == databricks_ddl("voice_feedback_prod", "s3://lake/uc")
        assert {s.warehouse_id for s in fake.statements} == {"wh-1"}
        for statement in sent:
            sqlglot.parse_one(statement, dialect="databricks")
        assert all(h == f"Bearer {token}" for h in fake.auth_headers)
        meta = _metadata(result)
        assert meta["statements_executed"].value == len(sent)
        text = " ".join(str(v.value) for v in meta.values())
        assert token not in text
        events = result.all_events
        assert not any(token in str(e) for e in events)


def test_prod_setup_adds_the_columns_a_table_made_before_them_lacks():
    """CREATE TABLE IF NOT EXISTS leaves a table made before the spec gained columns as it
    was (sentiment_analysis without the prompt cache's token columns): setup adds them."""
    new = {"cache_write_tokens", "cache_read_tokens"}
    tables = {t.path: t.column_names for t in TABLES}
    sentiment = tables["raw_data/sentiment_analysis"]
    tables["raw_data/sentiment_analysis"] = [c for c in sentiment if c not in new]
    with FakeDatabricks(token="t", query=_columns_of(tables)) as fake:
        assert _prod_setup(fake).success
        sent = [s.statement for s in fake.statements]
    alters = [s for s in sent if " ADD COLUMNS " in s]
    assert alters == [
        "ALTER TABLE `voice_feedback_prod`.`raw_data`.`sentiment_analysis` ADD COLUMNS "
        f"(`{name}` BIGINT COMMENT {_comment(name)})"
        for name in ("cache_write_tokens", "cache_read_tokens")
    ]
    # After every table exists, before the masks and properties that may name the columns.
    last_create = max(i for i, s in enumerate(sent) if s.startswith("CREATE TABLE"))
    assert sent[last_create + 1 : last_create + 3] == alters
    # A column the pipeline's Delta writer added to the log before Unity Catalog's schema
    # knew it: Databricks refuses that one; setup goes on and adds the other.
    refused = {r"ADD COLUMNS \(`cache_write_tokens`": "[FIELDS_ALREADY_EXISTS] Cannot add it"}
    with FakeDatabricks(token="t", query=_columns_of(tables), errors=refused) as fake:
        result = _prod_setup(fake)
        assert result.success
        assert alters[1] in [s.statement for s in fake.statements]
    with FakeDatabricks(
        token="t", query=_columns_of(tables), errors={"ADD COLUMNS": "[PERMISSION_DENIED] no"}
    ) as fake:
        assert not _prod_setup(fake, raise_on_error=False).success
    # Run again once they are there: nothing to add.
    tables["raw_data/sentiment_analysis"] = sentiment
    with FakeDatabricks(token="t", query=_columns_of(tables)) as fake:
        assert _prod_setup(fake).success
        assert not [s for s in fake.statements if " ADD COLUMNS " in s.statement]


def _comment(column: str) -> str:
    from voyce_assets.ddl import _sql_string

    [spec] = [c for c in table("raw_data/sentiment_analysis").columns if c.name == column]
    return _sql_string(spec.description)


def _prod_setup(fake: FakeDatabricks, raise_on_error: bool = True):
    uc = DatabricksUnityCatalog(
        host=fake.host,
        token=fake.token,
        warehouse_id="wh",
        catalog="voice_feedback_prod",
        poll_interval_seconds=0.01,
    )
    return materialize(
        [catalog_setup], resources={"unity_catalog": uc}, raise_on_error=raise_on_error
    )


def test_prod_setup_fails_with_the_statement_and_databricks_error():
    with FakeDatabricks(token="t", fail_pattern=r"^CREATE VOLUME .*`audio_files`") as fake:
        uc = DatabricksUnityCatalog(
            host=fake.host, token="t", warehouse_id="wh", catalog="cat", poll_interval_seconds=0.01
        )
        result = materialize([catalog_setup], resources={"unity_catalog": uc}, raise_on_error=False)
        assert not result.success
        failure = result.failure_data_for_node("catalog_setup").error.to_string()
        assert "CREATE VOLUME IF NOT EXISTS `cat`.`raw_data`.`audio_files`" in failure
        assert "PERMISSION_DENIED" in failure
        # Everything before the failing statement ran; nothing after it.
        assert fake.statements[-1].statement.startswith(
            "CREATE VOLUME IF NOT EXISTS `cat`.`raw_data`"
        )
