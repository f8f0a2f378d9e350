"""``analytics/cost_tracking``: what every stage spent on each day of data, per organization.

A cost is dated by the partition of the data it was spent on, so re-running a day rebuilds
exactly that day's rows (same ids, replaced, never added to). Two sources:

- the stages' own tables (``sql/cost_tracking.sql``): Whisper's GPU seconds, billed tokens by
  provider and API mode, texts the local analyzer or the embedder computed (cached answers
  cost nothing), inference seconds, the seconds each model version took to train; priced
  here from the ``pricing`` resource;
- ingestion: the mirrors record their cost rows (records synced, compute seconds) on each
  partition's materialization; they are read back through the instance's event log.

Rows without an organization (a mirrored table with no organization column, a run's compute
time) are shared out to the day's organizations by their share of its feedback (evenly over
the active organizations on a day without feedback), so ``organization_id`` is filled.
"""

import datetime as dt
import json
import uuid
from collections import defaultdict
from decimal import ROUND_FLOOR, Decimal

import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetRecordsFilter,
    DagsterInstance,
    MaterializeResult,
)

from voyce_assets.analytics.sql_asset import (
    ANALYTICS_RETRY,
    Input,
    loaders,
    preview,
    sql_text,
    wait_for_upstream,
)
from voyce_assets.automation import daily_then_late
from voyce_assets.catalog import APP_TABLES, table
from voyce_assets.charts import bar_chart_png, png_markdown
from voyce_assets.checks import failing_partitions, named
from voyce_assets.partitions import by_partition, partition_dates, record_partitions
from voyce_assets.resources import Lakehouse
from voyce_assets.resources.pricing import Pricing
from voyce_assets.resources.sql_engine import SqlEngine
from voyce_assets.tables import table_asset, table_key

COSTS = table("analytics/cost_tracking")
MICRO = Decimal("0.000001")

INPUTS = [
    Input("raw_data/voice_feedback"),
    Input("raw_data/transcriptions"),
    Input("raw_data/sentiment_analysis"),
    Input("processed_data/enhanced_transcriptions"),
    # Written by the inference stage; a day not predicted yet has no inference cost.
    Input("ml_models/predictions", required=False),
    Input("ml_models/model_registry", required=False),
]


def _cost_id(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "voyce-cost:" + "|".join(map(str, parts))))


def stage_rows(result: pa.Table, pricing: Pricing) -> list[dict]:
    """The SQL's quantities as cost rows, priced; the same day gives the same ids."""
    out = []
    for r in result.to_pylist():
        if not r["quantity"]:
            continue  # everything came from a cache: nothing was bought
        unit, total = pricing.priced(r["price_key"], r["quantity"])
        # DuckDB sums integers to HUGEINT, which reaches Arrow as a decimal.
        metadata = {"stage": r["stage"], "price_key": r["price_key"], "items": int(r["items"])}
        if r["audio_minutes"] is not None:
            metadata["audio_minutes"] = round(float(r["audio_minutes"]), 4)
        day = r["cost_date"]
        out.append(
            {
                "id": _cost_id(
                    day,
                    r["organization_id"],
                    r["resource_type"],
                    r["resource_id"],
                    r["operation"],
                    r["price_key"],
                ),
                "organization_id": r["organization_id"],
                "resource_type": r["resource_type"],
                "resource_id": r["resource_id"],
                "operation": r["operation"],
                "quantity": float(r["quantity"]),
                "unit_cost": unit,
                "total_cost": total,
                "currency": pricing.currency,
                "cost_date": day,
                "metadata": metadata,
            }
        )
    return out


def ingestion_rows(instance: DagsterInstance, partition_keys: list[str]) -> list[dict]:
    """Every mirror run's cost rows for these partitions, from its materializations."""
    out = []
    for spec in APP_TABLES:
        cursor = None
        while True:
            page = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=table_key(spec.path), asset_partitions=partition_keys),
                limit=1000,
                cursor=cursor,
            )
            for record in page.records:
                materialization = record.asset_materialization
                rows = materialization.metadata.get("cost_rows") if materialization else None
                for row in rows.value if rows is not None else []:
                    out.append(
                        {
                            **row,
                            "cost_date": dt.date.fromisoformat(materialization.partition),
                            "unit_cost": Decimal(row["unit_cost"]),
                            "total_cost": Decimal(row["total_cost"]),
                            "metadata": {"stage": "ingestion", **(row.get("metadata") or {})},
                        }
                    )
            if not page.has_more:
                break
            cursor = page.cursor
    return out


def allocate(
    rows: list[dict], feedback: dict[tuple[dt.date, str], int], active: list[str]
) -> list[dict]:
    """Rows without an organization split over the day's organizations by their share of its
    feedback (evenly over ``active`` organizations on a day without feedback); amounts to
    the micro-dollar, the rounding left with the largest share so the day's total holds."""
    out = []
    for row in rows:
        if row["organization_id"] is not None:
            out.append(row)
            continue
        day = row["cost_date"]
        weights = {org: n for (d, org), n in feedback.items() if d == day and org}
        basis = "feedback_share"
        if not weights:
            weights, basis = {org: 1 for org in active}, "even"
        if not weights:
            out.append(row)  # no organization exists to carry it
            continue
        total_weight = sum(weights.values())
        orgs = sorted(weights, key=lambda o: (-weights[o], o))
        # Largest remainder: every share rounded down to the micro-dollar, the micro-dollars
        # left go one each to the largest remainders, so no share is negative and the total
        # holds exactly.
        exact = {o: row["total_cost"] * weights[o] / total_weight for o in orgs}
        amounts = {o: exact[o].quantize(MICRO, rounding=ROUND_FLOOR) for o in orgs}
        left = int((row["total_cost"] - sum(amounts.values())) / MICRO)
        for org in sorted(orgs, key=lambda o: (amounts[o] - exact[o], orgs.index(o)))[:left]:
            amounts[org] += MICRO
        for org in orgs:
            share = weights[org] / total_weight
            out.append(
                {
                    **row,
                    "id": _cost_id(row["id"], org),
                    "organization_id": org,
                    "quantity": row["quantity"] * share,
                    "total_cost": amounts[org],
                    "metadata": {
                        **row["metadata"],
                        "allocated_from": row["id"],
                        "allocation": basis,
                        "share": round(share, 6),
                    },
                }
            )
    return out


def as_arrow(rows: list[dict], created_at: dt.datetime) -> pa.Table:
    schema = pa.schema([f.with_nullable(True) for f in COSTS.arrow_schema()])
    return pa.Table.from_pylist(
        [
            {
                **r,
                "metadata": json.dumps(r["metadata"], sort_keys=True),
                "created_at": created_at,
            }
            for r in rows
        ],
        schema=schema,
    )


def cost_rows_check(stored: list[dict]) -> AssetCheckResult:
    """Every row is priced right (total = unit x quantity, to rounding), owned by an
    organization, and unique."""
    problems: dict[str, list[str]] = defaultdict(list)
    ids = [r["id"] for r in stored]
    if len(ids) != len(set(ids)):
        problems["duplicate_ids"] = sorted({i for i in ids if ids.count(i) > 1})
    for r in stored:
        expected = Decimal(str(r["quantity"])) * r["unit_cost"]
        if abs(expected - r["total_cost"]) > Decimal("0.00001") or r["total_cost"] < 0:
            problems["mispriced"].append(r["id"])
        if r["organization_id"] is None:
            problems["no_organization"].append(r["id"])
    bad = {i for found in problems.values() for i in found}
    failing = failing_partitions(r.get("event_date") for r in stored if r["id"] in bad)
    described = ", ".join(f"{len(v)} {k}" for k, v in problems.items())
    return AssetCheckResult(
        check_name="cost_rows_valid",
        passed=not problems,
        metadata={
            "rows": len(stored),
            **{k: v[:20] for k, v in problems.items()},
            "failing_partitions": failing,
        },
        description=f"{described} ({named(failing)})" if failing else described or None,
    )


def cost_by_stage_png(day: dt.date, rows: list[dict]) -> bytes | None:
    """A bar chart of the day's cost rows summed by stage (None when there are none)."""
    by_stage: dict[str, float] = defaultdict(float)
    for r in rows:
        by_stage[json.loads(r["metadata"] or "{}").get("stage", "other")] += float(r["total_cost"])
    if not by_stage:
        return None
    return bar_chart_png(dict(sorted(by_stage.items())), cost_chart_title(day), "USD")


def cost_chart_title(day: dt.date) -> str:
    return f"cost by stage, {day} (USD)"


@table_asset(
    COSTS.path,
    deps=[i.path for i in INPUTS] + [t.path for t in APP_TABLES],
    retry_policy=ANALYTICS_RETRY,
    # Mirrors are read for their sync costs only (from the instance): a day they did not
    # sync has none, so they need not exist, like the optional inputs.
    automation_condition=daily_then_late(
        may_be_missing=[i.path for i in INPUTS if not i.required]
        + [t.path for t in APP_TABLES if t.path not in {i.path for i in INPUTS}]
    ),
    kinds={"sql"},
    required_resource_keys={"lakehouse", "sql_engine", "pricing"},
    checks={
        "cost_rows_valid": "Each row's total is its unit cost times its quantity, its "
        "organization is filled, and no id repeats."
    },
    description="Stage costs by `analytics/sql/cost_tracking.sql` priced by the `pricing` "
    "resource, plus the mirrors' cost rows read from their materializations. `cost_date` "
    "is the day of the data the money was spent on; the day it was spent is in `metadata`.",
)
def cost_tracking(context: AssetExecutionContext) -> MaterializeResult:
    lakehouse: Lakehouse = context.resources.lakehouse
    engine: SqlEngine = context.resources.sql_engine
    pricing: Pricing = context.resources.pricing
    dates = partition_dates(context)
    wait_for_upstream(context, INPUTS)
    params = {"start_date": min(dates), "end_date": max(dates)}
    result = engine.run(sql_text("cost_tracking"), loaders(lakehouse, INPUTS, dates), params)
    feedback: dict[tuple[dt.date, str], int] = defaultdict(int)
    read = lakehouse.read(
        table("raw_data/voice_feedback"), dates, ["event_date", "organization_id"]
    )
    for r in read.to_pylist():
        feedback[(r["event_date"], r["organization_id"])] += 1
    organizations = lakehouse.read(table("raw_data/organizations"), None, ["id", "is_active"])
    active = sorted(r["id"] for r in organizations.to_pylist() if r["is_active"])
    rows = allocate(
        stage_rows(result, pricing) + ingestion_rows(context.instance, context.partition_keys),
        feedback,
        active,
    )
    data = as_arrow(rows, dt.datetime.now(dt.UTC))
    lakehouse.write_partitions(COSTS, data, dates)
    stored = lakehouse.read(COSTS, dates).to_pylist()
    per_day = by_partition(context, stored, lambda r: r["cost_date"])
    metadata = {}
    for key, day in per_day.items():
        chart = cost_by_stage_png(dt.date.fromisoformat(key), day)
        metadata[key] = {
            "dagster/partition_row_count": len(day),
            "total_cost_usd": float(sum(r["total_cost"] for r in day)),
            "organizations": len({r["organization_id"] for r in day}),
            "cost_by_stage": png_markdown(chart, cost_chart_title(dt.date.fromisoformat(key)))
            if chart
            else "_no cost_",
            "preview": preview(day, COSTS),
        }
    record_partitions(context, metadata)
    return MaterializeResult(
        metadata={"engine": engine.name}, check_results=[cost_rows_check(stored)]
    )
