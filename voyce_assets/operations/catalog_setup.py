"""``catalog_setup``: create the catalog's schemas, tables and volumes (run once, idempotent).

Locally this creates empty, partitioned Delta tables and the volume folders; in prod the
``unity_catalog`` resource runs the Databricks DDL on a SQL warehouse. The asset only
orchestrates and reports; what "create" means belongs to the resource of the environment.
"""

from collections import Counter

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset, define_asset_job

from voyce_assets.ddl import as_script
from voyce_assets.resources import UnityCatalog


@asset(
    key="catalog_setup",
    group_name="operations",
    kinds={"delta", "databricks"},
    description="Creates every schema, table and volume of the catalog spec. Idempotent: "
    "re-running reports existing objects, adds columns the spec gained, and fails on a "
    "type or partitioning conflict.",
)
def catalog_setup(context: AssetExecutionContext, unity_catalog: UnityCatalog) -> MaterializeResult:
    actions = unity_catalog.setup()
    counts = Counter(f"{a.kind}s_{a.action}" for a in actions)
    for action in actions:
        context.log.info(f"{action.kind} {action.name}: {action.action} {action.detail}".rstrip())
    rows = "\n".join(f"| {a.kind} | `{a.name}` | {a.action} | {a.detail} |" for a in actions)
    return MaterializeResult(
        metadata={
            **{key: MetadataValue.int(n) for key, n in sorted(counts.items())},
            "objects": MetadataValue.md(
                "| kind | name | action | detail |\n|---|---|---|---|\n" + rows
            ),
            "ddl": MetadataValue.md(f"```sql\n{as_script(unity_catalog.ddl())}```"),
        }
    )


catalog_setup_job = define_asset_job(
    "catalog_setup_job",
    selection=[catalog_setup],
    description="Create the Unity Catalog objects (run once after deploying; safe to re-run).",
)
