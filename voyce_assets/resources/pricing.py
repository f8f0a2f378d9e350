"""The price table: one place for every unit cost the pipeline records in cost_tracking.

The defaults follow the notebooks ($0.0001 per synced record) and list prices; override any of
them per deployment (``Pricing(prices={...})``) without touching the assets.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from dagster import ConfigurableResource
from pydantic import Field

DEFAULT_PRICES: dict[str, float] = {
    # (resource_type, operation unit) -> USD per unit
    "ingestion.record": 0.0001,
    # Driver compute of a Databricks jobs cluster, per second (about $0.40/h).
    "compute.second": 0.00011,
    # A GPU node of the Whisper / training job cluster with its DBUs (about $0.90/h).
    "gpu.second": 0.00025,
    # Language models, per million tokens (list prices; the Batches APIs bill half).
    # Claude Sonnet 4.5, the default model; its prompt cache: a 5-minute write 1.25x the
    # input price (Messages), a 1-hour write 2x (batches use those), a read 0.1x; the batch
    # discount applies on top.
    "anthropic.input_mtok": 3.0,
    "anthropic.output_mtok": 15.0,
    "anthropic.cache_write_mtok": 3.75,
    "anthropic.cache_read_mtok": 0.30,
    "anthropic.batch_input_mtok": 1.5,
    "anthropic.batch_output_mtok": 7.5,
    "anthropic.batch_cache_write_mtok": 3.0,
    "anthropic.batch_cache_read_mtok": 0.15,
    "openai.input_mtok": 0.15,  # gpt-4o-mini
    "openai.output_mtok": 0.60,
    "openai.batch_input_mtok": 0.075,
    "openai.batch_output_mtok": 0.30,
    # CPU time per thousand texts at the measured rates (`make bench`) x compute.second:
    # MiniLM embeddings ~160 texts/s, the local analyzer (embedding + classifier) ~120/s.
    "embedding.ktext": 0.0007,
    "local.ktext": 0.0009,
}


class Pricing(ConfigurableResource):
    """Unit prices in USD, keyed ``<resource_type>.<unit>``."""

    prices: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_PRICES))
    currency: str = "USD"

    def unit_cost(self, key: str) -> Decimal:
        merged = {**DEFAULT_PRICES, **self.prices}
        if key not in merged:
            raise KeyError(f"no price for {key!r}; known: {', '.join(sorted(merged))}")
        return Decimal(str(merged[key])).quantize(Decimal("0.000001"))

    def priced(self, key: str, quantity: float) -> tuple[Decimal, Decimal]:
        """The unit cost of ``key`` and what ``quantity`` units cost, to the cent's 1/10,000."""
        unit = self.unit_cost(key)
        return unit, (unit * Decimal(str(quantity))).quantize(Decimal("0.000001"))

    def token_cost(
        self,
        provider: str,
        mode: str,
        input_tokens: int,
        output_tokens: int,
        cache_write_tokens: int = 0,
        cache_read_tokens: int = 0,
    ) -> Decimal:
        """USD for a language-model call's tokens (batch mode at the batch price), prompt
        cache writes and reads at their own prices."""
        if provider == "local":
            return Decimal(0)
        prefix = f"{provider}.batch_" if mode == "batch" else f"{provider}."
        counts = {
            "input": input_tokens,
            "output": output_tokens,
            "cache_write": cache_write_tokens,
            "cache_read": cache_read_tokens,
        }
        total = sum(
            (
                self.unit_cost(f"{prefix}{kind}_mtok") * Decimal(n)
                for kind, n in counts.items()
                if n
            ),
            Decimal(0),
        )
        return total / Decimal(1_000_000)

    def cost_row(
        self,
        key: str,
        quantity: float,
        operation: str,
        resource_id: str,
        organization_id: str | None,
        cost_date: dt.date,
        run_id: str,
        metadata: dict | None = None,
        partition: str | None = None,
    ) -> dict:
        """One ``analytics.cost_tracking`` row; its id is stable for the same run and subject.

        ``partition``: the data partition the cost was spent on (a backfill run spends on
        many); kept in the row's metadata and part of its id.
        """
        resource_type = key.split(".")[0]
        unit, total = self.priced(key, quantity)
        subject = f"{resource_id}:{key}:{organization_id}" + (f":{partition}" if partition else "")
        ident = uuid.uuid5(uuid.NAMESPACE_URL, f"voyce:{run_id}:{subject}")
        if partition:
            metadata = {**(metadata or {}), "partition": partition}
        return {
            "id": str(ident),
            "organization_id": organization_id,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "operation": operation,
            "quantity": float(quantity),
            "unit_cost": str(unit),
            "total_cost": str(total),
            "currency": self.currency,
            "cost_date": cost_date.isoformat(),
            "metadata": metadata or {},
        }
