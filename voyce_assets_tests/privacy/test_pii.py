"""The personal-data detector: each type found in written and spoken form and replaced by its
placeholder, look-alikes left as they are, offsets that point at the personal data, the
targets on the held-out set, and ``voyce redact`` as a user runs it."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
import time

import pytest

from voyce_assets.privacy.pii import (
    ENTITY_TYPES,
    PLACEHOLDERS,
    Entity,
    Redacted,
    find,
    redact,
)
from voyce_assets_tests.conftest import subprocess_env
from voyce_assets_tests.privacy.score import load, score

# (transcript, type, the personal data in it)
FOUND = [
    # names
    ("Hi, my name is Sarah Johnson and I'm calling about my bill.", "PERSON", "Sarah Johnson"),
    ("the agent Mike was rude to me", "PERSON", "Mike"),
    ("Next time ask for Priya, she knew what to do.", "PERSON", "Priya"),
    ("my name is priya sharma and the app keeps crashing", "PERSON", "priya sharma"),
    ("I spoke to Daniel Lee yesterday.", "PERSON", "Daniel Lee"),
    ("thanks to kevin patel for the help", "PERSON", "kevin patel"),
    ("The manager, Greg Scott, never called back.", "PERSON", "Greg Scott"),
    # emails
    ("Email me at john.smith@gmail.com please.", "EMAIL", "john.smith@gmail.com"),
    ("my email is john dot smith at gmail dot com", "EMAIL", "john dot smith at gmail dot com"),
    (
        "it's j smith underscore 42 at outlook dot co dot uk thanks",
        "EMAIL",
        "j smith underscore 42 at outlook dot co dot uk",
    ),
    ("Write to sarahj at yahoo dot com.", "EMAIL", "sarahj at yahoo dot com"),
    # eSpeak's "jane dot miller at gmail dot com" as tiny.en wrote it, the "at" run together
    ("You can email me at jain.mileratgmail.com.", "EMAIL", "jain.mileratgmail.com"),
    # ... and after "email me at", however garbled, when it still looks like an address
    (
        "Please email me at eason.hand and0 at loopin.nampl.",
        "EMAIL",
        "eason.hand and0 at loopin.nampl",
    ),
    (
        "Please email me at un-renot-rosy one at northwind not in Numple.",
        "EMAIL",
        "un-renot-rosy one at northwind not in Numple",
    ),
    # phones
    ("You can call me on 555-104-11-505-125.", "PHONE", "555-104-11-505-125"),
    ("Call me back on +1 (555) 123-4567.", "PHONE", "+1 (555) 123-4567"),
    ("my number is 555-123-4567", "PHONE", "555-123-4567"),
    (
        "my number is five five five one two three four five six seven",
        "PHONE",
        "five five five one two three four five six seven",
    ),
    (
        "It's oh seven seven zero zero, nine double eight one two three.",
        "PHONE",
        "oh seven seven zero zero, nine double eight one two three",
    ),
    ("Reach me on +44 20 7946 0958 after six.", "PHONE", "+44 20 7946 0958"),
    # cards
    ("I paid with 4242 4242 4242 4242 and got charged twice", "CARD", "4242 4242 4242 4242"),
    ("card number 4111111111111111", "CARD", "4111111111111111"),
    (
        "the card is four two four two four two four two four two four two four two four two",
        "CARD",
        "four two four two four two four two four two four two four two four two",
    ),
    ("It was the card ending in four two four two.", "CARD", "four two four two"),
    ("They charged my visa ending 4242 again", "CARD", "4242"),
    ("the last four digits are 1881", "CARD", "1881"),
    ("expiry next year and the CVV is 123", "CARD", "123"),
    ("the security code is seven four one", "CARD", "seven four one"),
    # national ids
    ("My social security number is 123-45-6789.", "NATIONAL_ID", "123-45-6789"),
    (
        "my social is one two three four five six seven eight nine",
        "NATIONAL_ID",
        "one two three four five six seven eight nine",
    ),
    ("National insurance number AB 12 34 56 C.", "NATIONAL_ID", "AB 12 34 56 C"),
    # addresses
    ("Send it to 221B Baker Street please.", "ADDRESS", "221B Baker Street"),
    ("I live at twelve Elm Street, Springfield.", "ADDRESS", "twelve Elm Street, Springfield"),
    ("It went to 1600 Pennsylvania Avenue NW.", "ADDRESS", "1600 Pennsylvania Avenue NW"),
    ("deliver to four twenty two maple drive", "ADDRESS", "four twenty two maple drive"),
    ("The parcel was left at 15 Kings Road, Apt 4.", "ADDRESS", "15 Kings Road, Apt 4"),
    # IBANs
    ("My IBAN is GB82 WEST 1234 5698 7654 32.", "IBAN", "GB82 WEST 1234 5698 7654 32"),
    ("transfer it to DE89370400440532013000 please", "IBAN", "DE89370400440532013000"),
    (
        "iban g b two nine n w b k six zero one six one three three one nine two six eight one nine",
        "IBAN",
        "g b two nine n w b k six zero one six one three three one nine two six eight one nine",
    ),
    # and the rest
    (
        "my ni number is a b one two three four five six c",
        "NATIONAL_ID",
        "a b one two three four five six c",
    ),
    ("I'm at 10 Downing Street, London SW1A 2AA.", "ADDRESS", "10 Downing Street, London SW1A 2AA"),
    ("My name is José García and I can't log in.", "PERSON", "José García"),
    ("my name is Mary-Jane Watson", "PERSON", "Mary-Jane Watson"),
    ("The last 4 digits of my card are 9 9 0 1.", "CARD", "9 9 0 1"),
    ("Visa ending in 8812, forty nine ninety nine a month", "CARD", "8812"),
    # a card, an SSN, a phone after a word that names an order or a booking is still one
    (
        "they charged my card for the booking 4111 1111 1111 1111",
        "CARD",
        "4111 1111 1111 1111",
    ),
    ("I paid for the order 4111 1111 1111 1111", "CARD", "4111 1111 1111 1111"),
    ("the policy holder SSN 123-45-6789", "NATIONAL_ID", "123-45-6789"),
    ("the reservation was under 555-123-4567", "PHONE", "555-123-4567"),
    # PINs, passcodes and security codes are secrets of the card
    ("my pin is 4821", "CARD", "4821"),
    ("the passcode was 931177", "CARD", "931177"),
    ("the code on the back is 123", "CARD", "123"),
    # a hesitation inside a number; a quarter spelled out, then the town, state and ZIP
    ("my number is 555, uh, 123, 4567", "PHONE", "555, uh, 123, 4567"),
    (
        "It went to 1600 Pennsylvania Avenue Northwest, Washington, DC 20500.",
        "ADDRESS",
        "1600 Pennsylvania Avenue Northwest, Washington, DC 20500",
    ),
    ("send it to 12 oak road southeast, leeds", "ADDRESS", "12 oak road southeast, leeds"),
]

# Look-alikes: nothing here is personal data, and nothing may change.
KEPT = [
    "I paid with Apple Pay and Google Maps took me to the wrong store.",
    "The Chase app and Wells Fargo both worked, Alexa did not.",
    "It cost $4.99, then twenty dollars, now 15 dollars a month.",
    "After version 2.3.1 and iOS 17 the app crashes on Android 14.",
    "I waited five minutes, then 2 hours, then forty five minutes on hold.",
    "I called three times, we have 1,000 users and about 50 emails a day.",
    "My order number 1234567890 still hasn't arrived, ticket 48213 is open.",
    "It was supposed to come on March 3rd, 12/05/2023, or 2024-02-11.",
    "The shop on Baker Street was closed and the branch on Main Street is busy.",
    "Mark my words, I'm cancelling. Will someone please call me back?",
    "Grace period ended too soon. Bill me next month instead.",
    "This is ridiculous, I asked to speak to a manager and ask for a refund.",
    "Honestly the agent was friendly and fixed it in ten minutes.",
    "I'm not happy, this is the third time this month.",
    "i called support twice and spoke to customer service, they said call back later",
    "We flew from Austin to Dallas and the Denver branch never replied.",
    "It arrived on May 5th, not in April. Dr. Pepper machine is broken.",
    "I upgraded to the iPhone 15 Pro Max and HBO Max stopped working.",
    "Press 1 for billing, then 2, then 3. I want a b c d e f g, it's a kids app.",
    "The help pages on voyce.com and shop.example.org were useless.",
    "My email is not working since 2 days and my email is at the bottom of the page, sorry.",
    "Email me at your earliest convenience. I called 3 times about order 55512345.",
]


@pytest.mark.parametrize(("text", "kind", "personal"), FOUND)
def test_each_type_is_found_and_replaced_by_its_placeholder(text, kind, personal):
    result = redact(text)
    spans = [(e.type, text[e.start : e.end]) for e in result.entities]
    assert (kind, personal) in spans, spans
    assert personal not in result.text
    assert PLACEHOLDERS[kind] in result.text
    # Nothing around it was taken: the text before and after the span is kept as it was.
    before, _, after = text.partition(personal)
    assert result.text == f"{before}{PLACEHOLDERS[kind]}{after}"


def test_every_type_is_covered_written_and_spoken():
    kinds = {kind for _, kind, _ in FOUND}
    assert kinds == set(ENTITY_TYPES)
    spoken = {kind for _, kind, p in FOUND if not any(c.isdigit() for c in p)}
    assert {"EMAIL", "PHONE", "CARD", "NATIONAL_ID", "ADDRESS"} <= spoken


@pytest.mark.parametrize("text", KEPT)
def test_look_alikes_stay(text):
    assert find(text) == []
    assert redact(text).text == text
    assert redact(text.lower()).text == text.lower()


@pytest.mark.parametrize("lower", [False, True], ids=["as-written", "lowercase"])
def test_offsets_point_at_the_personal_data_and_do_not_overlap(lower):
    # One long transcript: capitalised (where Whisper capitalises names) or all lowercase.
    cased = [(t, p) for t, _, p in FOUND if lower or t != t.lower()]
    if lower:
        cased = [(t.lower(), p.lower()) for t, p in cased]
    text = " ".join(t for t, _ in cased)
    entities = find(text)
    personal = [p for _, p in cased]
    assert [text[e.start : e.end] for e in entities] == personal
    assert entities == sorted(entities)
    assert all(a.end <= b.start for a, b in itertools.pairwise(entities))
    # The redacted text is the input with each span swapped for its placeholder.
    result = redact(text)
    rebuilt, last = "", 0
    for e in result.entities:
        rebuilt += text[last : e.start] + PLACEHOLDERS[e.type]
        last = e.end
    assert result.text == rebuilt + text[last:]
    assert result.entities[0].as_dict() == {
        "type": entities[0].type,
        "start": entities[0].start,
        "end": entities[0].end,
    }


def test_every_labelled_transcript_gives_sorted_disjoint_spans_that_rebuild_the_redaction():
    for row in load("all"):
        for text in (row["text"], row["text"].lower(), row["text"].upper()):
            result = redact(text)
            spans = result.entities
            assert all(0 <= e.start < e.end <= len(text) for e in spans)
            assert all(a.end <= b.start for a, b in itertools.pairwise(spans))
            assert all(text[e.start : e.end].strip() == text[e.start : e.end] for e in spans)
            rebuilt, last = "", 0
            for e in spans:
                rebuilt += text[last : e.start] + PLACEHOLDERS[e.type]
                last = e.end
            assert result.text == rebuilt + text[last:]


def test_one_span_per_piece_of_personal_data_the_longest_wins():
    # The IBAN's digits alone would make a card number or a phone; the email holds a name.
    text = "IBAN GB82 WEST 1234 5698 7654 32, email sarah dot johnson at gmail dot com"
    assert [e.type for e in find(text)] == ["IBAN", "EMAIL"]


def test_checksums_decide_numbers():
    assert find("I typed 4242 4242 4242 4241 twice") == []  # Luhn fails
    assert find("I typed 4242 4242 4242 4242 twice")[0].type == "CARD"
    assert find("IBAN GB82 WEST 1234 5698 7654 33") == []  # check digits fail
    assert find("it was 666-12-3456") == []  # no SSN has area 666
    assert [e.type for e in find("it was 123-45-6789")] == ["NATIONAL_ID"]


def test_empty_and_plain_text():
    assert find("") == []
    assert redact("").text == ""
    assert redact("The app is great.") == Redacted("The app is great.", ())
    assert isinstance(find("my name is Sarah Johnson")[0], Entity)


def test_redacting_twice_changes_nothing_more():
    """A redacted text holds no personal data left to find, placeholders included."""
    for row in load("all"):
        for text in (row["text"], row["text"].lower()):
            once = redact(text).text
            assert redact(once).text == once, (text, once)


def test_pieces_run_together_are_all_found_in_one_pass():
    """A span can hide its neighbour from the rules that read context (an SSN right after an
    IBAN after a name): what one redaction leaves, a second would find nothing more in. Every
    three pieces of personal data of FOUND, run together, in a seeded sample."""
    rng = random.Random(23)
    pieces = [p for _, _, p in FOUND]
    for _ in range(1500):
        text = "my name is " + " ".join(rng.sample(pieces, 3))
        once = redact(text)
        assert redact(once.text).text == once.text, (text, once.text)
        assert all(a.end <= b.start for a, b in itertools.pairwise(once.entities))


def test_order_and_ticket_numbers_right_after_their_word_stay():
    for text in (
        "order number 1234567890",
        "my confirmation number is 5551234567",
        "booking reference 5551234567, flight 1234",
        "the tracking number was 9400 1000 0000 0000 0000 00",
    ):
        assert find(text) == [], text


def _random_text(rng: random.Random, size: int) -> str:
    pieces = [
        *[
            "the",
            "my",
            "at",
            "dot",
            "is",
            "card",
            "number",
            "one",
            "hundred",
            "and",
            "double",
            "oh",
            "street",
            "road",
            "pin",
        ],
        *[
            "a",
            "b",
            "c",
            "i",
            "o",
            "gb82",
            "4111",
            "555",
            "123-45-6789",
            "@",
            ".",
            ",",
            "'",
            "d'1a",
            "o'5g",
            "-",
            "+",
            "(",
            ")",
            "#",
            "$",
            "221b",
        ],
        "email me at",
        "\n",
        "José",
        "’",
    ]
    out, length = [], 0
    while length < size:
        piece = rng.choice(pieces) if rng.random() < 0.8 else str(rng.randrange(10**6))
        out.append(piece)
        length += len(piece) + 1
    return " ".join(out)[:size]


HOSTILE = [
    "",
    " ",
    "...,,,!!!???",
    "-" * 500,
    "I'm at d'1a Main Street",
    "it's o'5g now",
    "one hundred and " * 1200,
    "'1a '2b x'3c Street",
]


def test_hostile_input_never_raises_and_gives_disjoint_sorted_spans():
    rng = random.Random(20261207)
    texts = HOSTILE + [_random_text(rng, 20_000) for _ in range(3)]
    texts += [_random_text(rng, 300) for _ in range(300)]
    for text in texts:
        spans = find(text)
        assert all(0 <= e.start < e.end <= len(text) for e in spans), text[:80]
        assert all(a.end <= b.start for a, b in itertools.pairwise(spans)), text[:80]
        assert redact(text).entities == tuple(spans)


# Whisper's repetition loops and other degenerate text, each 20,000 characters.
PATHOLOGICAL = {
    "repeated word": "I " * 10_000,
    "repeated email cue": "email me at " * 2_000,
    "dotted letters": "a." * 10_000,
    "at signs": "a@" * 10_000,
    "letters one by one": "a b " * 5_000,
    "hundreds": "one hundred and " * 1_250,
    "digits": "1 " * 10_000,
    "spoken domain": "x at gmail dot " * 1_400,
}


def _seconds(text: str) -> float:
    began = time.perf_counter()
    find(text)
    return time.perf_counter() - began


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_input_takes_about_as_long_as_a_normal_transcript(name):
    text = PATHOLOGICAL[name][:20_000]
    rng = random.Random(7)
    feedback = [
        "the",
        "app",
        "was",
        "slow",
        "and",
        "I",
        "called",
        "support",
        "twice",
        "about",
        "my",
        "order",
        "it",
        "crashed",
    ]
    normal = " ".join(rng.choice(feedback) for _ in range(5_000))[: len(text)]
    find(normal)  # name lists loaded
    baseline = min(_seconds(normal) for _ in range(2))
    took = min(_seconds(text) for _ in range(2))
    # Linear inputs take a few times a normal transcript; the quadratic ones took seconds.
    assert took <= max(1.0, 40 * baseline), (name, took, baseline)


def test_importing_the_detector_pulls_no_model_library():
    code = (
        "import sys, voyce_assets.privacy.pii as p; p.redact('my name is Sarah, 555-123-4567');"
        "print(sorted(m for m in ('spacy', 'torch', 'presidio_analyzer', 'tldextract')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env()
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---- the labelled set ---------------------------------------------------------------------


def test_the_held_out_set_meets_the_targets():
    s = score(load("heldout"), find)
    assert s.gold >= 150
    assert s.recall >= 0.95, s.misses
    assert s.damage <= 0.02, s.false


def test_ordinary_feedback_keeps_its_text():
    """The text stage's feedback examples (written for the sentiment classifier): nothing
    but a few staff names is personal data there, and the redactor takes almost nothing."""
    from voyce_assets_tests.bench.bench_pii import feedback_examples

    texts = feedback_examples()
    found = [(t, e) for t in texts for e in find(t)]
    assert len(texts) > 1000
    assert {e.type for _, e in found} <= {"PERSON"}
    taken = sum(e.end - e.start for _, e in found)
    assert taken <= 0.001 * sum(len(t) for t in texts)
    assert ("PERSON", "Priya") in {(e.type, t[e.start : e.end]) for t, e in found}
    lowered = [(t, e) for t in map(str.lower, texts) for e in find(t)]
    assert {e.type for _, e in lowered} <= {"PERSON"}
    assert sum(e.end - e.start for _, e in lowered) <= taken


def test_the_scorer_can_fail():
    rows = load("heldout")
    nothing = score(rows, lambda text: [])
    assert nothing.recall == 0 and nothing.damage == 0
    everything = score(rows, lambda text: [Entity(0, len(text), "PERSON")] if text else [])
    assert everything.recall == 1 and everything.damage == 1
    half = score(rows, lambda text: [e for e in find(text) if e.type != "PHONE"])
    assert half.recall < score(rows, find).recall


def test_the_sets_are_labelled_consistently():
    for row in load("all"):
        text = row["text"]
        for span in row["spans"]:
            assert span["type"] in ENTITY_TYPES
            piece = text[span["start"] : span["end"]]
            assert piece == piece.strip() and piece, row


# ---- voyce redact ------------------------------------------------------------------------


def test_voyce_redact_writes_one_json_line_per_input_line(tmp_path):
    lines = [
        "My name is Sarah Johnson, call me on 555-123-4567.",
        "",
        "I paid $4.99 with Apple Pay.",
        "my email is john dot smith at gmail dot com",
    ]
    path = tmp_path / "t.txt"
    path.write_text("\n".join(lines) + "\n")
    run = [sys.executable, "-m", "voyce_assets.cli", "redact", "--file"]
    out = subprocess.run([*run, str(path)], capture_output=True, text=True, env=subprocess_env())
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == len(lines)
    assert rows[0]["redacted_text"] == "My name is [PERSON], call me on [PHONE]."
    assert [(e["type"], lines[0][e["start"] : e["end"]]) for e in rows[0]["entities"]] == [
        ("PERSON", "Sarah Johnson"),
        ("PHONE", "555-123-4567"),
    ]
    assert rows[1] == {"redacted_text": "", "entities": []}
    assert rows[2] == {"redacted_text": lines[2], "entities": []}
    assert rows[3]["redacted_text"] == "my email is [EMAIL]"
    # stdin
    piped = subprocess.run(
        [*run, "-"], input=lines[3], capture_output=True, text=True, env=subprocess_env()
    )
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout) == rows[3]
