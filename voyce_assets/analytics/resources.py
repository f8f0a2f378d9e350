"""The analytics stage's own resource: the alert webhook and the seed's alert thresholds.

``VOYCE_ALERT_WEBHOOK_URL`` is a Slack-compatible incoming webhook (any endpoint taking
``{"text": ..., "blocks": [...]}``). The URL is a secret (whoever has it can post): it is
an ``EnvVar`` and appears in no log, metadata or error message. Unset, alerts are only
logged. ``VOYCE_DAILY_COST_BUDGET_USD``: a day's cost above it is alerted; unset, cost is
not judged.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from voyce_assets.checks import MAX_FAILURE_RATE
from voyce_assets.settings import ConfigError, from_env


class AlertDeliveryError(RuntimeError):
    """The webhook did not take the alert. The message never holds the URL."""


class AlertWebhook(ConfigurableResource):
    """Where alerts go, and when a day's health is alerted (the seed's "Alerting" list)."""

    url: str | None = Field(
        default=None,
        description="VOYCE_ALERT_WEBHOOK_URL (secret): Slack-compatible webhook; unset: alerts "
        "are logged only.",
    )
    timeout_seconds: float = Field(default=10.0, gt=0, description="Per POST.")
    max_failure_rate: float = Field(
        default=MAX_FAILURE_RATE,
        description="Alert when a day's processing failure rate is above it.",
    )
    max_low_confidence_share: float = Field(
        default=0.20, description="Alert when a day's share of predictions below 0.6 is above it."
    )
    max_sentiment_errors: int = Field(
        default=0, description="Alert when a day has more failed provider calls than this."
    )
    daily_cost_budget_usd: str | None = Field(
        default=None,
        description="VOYCE_DAILY_COST_BUDGET_USD: alert when a day costs more (USD); unset: not "
        "judged.",
    )

    def budget(self) -> float | None:
        """The daily budget in USD; a bad value fails the tick naming the variable (the code
        location still loads)."""
        raw = (self.daily_cost_budget_usd or "").strip()
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(
                "VOYCE_DAILY_COST_BUDGET_USD", f"must be a number, got {raw!r}"
            ) from None
        if value < 0:
            raise ConfigError("VOYCE_DAILY_COST_BUDGET_USD", f"must be 0 or more, got {value}")
        return value

    @property
    def configured(self) -> bool:
        return bool(self.url)

    def post(self, text: str, blocks: list[dict[str, Any]]) -> None:
        """POST one alert; ``AlertDeliveryError`` when the webhook does not answer 2xx."""
        if not self.url:
            raise AlertDeliveryError("no webhook configured (VOYCE_ALERT_WEBHOOK_URL)")
        body = json.dumps({"text": text, "blocks": blocks}).encode()
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                status = response.status
        except urllib.error.HTTPError as e:
            status = e.code
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            # Only the kind of failure: the exception's text may quote the URL.
            reason = getattr(e, "reason", e)
            raise AlertDeliveryError(
                f"alert webhook unreachable ({type(reason).__name__})"
            ) from None
        if not 200 <= status < 300:
            raise AlertDeliveryError(f"alert webhook answered HTTP {status}")


def resources(env: str) -> dict[str, Any]:
    # The same in every environment: the URL (a secret) only ever as an EnvVar.
    return {
        "alert_webhook": AlertWebhook(
            **from_env(
                url="VOYCE_ALERT_WEBHOOK_URL", daily_cost_budget_usd="VOYCE_DAILY_COST_BUDGET_USD"
            )
        )
    }
