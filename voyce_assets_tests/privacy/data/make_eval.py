"""Writes the labelled transcripts the redactor is scored on: ``dev.jsonl`` (tuned on) and
``heldout.jsonl`` (not tuned on: its own templates, names, streets, domains and numbers),
composed from templates; and ``dev_hand.jsonl`` / ``heldout_hand.jsonl``, transcripts
written by hand one by one (fillers, asides, numbers as Whisper writes them), the held-out
ones written before the detector was run on any of them.

Each line: ``{"text": ..., "spans": [{"type", "start", "end"}, ...]}``; ``text[start:end]``
is the personal data. Transcripts read as Whisper writes them: capitalised and punctuated,
or (a quarter of them) lowercase with most punctuation gone; numbers as digits or as words.
Every transcript mixes in sentences with look-alikes (products, prices, versions, durations,
counts, order numbers, dates, streets without a number) that must stay as they are.

Deterministic: ``python make_eval.py`` rewrites both files identically.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

HERE = Path(__file__).parent
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
UNITS = [*DIGIT_WORDS, "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen"]
UNITS += ["sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


# ---- spoken forms ---------------------------------------------------------------------------


def spoken_digits(digits: str, rng: random.Random, groups: tuple[int, ...] = ()) -> str:
    """Digits said one by one: 'oh' for some zeros, 'double eight' for some pairs, commas
    between the groups for some."""
    words, i = [], 0
    while i < len(digits):
        d = int(digits[i])
        if i + 1 < len(digits) and digits[i + 1] == digits[i] and rng.random() < 0.3:
            words.append(f"double {DIGIT_WORDS[d]}")
            i += 2
            continue
        words.append("oh" if d == 0 and rng.random() < 0.5 else DIGIT_WORDS[d])
        i += 1
    # Commas at the group boundaries, for some (not where a 'double' could straddle one).
    if groups and rng.random() < 0.5 and not any(w.startswith("double") for w in words):
        out, pos = [], 0
        for g in groups:
            out.append(" ".join(words[pos : pos + g]))
            pos += g
        return ", ".join(out)
    return " ".join(words)


def number_words(n: int) -> str:
    if n < 20:
        return UNITS[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else f" {UNITS[n % 10]}")
    if n < 1000:
        rest = n % 100
        head = f"{UNITS[n // 100]} hundred"
        return head if rest == 0 else f"{head} and {number_words(rest)}"
    return str(n)


def house_number_words(n: int, rng: random.Random) -> str:
    """How a house number is said: 'twelve', 'four twenty two', 'one oh five'."""
    if n < 100 or rng.random() < 0.3:
        return number_words(n)
    head, rest = divmod(n, 100)
    if rest == 0:
        return f"{number_words(head)} hundred"
    if rest < 10:
        return f"{number_words(head)} oh {UNITS[rest]}"
    return f"{number_words(head)} {number_words(rest)}"


# ---- valid numbers ----------------------------------------------------------------------------


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        digits = [int(c) for c in body + check][::-1]
        total = sum(
            d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits)
        )
        if total % 10 == 0:
            return body + check
    raise AssertionError


def iban(country: str, bban: str) -> str:
    moved = bban + country + "00"
    number = int("".join(str(int(c, 36)) for c in moved))
    return f"{country}{98 - number % 97:02d}{bban}"


def grouped(s: str, size: int = 4, sep: str = " ") -> str:
    return sep.join(s[i : i + size] for i in range(0, len(s), size))


# ---- fillers ------------------------------------------------------------------------------------


class Pool:
    """The names, places and numbers one set draws from."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


DEV = Pool(
    first=[
        "Sarah",
        "Mike",
        "Priya",
        "James",
        "Emily",
        "Carlos",
        "Olivia",
        "David",
        "Aisha",
        "Kevin",
        "Jennifer",
        "Tom",
        "Maria",
        "Daniel",
        "Rachel",
        "Ahmed",
        "Laura",
        "Brian",
    ],
    last=[
        "Johnson",
        "Smith",
        "Patel",
        "Garcia",
        "Nguyen",
        "Brown",
        "Miller",
        "Wilson",
        "Martinez",
        "Anderson",
        "Thompson",
        "Khan",
        "Lee",
        "Walker",
        "Robinson",
    ],
    domains=[
        ("gmail", "com"),
        ("yahoo", "com"),
        ("outlook", "co.uk"),
        ("hotmail", "com"),
        ("icloud", "com"),
        ("company", "org"),
    ],
    streets=["Baker", "Elm", "Oak", "Maple", "Pennsylvania", "Main", "Cedar", "High", "Park"],
    suffixes=["Street", "Avenue", "Road", "Drive", "Lane", "Boulevard", "Court"],
    cities=["Springfield", "Portland", "Austin", "London", "Denver"],
    iban_countries=[("GB", "WEST{:08d}{:06d}"), ("DE", "{:08d}{:010d}")],
)
HELD = Pool(
    first=[
        "Hannah",
        "Ryan",
        "Meera",
        "Jessica",
        "Luis",
        "Chloe",
        "Mark",
        "Fatima",
        "Steven",
        "Natalie",
        "Omar",
        "Megan",
        "Greg",
        "Sophie",
        "Raj",
        "Amanda",
    ],
    last=[
        "Taylor",
        "Clark",
        "Lopez",
        "Wright",
        "Hughes",
        "Scott",
        "Sharma",
        "Evans",
        "Turner",
        "Collins",
        "Rivera",
        "Murphy",
        "Kim",
    ],
    domains=[
        ("gmail", "com"),
        ("aol", "com"),
        ("protonmail", "com"),
        ("yahoo", "co.uk"),
        ("mail", "net"),
    ],
    streets=["Willow", "Chestnut", "Washington", "Lincoln", "Birch", "Church", "Victoria"],
    suffixes=["Street", "Avenue", "Road", "Way", "Place", "Drive", "Terrace"],
    cities=["Riverside", "Seattle", "Boston", "Manchester", "Phoenix"],
    iban_countries=[
        ("FR", "{:010d}{:011d}{:02d}"),
        ("NL", "ABNA{:010d}"),
        ("GB", "NWBK{:08d}{:06d}"),
    ],
)


def _iban(pool: Pool, rng: random.Random) -> str:
    from stdnum import iban as stdnum_iban

    while True:  # a BBAN whose national check (where the country has one) holds too
        country, fmt = rng.choice(pool.iban_countries)
        bban = re.sub(r"\{:0(\d+)d\}", lambda m: f"{rng.randrange(10 ** int(m[1])):0{m[1]}d}", fmt)
        value = iban(country, bban)
        if stdnum_iban.is_valid(value):
            return value


def fill(slot: str, pool: Pool, rng: random.Random) -> tuple[str, str | None]:
    """(surface text, its personal-data type or None) for one slot."""
    first, last = rng.choice(pool.first), rng.choice(pool.last)
    if slot == "NAME":
        return f"{first} {last}", "PERSON"
    if slot == "FIRST":
        return first, "PERSON"
    if slot == "EMAIL":
        host, tld = rng.choice(pool.domains)
        local = rng.choice(
            [f"{first}.{last}", f"{first[0]}{last}{rng.randrange(10, 99)}", f"{first}_{last}"]
        ).lower()
        return f"{local}@{host}.{tld}", "EMAIL"
    if slot == "EMAIL_SPOKEN":
        host, tld = rng.choice(pool.domains)
        tld = tld.replace(".", " dot ")
        local = rng.choice(
            [
                f"{first} dot {last}",
                f"{first[0]} {last} underscore {rng.randrange(10, 99)}",
                f"{first}{last}",
                f"{first} underscore {last}",
                f"{first[0]} dot {last}",
            ]
        ).lower()
        return f"{local} at {host} dot {tld}", "EMAIL"
    if slot == "PHONE":
        a, b, c = rng.randrange(200, 999), rng.randrange(200, 999), rng.randrange(10000)
        return rng.choice(
            [
                f"+1 ({a}) {b}-{c:04d}",
                f"{a}-{b}-{c:04d}",
                f"({a}) {b}-{c:04d}",
                f"{a}.{b}.{c:04d}",
                f"{a} {b} {c:04d}",
                f"07{rng.randrange(100, 999)} {rng.randrange(100000, 999999)}",
                f"+44 20 {rng.randrange(1000, 9999)} {rng.randrange(1000, 9999)}",
            ]
        ), "PHONE"
    if slot == "PHONE_SPOKEN":
        if rng.random() < 0.7:
            digits = f"{rng.randrange(200, 999)}{rng.randrange(200, 999)}{rng.randrange(10000):04d}"
            return spoken_digits(digits, rng, (3, 3, 4)), "PHONE"
        digits = f"07{rng.randrange(100, 999)}{rng.randrange(100000, 999999)}"
        return spoken_digits(digits, rng, (5, 6)), "PHONE"
    if slot == "CARD":
        number = luhn_complete(rng.choice(["4", "51", "37", "6011"]), 16, rng)
        return rng.choice([grouped(number), number, grouped(number, sep="-")]), "CARD"
    if slot == "CARD_SPOKEN":
        number = luhn_complete("4", 16, rng)
        return spoken_digits(number, rng, (4, 4, 4, 4)), "CARD"
    if slot == "LAST4":
        return f"{rng.randrange(10000):04d}", "CARD"
    if slot == "LAST4_SPOKEN":
        return spoken_digits(f"{rng.randrange(10000):04d}", rng), "CARD"
    if slot == "SSN":
        a, g, s = rng.randrange(1, 665), rng.randrange(1, 99), rng.randrange(1, 9999)
        return rng.choice([f"{a:03d}-{g:02d}-{s:04d}", f"{a:03d} {g:02d} {s:04d}"]), "NATIONAL_ID"
    if slot == "SSN_SPOKEN":
        a, g, s = rng.randrange(1, 665), rng.randrange(1, 99), rng.randrange(1, 9999)
        return spoken_digits(f"{a:03d}{g:02d}{s:04d}", rng, (3, 2, 4)), "NATIONAL_ID"
    if slot == "NINO":
        letters = "ABCEGHJKLMNPRSTWXYZ"
        prefix = "BG"
        while prefix in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"):
            prefix = rng.choice(letters) + rng.choice(letters)
        digits = f"{rng.randrange(10**6):06d}"
        suffix = rng.choice("ABCD")
        return rng.choice(
            [
                f"{prefix}{digits}{suffix}",
                f"{prefix} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}",
            ]
        ), "NATIONAL_ID"
    if slot == "ADDRESS":
        n = rng.choice([rng.randrange(1, 99), rng.randrange(100, 9999)])
        street = f"{rng.choice(pool.streets)} {rng.choice(pool.suffixes)}"
        house = rng.choice([str(n), str(n), f"{n}B"])
        tail = rng.choice(["", "", f", {rng.choice(pool.cities)}", " NW", ", Apt 4"])
        return f"{house} {street}{tail}", "ADDRESS"
    if slot == "ADDRESS_SPOKEN":
        n = rng.choice([rng.randrange(1, 20), rng.randrange(100, 999)])
        street = f"{rng.choice(pool.streets)} {rng.choice(pool.suffixes)}"
        tail = rng.choice(["", f", {rng.choice(pool.cities)}"])
        return f"{house_number_words(n, rng)} {street}{tail}", "ADDRESS"
    if slot == "IBAN":
        value = _iban(pool, rng)
        return rng.choice([value, grouped(value)]), "IBAN"
    # ---- look-alikes: text that must stay --------------------------------------------------
    if slot == "PRODUCT":
        return rng.choice(
            [
                "Apple Pay",
                "Google Maps",
                "the Chase app",
                "Wells Fargo",
                "Alexa",
                "Venmo",
                "PayPal",
                "the Amazon app",
                "Microsoft Teams",
                "Samsung Pay",
                "Uber Eats",
                "Spotify",
                "the Jordan sneakers",
                "Disney Plus",
                "Ford dealership",
            ]
        ), None
    if slot == "PRICE":
        return rng.choice(
            [
                f"${rng.randrange(1, 99)}.{rng.randrange(100):02d}",
                "twenty dollars",
                f"{rng.randrange(2, 500)} dollars",
                "fifteen ninety nine",
                f"£{rng.randrange(5, 80)}",
                "forty nine ninety nine a month",
            ]
        ), None
    if slot == "DURATION":
        return rng.choice(
            [
                "five minutes",
                f"{rng.randrange(2, 9)} hours",
                "forty five minutes",
                "two weeks",
                "three days",
                "an hour and a half",
                f"{rng.randrange(10, 59)} minutes",
            ]
        ), None
    if slot == "COUNT":
        return rng.choice(
            [
                "three times",
                "1,000 users",
                "twice",
                f"{rng.randrange(3, 20)} times",
                "two or three people",
                "about 50 emails",
                "four separate calls",
            ]
        ), None
    if slot == "VERSION":
        return rng.choice(
            [
                "version 2.3.1",
                "iOS 17",
                "Android 14",
                "the 4.2 update",
                "version three",
                "Windows 11",
                "firmware 1.0.8",
            ]
        ), None
    if slot == "ORDER":
        return rng.choice(
            [
                f"order number {rng.randrange(10**7, 10**8)}",
                f"ticket {rng.randrange(1000, 99999)}",
                f"case number {rng.randrange(10**5, 10**6)}",
                f"order number {spoken_digits(str(rng.randrange(10**5, 10**6)), rng)}",
                f"confirmation code {rng.randrange(10**5, 10**6)}",
            ]
        ), None
    if slot == "DATE":
        return rng.choice(
            [
                "March 3rd",
                "last Tuesday",
                "on the 14th",
                "12/05/2023",
                "January 2024",
                "the twenty first of June",
                "yesterday at 3pm",
                "2024-02-11",
            ]
        ), None
    if slot == "PLACE":
        return f"{rng.choice(pool.streets)} {rng.choice(pool.suffixes)}", None
    raise KeyError(slot)


# ---- templates ---------------------------------------------------------------------------------

DEV_PII = [
    "Hi, my name is {NAME} and I'm calling about my account.",
    "My name's {FIRST}, I've been a customer for years.",
    "The agent {FIRST} was really rude to me.",
    "Please ask for {FIRST} next time, she sorted it out.",
    "I spoke to {NAME} yesterday and nothing happened.",
    "You can email me at {EMAIL} if you need anything.",
    "My email is {EMAIL_SPOKEN}, please write to me.",
    "Call me back on {PHONE}.",
    "My number is {PHONE_SPOKEN}.",
    "You can reach me at {PHONE} any time after five.",
    "I paid with my card {CARD} and it was charged twice.",
    "The card number is {CARD_SPOKEN}.",
    "It was the card ending in {LAST4}.",
    "They charged my visa ending in {LAST4_SPOKEN} again.",
    "My social security number is {SSN}, I had to read it out.",
    "They asked for my social, which is {SSN_SPOKEN}.",
    "My national insurance number is {NINO}.",
    "Send it to {ADDRESS}.",
    "I live at {ADDRESS_SPOKEN}.",
    "The delivery went to {ADDRESS} instead of my place.",
    "The refund should go to my IBAN {IBAN}.",
    "Thanks to {NAME} for the help.",
    "This is {NAME}, calling about the outage.",
    "I was helped by a guy called {FIRST}.",
    "{NAME} from your team promised a callback.",
]
DEV_NEUTRAL = [
    "I used {PRODUCT} to pay and it cost {PRICE}.",
    "I waited {DURATION} on hold.",
    "I called {COUNT} and nobody answered.",
    "After updating to {VERSION} the app crashes.",
    "My {ORDER} still hasn't arrived.",
    "It was supposed to come {DATE}.",
    "The shop on {PLACE} was closed.",
    "Honestly the service was great.",
    "Overall I'm happy with it but the app is slow.",
    "Please fix the login issue, it keeps logging me out.",
    "I tried {PRODUCT} but it didn't work.",
    "The agent was friendly and fixed it in {DURATION}.",
    "This is the third time this month.",
    "Ask for a refund, they said.",
    "I asked to speak to a manager.",
    "Mark my words, I'm cancelling.",
    "Will someone please call me back?",
]
HELD_PII = [
    "Hello, this is {NAME}, I have a billing question.",
    "I'm {NAME} and I want to complain.",
    "Your rep {FIRST} hung up on me twice.",
    "I talked with {FIRST} on the phone and she was lovely.",
    "Can {NAME} call me please.",
    "Reach me by email, {EMAIL}.",
    "Just email {EMAIL_SPOKEN} with the details.",
    "My mobile is {PHONE}.",
    "You can text me on {PHONE_SPOKEN} thanks.",
    "Phone number {PHONE}, call after six.",
    "Card number {CARD}, expiry next year.",
    "I read out my card, {CARD_SPOKEN}, and they still failed.",
    "The payment came off the card ending {LAST4}.",
    "My debit card ending with {LAST4_SPOKEN} was declined.",
    "Social security {SSN}.",
    "He wanted my SSN, {SSN_SPOKEN}, over the phone.",
    "NI number {NINO}.",
    "My address is {ADDRESS}.",
    "Deliver to {ADDRESS_SPOKEN} please.",
    "The parcel was left at {ADDRESS}.",
    "Transfer it to {IBAN} please.",
    "Big thanks to {FIRST} from support.",
    "The manager, {NAME}, never called back.",
]
HELD_NEUTRAL = [
    "It costs {PRICE} now, which is too much.",
    "Took {DURATION} to get through.",
    "I restarted it {COUNT}.",
    "Since {VERSION} everything is broken.",
    "Where is my {ORDER}?",
    "I ordered it {DATE}.",
    "The branch on {PLACE} is always busy.",
    "I love {PRODUCT}, but your app is terrible.",
    "The support team was quick and polite.",
    "This is ridiculous, I want my money back.",
    "I'm not happy with the new design.",
    "Can someone help me with the subscription?",
    "Paid with {PRODUCT}, no problems there.",
    "The update made the battery drain in {DURATION}.",
    "Grace period ended too soon.",
    "Bill me next month instead.",
]

_SLOT = re.compile(r"\{([A-Z_0-9]+)\}")


def transcript(pii: list[str], neutral: list[str], pool: Pool, rng: random.Random) -> dict:
    sentences = rng.sample(neutral, rng.randrange(1, 4))
    for _ in range(rng.choice([0, 1, 1, 1, 2])):
        sentences.insert(rng.randrange(len(sentences) + 1), rng.choice(pii))
    lower = rng.random() < 0.25
    # (text, personal-data type or None, whether a slot filled it)
    pieces: list[tuple[str, str | None, bool]] = []
    for i, sentence in enumerate(sentences):
        if i:
            pieces.append((" ", None, False))
        pos = 0
        for m in _SLOT.finditer(sentence):
            pieces.append((sentence[pos : m.start()], None, False))
            pieces.append((*fill(m.group(1), pool, rng), True))
            pos = m.end()
        pieces.append((sentence[pos:], None, False))
    text, spans = "", []
    for piece, kind, filled in pieces:
        if lower:
            piece = piece.lower()
            if not filled:  # Whisper drops punctuation around, not inside, "$4.99"
                piece = re.sub(r"[.,?!]", "", piece)
        if kind:
            spans.append({"type": kind, "start": len(text), "end": len(text) + len(piece)})
        text += piece
    return {"text": text, "spans": spans}


def build(name: str, pii, neutral, pool: Pool, n: int, seed: int) -> None:
    rng = random.Random(seed)
    lines, seen = [], set()
    while len(lines) < n:
        row = transcript(pii, neutral, pool, rng)
        if row["text"] not in seen:
            seen.add(row["text"])
            lines.append(json.dumps(row))
    (HERE / f"{name}.jsonl").write_text("\n".join(lines) + "\n")


# ---- by hand ----------------------------------------------------------------------------------

# Hand-written transcripts, personal data marked [[TYPE:text]]. Written before any was scored.
HAND_DEV = [
    "Yeah hi, um, this is [[PERSON:Jennifer Walsh]], I'm calling because the app logged me out again.",
    "so I rang on Tuesday and the lady, I think her name was [[PERSON:Donna]], said it would be fixed in 48 hours. It wasn't.",
    "My email's [[EMAIL:jen.walsh84@gmail.com]] if you want to send me the receipt.",
    "you can email me it's [[EMAIL:mike underscore b at hotmail dot com]]",
    "Please call me back at [[PHONE:617-555-0142]]. Thanks.",
    "my cell is [[PHONE:four one five, five five five, two six seven one]] and I'm free after 3pm",
    "The charge was on my Mastercard ending in [[CARD:8812]], forty nine ninety nine, and I never authorized it.",
    "I gave them my card number [[CARD:5555 5555 5555 4444]] over the phone and now I regret it.",
    "We moved to [[ADDRESS:48 Willowbrook Lane]] in March and the package still went to the old place.",
    "I live at [[ADDRESS:three fifteen Cedar Avenue, Dayton]], the driver never even knocked.",
    "The Uber driver took 25 minutes and charged me $32.50 for a 10 minute ride.",
    "I have been a Premium member for 3 years and I pay 12.99 a month.",
    "Version 5.2 broke notifications on my Pixel 7.",
    "Your store on Fifth Avenue was out of stock twice this week.",
    "Um, I don't know, like, the checkout just spins for 30 seconds and then fails.",
    "Shout out to [[PERSON:Marcus]] at the Denver branch, he was super helpful.",
    "I asked for [[PERSON:Tyler]] but they said he left the company.",
    "My husband [[PERSON:Robert]] set up the account, so it's under his name, [[PERSON:Robert Chen]].",
    "For the refund my bank details are [[IBAN:GB29 NWBK 6016 1331 9268 19]].",
    "my social is [[NATIONAL_ID:078-05-1121]] no wait I shouldn't say that",
    "I got a text from 22395 saying my order shipped, order number 88213477, but nothing came.",
    "Google Pay works fine, it's only Samsung Pay that fails with error 403.",
    "The Amazon Echo keeps saying the skill isn't responding. Tried 4 or 5 times.",
    "Hi, [[PERSON:Olivia Bennett]] here, I just wanted to say the new update is great.",
    "my name is [[PERSON:ahmed hassan]] and i want to cancel my subscription",
    "the guy i spoke to [[PERSON:steve]] told me to reinstall but that did nothing",
    "Can you send the invoice to [[EMAIL:accounts@brightsmile-dental.co.uk]] please.",
    "I've called your 1-800 number like six times, nobody picks up.",
    "The Chrome extension is at version 3.14.2 and still crashes.",
    "We have about 2,500 employees using this, so it's a big deal.",
    "On Main Street there's a billboard for you guys but the service doesn't match.",
    "Deliver it to [[ADDRESS:742 Evergreen Terrace]] please, not the office.",
    "My phone number changed, the new one is [[PHONE:+44 7700 900077]].",
    "The app says my card [[CARD:4000 0566 5566 5556]] is invalid but it works everywhere else.",
    "It's been 2 weeks and I'm still waiting on case 55102.",
    "We flew from Austin to Dallas and the Houston office never replied.",
    "The Tyler store and the Madison store both closed early.",
    "Jackson Hole was beautiful but your app lost my booking.",
    "The Victoria line was down so I was late.",
    "So basically [[PERSON:Carol]] from HR set it up.",
    "I upgraded to the iPhone 15 Pro Max and HBO Max stopped working.",
    "It arrived on May 5th, not in April, and the box was crushed.",
    "The guy at the counter, [[PERSON:Derek]], refunded me.",
    "My sister [[PERSON:Hope Williams]] has the same problem.",
    "i told my friend [[PERSON:jake miller]] about it",
    "Trying to reach Mr. [[PERSON:Patel]] in accounts.",
    "Dr. Pepper machine is broken.",
    "i'd like to speak with someone named [[PERSON:bob]]",
    "Customer since 2015, paid 1200 dollars last year.",
    "My flight AA 1234 was cancelled at gate 22.",
    "Room 415 had no hot water at the Hilton downtown.",
    "I called at 8:30 and again at 10:15, the line was busy.",
    "The model number is XPS 9310 and the serial is 7H2K9L1.",
    "The 3 bedroom apartment on Elm Street was great.",
    "I live on 5th Avenue near the park.",
    "Press 1 for billing, then 2, then 3, then 0 for an operator.",
    "Frank Ocean was playing in the store, loud.",
    "I'm Canadian and the app doesn't support French.",
    "I spoke to Support twice and to Sales once.",
    "My name is on the account but my wife pays.",
    "The Kindle Paperwhite shows Error 5 5 5.",
    "My email is [[EMAIL:john.smith at gmail.com]].",
    "It's [[EMAIL:J-O-H-N dot S-M-I-T-H at gmail dot com]].",
    "my email address is [[EMAIL:sarah underscore jones 1987 at hotmail dot co dot uk]]",
    "My number is [[PHONE:555-1234]], call after lunch.",
    "My phone number is [[PHONE:0 7 7 0 0 9 0 0 1 2 3]].",
    "Call me at [[PHONE:one eight hundred five five five one two one two]].",
    "Card number is [[CARD:4532-0151-1283-0366]], expiry 09/27.",
    "The last 4 digits of my card are [[CARD:9 9 0 1]].",
    "the last four of my social are [[NATIONAL_ID:6789]]",
    "Social is [[NATIONAL_ID:one two three, four five, six seven eight nine]].",
    "I'm at [[ADDRESS:10 Downing Street, London SW1A 2AA]].",
    "My address is [[ADDRESS:350 Fifth Avenue, New York, NY 10118]].",
    "we're at [[ADDRESS:1 Infinite Loop, Cupertino]]",
    "Hi this is Dr. [[PERSON:Anjali Mehta]] from the clinic.",
    "Hey, it's [[PERSON:Sam]]. Just wanted to say the app is great.",
    "My name is [[PERSON:José García]] and I can't log in.",
    "My name is [[PERSON:O'Brien]], [[PERSON:Sean O'Brien]].",
    "my name is [[PERSON:Mary-Jane Watson]]",
    "The agent's name was [[PERSON:Tiffany]].",
    "I worked with [[PERSON:Yusuf]] on this.",
    "Kudos to [[PERSON:Lakshmi]] in support.",
    "iban [[IBAN:g b two nine n w b k six zero one six one three three one nine two six eight one nine]]",
    "my ni number is [[NATIONAL_ID:a b one two three four five six c]]",
    "I want a b c d e f g, it's a kids app.",
    "Hi, it's me again. It's broken. Don't ask.",
]
HAND_HELD = [
    "Hi there, it's [[PERSON:Amanda Brooks]] again, I left a message yesterday.",
    "The representative, uh, [[PERSON:Carlos]] I think, was very patient with me.",
    "Email is [[EMAIL:a dot brooks at yahoo dot com]].",
    "reach me at [[EMAIL:tom.h@fastmail.com]] or on [[PHONE:312 555 0199]]",
    "my number's [[PHONE:nine one seven, five five five, oh one two three]]",
    "I paid with the Visa ending [[CARD:0004]] and got charged three times.",
    "card is [[CARD:three seven eight two eight two two four six three one zero zero zero five]]",
    "Ship it to [[ADDRESS:1209 North Orange Street]], that's our office.",
    "It costs 19.99 now, it was 14.99 last year. Not worth it.",
    "I've had the Galaxy S23 for 8 months and the battery is at 80 percent.",
    "We waited an hour and 15 minutes at the Oak Street location.",
    "Please stop calling me. I've asked 3 times.",
    "My daughter [[PERSON:Emma]] uses the kids profile and it keeps resetting.",
    "I talked to [[PERSON:Jessica]] in billing and she said the credit would show up in 5 to 7 business days.",
    "my IBAN is [[IBAN:DE89 3704 0044 0532 0130 00]] for the refund",
    "The SSN they have on file is wrong, it should be [[NATIONAL_ID:219-09-9999]].",
    "The Apple Watch app doesn't sync with the iPhone 15.",
    "I'm calling about ticket number 7734421.",
    "Netflix and Spotify both work, only your app buffers.",
    "Hello my name is [[PERSON:wei zhang]] i have problem with login",
    "Honestly [[PERSON:Brian]] from tech support was the only helpful person.",
    "I'm at [[ADDRESS:55 Maple Road, Apt 3B]] and the signal is terrible.",
    "Our company has 40 locations and uses 3 of your products.",
    "The price went up 10 percent in January.",
    "Thanks [[PERSON:Kelly]], you saved my weekend.",
    "call me on [[PHONE:020 7946 0018]] during office hours",
    "Firmware 2.0.1 bricked my router. Model number RX-3300.",
    "My wife and I both use it, we have 2 accounts.",
    "It took seven minutes to load the home screen on 4G.",
    "The lady at the front desk, [[PERSON:Maria Lopez]], was lovely.",
    "I tried calling [[PHONE:1-800-555-0199]] but it just rings.",
    "Send the replacement to [[ADDRESS:eighty eight Park Lane, London]].",
    "Twelve dollars for shipping is ridiculous.",
    "My account email is [[EMAIL:r.patel@company.io]] and the password reset never arrives.",
    "Chase bank flagged the payment as fraud and I had to call them.",
]

# Written after the detector was tuned, scored once, and not tuned on.
HAND_HELD_2 = [
    "Hi, my name is [[PERSON:Daniel Okafor]] and I've been waiting since Monday for a callback.",
    "okay so the technician [[PERSON:Luis]] came out and said the router was fine but it still drops every hour",
    "I'd like to say thank you to [[PERSON:Grace Kim]] who handled my claim.",
    "You can reach me on [[PHONE:(646) 555-0173]] or by email at [[EMAIL:dokafor@protonmail.com]].",
    "it's [[EMAIL:emily dot r dot jones at gmail dot com]] all lowercase",
    "My mobile is [[PHONE:07911 123456]] if anyone needs it.",
    "my number is [[PHONE:two oh six, five five five, oh one nine eight]]",
    "The charge hit my Amex ending in [[CARD:1005]] three times in one day.",
    "i read my card number out [[CARD:four five five six seven three seven five eight six eight nine nine eight five five]] and they still couldn't find the payment",
    "The debit card number is [[CARD:6011 0009 9013 9424]].",
    "For verification they asked my social, it's [[NATIONAL_ID:five two one, four four, nine eight two three]].",
    "We're at [[ADDRESS:2200 Mission College Boulevard, Santa Clara]], please send the technician there.",
    "my address is [[ADDRESS:seventy four oak street]] and the parcel went to seventy six",
    "Please update my address to [[ADDRESS:9 Queen's Road, Bristol]].",
    "The refund should go to [[IBAN:FR14 2004 1010 0505 0001 3M02 606]].",
    "It's been 3 weeks and 4 calls and I'm still being charged $79.99 a month.",
    "The app on version 8.4.1 keeps freezing when I open the camera.",
    "I drove 40 minutes to the store on Pine Street and it was closed.",
    "I bought 2 tickets for the 7:30 show and only got 1 confirmation email.",
    "Your chatbot told me to call 311, which is the city, not you.",
    "My order number is 1 1 2 2 3 3 4 4 and tracking says delivered.",
    "Apple Music and YouTube both play fine, just not your podcasts.",
    "The Jackson Street branch has a broken ATM again.",
    "We paid 1,250 dollars for the premium plan and got nothing premium.",
    "My son [[PERSON:Ethan]] plays on the account and the parental controls don't stick.",
    "Spoke with a supervisor named [[PERSON:Angela]] and she waived the fee, very kind.",
    "[[PERSON:Patricia Gomez]] from billing promised a refund in 5 business days.",
    "hi this is [[PERSON:john]] again calling about the same issue",
    "The guy on the phone, [[PERSON:Tony]], was clearly reading a script.",
    "Call me back at [[PHONE:+1 312 555 0147]], that's my work line.",
    "My NI number is [[NATIONAL_ID:JG 10 37 28 D]], they needed it for the claim.",
    "Please don't call my landline, use [[PHONE:415.555.0132]] instead.",
    "I live on Maple Avenue, the third house on the left.",
    "The bill went from 45 to 60 pounds with no warning.",
    "iOS 18 broke the widget, Android users say it's fine.",
    "Delivered to the wrong flat, number 12, should be 21.",
    "Took 2 and a half hours to get through to someone.",
    "My partner [[PERSON:Alex]] and I share the account.",
    "Send it to [[ADDRESS:16 Harbour View Drive, Apt 5]] please.",
    "The account is under [[EMAIL:bobsmith1975 at aol dot com]].",
]

_MARK = re.compile(r"\[\[([A-Z_]+):(.+?)\]\]")


def unmark(marked: str) -> dict:
    """``{"text", "spans"}`` of a transcript whose personal data is marked [[TYPE:text]]."""
    text, spans, pos = "", [], 0
    for m in _MARK.finditer(marked):
        text += marked[pos : m.start()]
        spans.append({"type": m[1], "start": len(text), "end": len(text) + len(m[2])})
        text += m[2]
        pos = m.end()
    return {"text": text + marked[pos:], "spans": spans}


def build_by_hand(name: str, marked: list[str]) -> None:
    lines = [json.dumps(unmark(line)) for line in marked]
    (HERE / f"{name}.jsonl").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    build("dev", DEV_PII, DEV_NEUTRAL, DEV, 300, seed=1)
    build("heldout", HELD_PII, HELD_NEUTRAL, HELD, 200, seed=2)
    build_by_hand("dev_hand", HAND_DEV)
    build_by_hand("heldout_hand", HAND_HELD)
    build_by_hand("heldout_hand2", HAND_HELD_2)
