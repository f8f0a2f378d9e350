"""What the demo customers say: feedback scripts by topic and intended sentiment.

Each script is a few sentences a customer might speak into the app. The intended sentiment
and topic travel with the feedback (in ``voice_feedback.metadata``) so later stages can be
scored against them.
"""

from __future__ import annotations

import random

TOPICS = ("checkout", "delivery", "support", "pricing", "app_performance", "product_quality")
SENTIMENTS = ("positive", "neutral", "negative")

SCRIPTS: dict[str, dict[str, tuple[str, ...]]] = {
    "checkout": {
        "positive": (
            "Checkout was quick and painless, I paid in two taps.",
            "I love that the checkout remembers my card, it saves me so much time.",
            "Paying with the wallet option worked perfectly, great job.",
        ),
        "neutral": (
            "The checkout page asked for my address twice, but the order went through.",
            "I used the guest checkout today. It took about the usual time.",
            "Checkout works. I would like to see the total with tax earlier.",
        ),
        "negative": (
            "The checkout kept failing when I tried to pay with my card. Really frustrating.",
            "I was charged twice at checkout and nobody can tell me why.",
            "The payment page froze and I lost my whole cart. This is unacceptable.",
        ),
    },
    "delivery": {
        "positive": (
            "My package arrived a day early and in perfect condition. Thank you.",
            "The driver was friendly and the tracking updates were spot on.",
            "Delivery was fast and the packaging was excellent.",
        ),
        "neutral": (
            "The parcel arrived on the estimated date. Nothing special to report.",
            "Delivery took five days, which is what the website said.",
            "The courier left the box at the front desk as requested.",
        ),
        "negative": (
            "My order is two weeks late and the tracking has not moved at all.",
            "The box arrived crushed and half of the items were broken.",
            "The driver marked it as delivered but I never received anything.",
        ),
    },
    "support": {
        "positive": (
            "The support agent solved my problem in five minutes. Amazing service.",
            "I chatted with support and they were patient, kind and very helpful.",
            "Support refunded me right away without any hassle. I am impressed.",
        ),
        "neutral": (
            "I opened a support ticket yesterday and got an answer this morning.",
            "The help center article explained the setting I was looking for.",
            "Support asked for my order number and said they will follow up.",
        ),
        "negative": (
            "I have waited three days for support to answer and still nothing.",
            "The support agent was rude and closed my ticket without fixing anything.",
            "I was transferred four times and had to repeat my problem every time.",
        ),
    },
    "pricing": {
        "positive": (
            "The new plan is great value for the money, we saved a lot this month.",
            "I appreciate the transparent pricing, there were no surprise fees.",
            "The discount for annual billing made the decision easy. Well done.",
        ),
        "neutral": (
            "The price went up a little this year, about the same as competitors.",
            "I compared the plans and the professional tier seems to fit our needs.",
            "The invoice matched the quote we received last month.",
        ),
        "negative": (
            "The price doubled without any warning. We are thinking about leaving.",
            "There are hidden fees everywhere, this pricing feels dishonest.",
            "It is far too expensive for what it does. I want a refund.",
        ),
    },
    "app_performance": {
        "positive": (
            "The latest update made the app so much faster, it feels smooth now.",
            "The app loads instantly and has not crashed once this month. Excellent.",
            "Search results show up immediately now. Great improvement.",
        ),
        "neutral": (
            "The app works fine on my phone. Sometimes the first screen loads slowly.",
            "I updated the app today. I have not noticed any difference yet.",
            "The dashboard takes a few seconds to load in the morning.",
        ),
        "negative": (
            "The app crashes every time I open the camera. Please fix it.",
            "Everything is painfully slow since the update, it is almost unusable.",
            "The app logged me out again and I lost the form I was filling in.",
        ),
    },
    "product_quality": {
        "positive": (
            "The quality of the jacket is outstanding, it feels premium.",
            "These headphones sound fantastic and the battery lasts all week.",
            "The materials are excellent and it looks exactly like the photos.",
        ),
        "neutral": (
            "The product is as described. The color is a bit darker than expected.",
            "It does what it says. The manual could be clearer.",
            "The size runs a little small but the fabric is fine.",
        ),
        "negative": (
            "The zipper broke after two days. Very poor quality.",
            "The blender stopped working after one week. I am disappointed.",
            "It looks nothing like the pictures and feels cheap.",
        ),
    },
}

OPENERS = (
    "",
    "Hi, ",
    "Hello team, ",
    "Quick feedback: ",
    "Just wanted to say, ",
)

CLOSERS = {
    "positive": ("", " Keep it up.", " Thanks a lot."),
    "neutral": ("", " That is all for now.", " Just letting you know."),
    "negative": ("", " Please do something about it.", " I expect a response."),
}

ACTION_TEMPLATES = {
    "checkout": "Investigate failed payment reported in feedback and contact the customer.",
    "delivery": "Open a claim with the carrier and arrange a replacement shipment.",
    "support": "Escalate the ticket to a support lead and call the customer back.",
    "pricing": "Review the customer's billing and offer a plan adjustment.",
    "app_performance": "Reproduce the crash or slowdown and file an engineering bug.",
    "product_quality": "Offer a replacement and send the defect report to the supplier.",
}


def feedback_script(rng: random.Random, topic: str, sentiment: str) -> str:
    """One to two sentences on ``topic`` with the intended ``sentiment``."""
    text = rng.choice(OPENERS) + rng.choice(SCRIPTS[topic][sentiment])
    return (text + rng.choice(CLOSERS[sentiment])).strip()
