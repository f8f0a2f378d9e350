"""DDL derived from the spec: Databricks DDL parsed with sqlglot, PostgreSQL DDL run for real."""

import re

import pytest
import sqlalchemy as sa
import sqlglot
from sqlglot import exp

from voyce_assets.catalog import APP_TABLES, SCHEMAS, TABLES, VOLUMES
from voyce_assets.ddl import (
    DELTA_TABLE_PROPERTIES,
    added_columns_ddl,
    as_script,
    databricks_ddl,
    postgres_ddl,
    privacy_ddl,
)
from voyce_assets.resources.app_db import sqlalchemy_url

CATALOG = "voice_feedback_prod"


def _norm_type(type_sql: str) -> str:
    return exp.DataType.build(type_sql, dialect="databricks").sql("databricks").replace(" ", "")


def _parse(statement: str) -> exp.Expression:
    return sqlglot.parse_one(statement, dialect="databricks")


def _command_tokens(statement: str) -> list[str]:
    """CREATE CATALOG/VOLUME are Databricks-only; sqlglot tokenizes but does not model them."""
    return [t.text for t in sqlglot.tokenize(statement, read="databricks")]


def _tables_by_name(statements):
    out = {}
    for s in statements:
        tree = _parse(s)
        if isinstance(tree, exp.Create) and tree.args.get("kind") == "TABLE":
            out[tree.this.this.name] = tree
    return out


def test_statement_order_and_count():
    statements = databricks_ddl(CATALOG)
    privacy = len(privacy_ddl(CATALOG))
    assert len(statements) == 1 + len(SCHEMAS) + len(TABLES) + privacy + len(VOLUMES)
    assert _command_tokens(statements[0]) == [
        "CREATE",
        "CATALOG",
        "IF",
        "NOT",
        "EXISTS",
        CATALOG,
        "COMMENT",
        "Voyce voice feedback pipeline",
    ]
    for statement, schema in zip(statements[1:5], SCHEMAS, strict=True):
        tree = _parse(statement)
        assert isinstance(tree, exp.Create) and tree.args["kind"] == "SCHEMA"
        assert tree.args["exists"]
        assert (tree.this.catalog, tree.this.db) == (CATALOG, schema)


def _columns(tree: exp.Expression) -> list[tuple[str, str, bool]]:
    """(name, type, NOT NULL) of each column of a parsed CREATE TABLE."""
    return [
        (
            c.name,
            c.kind.sql("databricks"),
            any(isinstance(k.kind, exp.NotNullColumnConstraint) for k in c.constraints),
        )
        for c in tree.this.expressions
        if isinstance(c, exp.ColumnDef)
    ]


def test_the_catalog_is_the_designs():
    """Fixed values from docs/design.md, not from the spec the DDL is made of: a table,
    schema or volume lost or renamed in the spec fails here."""
    statements = databricks_ddl(CATALOG)
    # Catalog, schemas, tables, the mask function with its 4 masked columns and the 7 tables
    # with free text, volumes.
    assert len(statements) == 1 + 4 + 35 + (1 + 4 + 7) + 3
    schemas = [_parse(s).this.db for s in statements[1:5]]
    assert schemas == ["raw_data", "processed_data", "ml_models", "analytics"]
    volumes = [tuple(_command_tokens(s)[7:10:2]) for s in statements[-3:]]
    assert volumes == [
        ("raw_data", "audio_files"),
        ("processed_data", "processed_audio"),
        ("ml_models", "artifacts"),
    ]
    tables = _tables_by_name(statements)
    design = {
        "raw_data": "organizations users voice_feedback transcriptions sentiment_analysis tags "
        "feedback_tags action_items erasure_log",
        "processed_data": "audio_features enhanced_transcriptions training_dataset",
        "ml_models": "model_registry predictions",
        "analytics": "daily_feedback_summary organization_metrics cost_tracking",
    }
    for schema, names in design.items():
        for name in names.split():
            assert tables[name].this.this.db == schema, name


def test_transcriptions_table_is_the_designs():
    """raw_data.transcriptions written out by hand from docs/design.md (STRING unless noted),
    with the keys, the partition column and the nullability the pipeline relies on."""
    tree = _tables_by_name(databricks_ddl(CATALOG))["transcriptions"]
    assert _columns(tree) == [
        ("id", "STRING", True),
        ("voice_feedback_id", "STRING", True),
        ("transcription_text", "STRING", False),
        # The text every later stage reads, what was found, by which redactor.
        ("redacted_text", "STRING", False),
        ("pii_entities", "STRING", False),
        ("redaction", "STRING", False),
        ("transcription_engine", "STRING", True),
        ("confidence_score", "DOUBLE", False),
        ("language_detected", "STRING", False),
        ("word_count", "INT", False),
        ("processing_time_ms", "BIGINT", False),
        ("error_message", "STRING", False),
        ("created_at", "TIMESTAMP", True),
        ("event_date", "DATE", True),
    ]
    (pk,) = [e for e in tree.this.expressions if isinstance(e, exp.Constraint)]
    assert [i.name for i in pk.find(exp.PrimaryKey).expressions] == ["id"]
    props = tree.args["properties"].expressions
    partitioned = next(p for p in props if isinstance(p, exp.PartitionedByProperty))
    assert [c.name for c in partitioned.this.expressions] == ["event_date"]
    features = dict(
        (n, t) for n, t, _ in _columns(_tables_by_name(databricks_ddl(CATALOG))["audio_features"])
    )
    assert features["mfcc_features"] == features["spectral_features"] == "ARRAY<DOUBLE>"


@pytest.mark.parametrize("spec", TABLES, ids=lambda t: t.path)
def test_create_table_matches_spec(spec):
    tree = _tables_by_name(databricks_ddl(CATALOG))[spec.name]
    target = tree.this.this
    assert (target.catalog, target.db, target.name) == (CATALOG, spec.schema, spec.name)
    assert tree.args["exists"], "CREATE TABLE IF NOT EXISTS keeps setup idempotent"

    column_defs = [e for e in tree.this.expressions if isinstance(e, exp.ColumnDef)]
    assert [c.name for c in column_defs] == spec.column_names
    for col_def in column_defs:
        col = spec.column(col_def.name)
        assert _norm_type(col_def.kind.sql("databricks")) == _norm_type(col.type.databricks)
        not_null = any(isinstance(c.kind, exp.NotNullColumnConstraint) for c in col_def.constraints)
        assert not_null == (not col.nullable), col.name

    pk = [e for e in tree.this.expressions if isinstance(e, exp.Constraint)]
    assert len(pk) == 1
    assert [i.name for i in pk[0].find(exp.PrimaryKey).expressions] == list(spec.primary_key)

    props = tree.args["properties"].expressions
    assert any(
        isinstance(p, exp.FileFormatProperty) and p.this.name.upper() == "DELTA" for p in props
    )
    partitioned = next(p for p in props if isinstance(p, exp.PartitionedByProperty))
    assert [c.name for c in partitioned.this.expressions] == [spec.partition_column]
    tblprops = {p.name: p.args["value"].name for p in props if type(p) is exp.Property}
    stats = tblprops.pop("delta.dataSkippingStatsColumns").split(",")
    assert tblprops == DELTA_TABLE_PROPERTIES
    # Statistics of every column but personal data and free text (which stay out of the log).
    assert stats == [c.name for c in spec.columns if not (c.pii or c.free_text)]
    assert tblprops["delta.enableChangeDataFeed"] == "true"
    assert tblprops["delta.autoOptimize.optimizeWrite"] == "true"
    assert not any(isinstance(p, exp.LocationProperty) for p in props), (
        "managed unless a root is given"
    )


def test_personal_data_is_masked_for_all_but_one_group_in_unity_catalog():
    """The raw transcript and the users' email, name and phone: every reader outside the
    group sees ***. The ALTERs also mask tables created before the masks existed."""
    statements = databricks_ddl(CATALOG, pii_readers="voyce_privacy_team")
    function = f"`{CATALOG}`.`raw_data`.`pii_mask`"
    (create,) = [s for s in statements if s.startswith("CREATE OR REPLACE FUNCTION")]
    tree = _parse(create)
    assert tree.this.this.sql("databricks") == function
    body = create.split(" RETURN ", 1)[1]
    assert body == (
        "CASE WHEN is_account_group_member('voyce_privacy_team') THEN value ELSE '***' END"
    )
    masked = set()
    for statement in statements:
        found = re.fullmatch(
            rf"ALTER TABLE `{CATALOG}`\.`(\w+)`\.`(\w+)` ALTER COLUMN `(\w+)` SET MASK (.+)",
            statement,
        )
        if found:
            assert found[4] == function
            masked.add(found[1] + "." + found[2] + "." + found[3])
    assert masked == {
        "raw_data.transcriptions.transcription_text",
        "raw_data.users.email",
        "raw_data.users.full_name",
        "raw_data.users.phone_number",
    }
    # The function exists before any mask names it, and every table before its ALTER.
    first_alter = next(i for i, s in enumerate(statements) if s.startswith("ALTER TABLE"))
    assert statements.index(create) < first_alter
    assert max(i for i, s in enumerate(statements) if s.startswith("CREATE TABLE")) < first_alter


def test_older_tables_get_the_statistics_columns_too():
    """CREATE TABLE IF NOT EXISTS leaves an existing table's properties: an ALTER sets which
    columns the log keeps statistics of on each table holding free text."""
    altered = {}
    for statement in privacy_ddl(CATALOG):
        found = re.fullmatch(
            rf"ALTER TABLE `{CATALOG}`\.`(\w+)`\.`(\w+)` SET TBLPROPERTIES "
            r"\('delta\.dataSkippingStatsColumns' = '([\w,]+)'\)",
            statement,
        )
        if found:
            altered[found[1] + "/" + found[2]] = found[3].split(",")
    assert set(altered) == {
        "raw_data/users",
        "raw_data/voice_feedback",
        "raw_data/action_items",
        "raw_data/transcriptions",
        "raw_data/sentiment_analysis",
        "processed_data/enhanced_transcriptions",
        "analytics/overdue_action_items",
    }
    assert "cleaned_text" not in altered["processed_data/enhanced_transcriptions"]
    assert "summary" not in altered["raw_data/sentiment_analysis"]
    assert "voice_feedback_id" in altered["raw_data/transcriptions"]
    assert not {"transcription_text", "redacted_text"} & set(altered["raw_data/transcriptions"])


def test_tables_made_before_the_spec_gained_columns_get_them_added():
    """CREATE TABLE IF NOT EXISTS leaves an existing table's columns as they were: the
    columns it lacks are added (Databricks has no ADD COLUMN IF NOT EXISTS: the guard is the
    columns it holds), after the tables and before any mask names them."""
    sentiment = next(t for t in TABLES if t.path == "raw_data/sentiment_analysis")
    new = ["cache_write_tokens", "cache_read_tokens"]
    existing = {t.path: t.column_names for t in TABLES}  # every table as the spec has it
    existing[sentiment.path] = [c.upper() for c in sentiment.column_names if c not in new]
    assert added_columns_ddl(CATALOG, {t.path: t.column_names for t in TABLES}) == []
    assert added_columns_ddl(CATALOG, {}) == []  # no table yet: the CREATEs have them all
    alters = added_columns_ddl(CATALOG, existing)
    added = []
    for alter in alters:  # one a column: one added already fails alone
        tree = _parse(alter)
        assert isinstance(tree, exp.Alter)
        assert (tree.this.catalog, tree.this.db, tree.this.name) == (
            CATALOG,
            "raw_data",
            "sentiment_analysis",
        )
        [column] = tree.find_all(exp.ColumnDef)
        added.append((column.name, column.kind.sql("databricks")))
        assert "NOT NULL" not in alter and "COMMENT" in alter
    assert added == [(n, "BIGINT") for n in new]
    statements = databricks_ddl(CATALOG, existing=existing)
    tables_end = 1 + len(SCHEMAS) + len(TABLES)
    assert statements[tables_end : tables_end + 2] == alters  # before any mask or property
    assert [s for s in statements if s not in alters] == databricks_ddl(CATALOG)


def test_external_locations_follow_the_lakehouse_layout():
    tables = _tables_by_name(databricks_ddl(CATALOG, location_root="s3://lake/uc/"))
    for spec in TABLES:
        props = tables[spec.name].args["properties"].expressions
        location = next(p for p in props if isinstance(p, exp.LocationProperty))
        assert location.this.name == f"s3://lake/uc/{CATALOG}/{spec.schema}/{spec.name}"


def test_volumes():
    statements = databricks_ddl(CATALOG)[-len(VOLUMES) :]
    for statement, vol in zip(statements, VOLUMES, strict=True):
        tokens = _command_tokens(statement)
        assert tokens[:5] == ["CREATE", "VOLUME", "IF", "NOT", "EXISTS"]
        assert tokens[5:10] == [CATALOG, ".", vol.schema, ".", vol.name]
        assert tokens[10] == "COMMENT"


def test_comments_with_quotes_are_escaped():
    script = as_script(databricks_ddl("c"))
    count = 1 + len(SCHEMAS) + len(TABLES) + len(privacy_ddl("c")) + len(VOLUMES)
    assert script.count(";\n") == count
    # Every statement parses on its own after splitting the script.
    parsed = sqlglot.parse(script, dialect="databricks")
    assert len([p for p in parsed if p is not None]) == count


# ---- PostgreSQL, against the real embedded server ------------------------------------------

PG_TYPES = {
    "TEXT": "text",
    "UUID": "uuid",
    "JSONB": "jsonb",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "DOUBLE PRECISION": "double precision",
    "BOOLEAN": "boolean",
    "TIMESTAMPTZ": "timestamp with time zone",
    "DATE": "date",
}


@pytest.fixture
def app_engine(pg_database):
    engine = sa.create_engine(sqlalchemy_url(pg_database))
    with engine.begin() as conn:
        for statement in postgres_ddl():
            conn.execute(sa.text(statement))
    yield engine
    engine.dispose()


def test_postgres_schema_matches_spec(app_engine):
    with app_engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
                "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
            )
        ).all()
        pks = conn.execute(
            sa.text(
                "SELECT tc.table_name, kcu.column_name FROM information_schema.table_constraints tc "
                "JOIN information_schema.key_column_usage kcu USING (constraint_name, table_schema) "
                "WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = 'public'"
            )
        ).all()
    columns: dict[str, list] = {}
    for table_name, column, data_type, nullable in rows:
        columns.setdefault(table_name, []).append((column, data_type, nullable == "YES"))
    assert set(columns) == {t.name for t in APP_TABLES}
    # One table written out by hand from docs/design.md, not from the spec.
    assert columns["organizations"] == [
        ("id", "uuid", False),
        ("name", "text", False),
        ("industry", "text", True),
        ("company_size", "text", True),
        ("subscription_tier", "text", False),
        ("settings", "jsonb", True),
        ("created_at", "timestamp with time zone", False),
        ("updated_at", "timestamp with time zone", False),
        ("is_active", "boolean", False),
    ]
    for spec in APP_TABLES:
        expected = [(c.name, PG_TYPES[c.type.postgres], c.nullable) for c in spec.source_columns]
        assert columns[spec.name] == expected
        assert "event_date" not in [c for c, _, _ in columns[spec.name]], "lakehouse-only"
        assert sorted(c for t, c in pks if t == spec.name) == sorted(spec.primary_key)


def test_postgres_ddl_is_idempotent_and_enforces_vocabulary(app_engine):
    with app_engine.begin() as conn:
        for statement in postgres_ddl():
            conn.execute(sa.text(statement))
        indexes = {
            r[0]
            for r in conn.execute(
                sa.text("SELECT indexname FROM pg_indexes WHERE schemaname='public'")
            )
        }
    assert {
        "voice_feedback_cdc_idx",
        "voice_feedback_created_at_idx",
        "tags_cdc_idx",
        "users_organization_id_idx",
    } <= indexes
    with (
        pytest.raises(sa.exc.IntegrityError, match="subscription_tier_check"),
        app_engine.begin() as conn,
    ):
        conn.execute(
            sa.text(
                "INSERT INTO organizations (id, name, subscription_tier, created_at, updated_at, is_active) "
                "VALUES (gen_random_uuid(), 'x', 'platinum', now(), now(), true)"
            )
        )


def test_postgres_ddl_parses_as_postgres():
    for statement in postgres_ddl("app"):
        tree = sqlglot.parse_one(statement, dialect="postgres")
        assert isinstance(tree, exp.Create)
    assert re.search(r'REFERENCES "app"\."organizations"', as_script(postgres_ddl("app")))
