"""The topic taxonomy: names and what each covers.

Claude and OpenAI are asked to prefer these names; the local analyzer assigns them by
embedding similarity to the descriptions. Override per deployment with the analyzer's
``topics`` setting.
"""

from __future__ import annotations

TOPICS: dict[str, str] = {
    "checkout": "checkout, paying for an order, the payment page, cart, card declined at payment",
    "delivery": "delivery and shipping, a late or lost package, courier, tracking, arrival time",
    "support": "customer support and service, agents, call centre, chat, waiting on hold, help",
    "pricing": "prices, too expensive, value for money, discounts, fees, price increase, plans",
    "app_performance": "the app or website is slow, crashes, freezes, bugs, login fails, errors",
    "product_quality": "product quality, broken or defective item, poor materials, works well",
    "billing": "billing, invoices, charged twice, refunds, subscription charges, wrong amount",
    "account": "account access, password reset, profile settings, security, locked out",
    "returns": "returns and exchanges, sending an item back, return label, replacement",
    "usability": "ease of use, confusing interface, navigation, design, features missing",
}
