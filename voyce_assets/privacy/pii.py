"""Personal data in a transcript: what is found (typed spans) and the text with each span
replaced by its type's placeholder (``[EMAIL]``, ``[PHONE]`` ...).

Local and offline. Transcripts come from Whisper, so the spoken forms count as much as the
written ones ("john dot smith at gmail dot com", digits said one by one). Numbers are read as
runs of digits (``spoken.py``) and told apart by length, checksum and the words around them;
names by cue words ("my name is", "the agent ...") and the census name lists (``names.py``).
What looks like personal data but is not stays: prices, durations, counts, versions, order,
ticket and case numbers (they name an order, not a person), dates, products and companies,
streets named without a house number. See docs/privacy.md.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from voyce_assets.privacy import names as _n
from voyce_assets.privacy.names import words
from voyce_assets.privacy.spoken import Run, Token, runs, spelled, spoken_emails, tokens

# What the redactor looks for, and the placeholder each becomes.
ENTITY_TYPES: tuple[str, ...] = (
    "PERSON",
    "EMAIL",
    "PHONE",
    "CARD",
    "NATIONAL_ID",
    "ADDRESS",
    "IBAN",
)
PLACEHOLDERS: dict[str, str] = {t: f"[{t}]" for t in ENTITY_TYPES}
# Changes whenever what is found changes: rows redacted by another version are redone.
VERSION = "pii/2"


@dataclass(frozen=True, order=True)
class Entity:
    """One span of personal data: ``text[start:end]`` is of ``type``."""

    start: int
    end: int
    type: str

    def as_dict(self) -> dict:
        return {"type": self.type, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class Redacted:
    text: str
    entities: tuple[Entity, ...]


# One span per piece of personal data: the longest wins, and of equal ones the most specific.
_RANK = {
    t: i
    for i, t in enumerate(("IBAN", "EMAIL", "CARD", "NATIONAL_ID", "PHONE", "ADDRESS", "PERSON"))
}

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
# An address Whisper ran together, its "at" fused to a mail provider's domain
# ("jane.milleratgmail.com"): only the big providers, so a website ("shopat.example.com",
# "voyce.com") is never taken for one.
_FUSED_EMAIL = re.compile(
    r"\b[\w.+-]{1,64}at(?:gmail|googlemail|yahoo|hotmail|outlook|live|icloud|aol|proton(?:mail)?"
    r"|gmx|mail|yandex|zoho)\.(?:com|net|org|me|co\.uk|de|fr|ca)\b",
    re.IGNORECASE,
)
_IBAN = re.compile(r"\b[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{1,4}){3,8}")
# UK National Insurance number: two letters (not D F I Q U V; O not second; not BG GB KN NK
# NT TN ZZ), six digits, A-D.
_NINO = re.compile(
    r"\b(?!bg|gb|kn|nk|nt|tn|zz)[a-ceghj-pr-tw-z][a-ceghj-npr-tw-z] ?\d{2} ?\d{2} ?\d{2} ?[a-d]\b",
    re.IGNORECASE,
)

_TWO_LETTERS = re.compile(r"\b[A-Za-z] [A-Za-z]\b")  # where letters are said one by one
_CARD_WORDS = frozenset(words("card visa mastercard amex debit credit cc"))
_CVV_WORDS = frozenset(words("cvv cvc cv2 cvv2 csc"))
_SSN_WORDS = frozenset(words("social ssn security"))
_PHONE_WORDS = frozenset(
    words("number phone mobile cell call text reach contact dial extension ext landline whatsapp")
)
# Numbers that name an order, ticket, case ... not a person: kept, when the number follows
# the word directly or after one of _REFERENCE_LINKS ("order number is 1234567890"; not "the
# reservation was under 555-123-4567"). Cards and SSNs with a cue are found before this.
_REFERENCE_WORDS = frozenset(
    words("""order ticket case confirmation reference ref tracking invoice receipt transaction
    booking reservation model serial version flight room claim policy""")
)
_REFERENCE_LINKS = frozenset(words("number no nr num id code is was"))
# A PIN or passcode: a secret of the card (or the account), never to be kept.
_PIN_WORDS = frozenset(words("pin passcode pincode"))
# "the card ending in 4242", "the last four digits of my card are 4242"
_ENDING_WORDS = frozenset(words("ending ends"))
_LAST_FOUR = frozenset(words("four 4"))


def _last_four_cue(before: list[str]) -> bool:
    """'ending (in)' just before, or 'last four' among the eight words before."""
    if _ENDING_WORDS & set(before[-2:]):
        return True
    tail = before[-8:]
    return any(w == "last" and tail[k + 1] in _LAST_FOUR for k, w in enumerate(tail[:-1]))


def _security_code_cue(before: list[str]) -> bool:
    """'CVV', 'CVC', 'security code' among the three words before, or 'the code on the back
    (is)' among the eight."""
    tail = before[-4:]
    return (
        bool(_CVV_WORDS & set(tail[-3:]))
        or any(a == "security" and b == "code" for a, b in itertools.pairwise(tail))
        or any(
            a == "code" and before[k + 1 : k + 4] == ["on", "the", "back"]
            for k, a in enumerate(before)
        )
    )


def _reference(before: list[str]) -> bool:
    """Whether the number names an order, ticket ...: a reference word among the three words
    before, with only 'number', 'is' ... between it and the number."""
    for w in reversed(before[-3:]):
        if w in _REFERENCE_WORDS:
            return True
        if w not in _REFERENCE_LINKS:
            return False
    return False


_TITLES = frozenset(words("mr mrs ms dr"))  # "Mr. Patel": the dot ends no sentence


def _words_before(toks: list[Token], i: int, n: int) -> list[str]:
    """The n words before token i (lowercase), commas skipped, stopping at a sentence end."""
    out, k = [], i - 1
    while k >= 0 and len(out) < n:
        t = toks[k]
        if t.word:
            out.append(t.low)
        elif t.text not in ",-:" and not (t.text == "." and k and toks[k - 1].low in _TITLES):
            break
        k -= 1
    return out[::-1]


def _luhn(digits: str) -> bool:
    from stdnum import luhn

    return luhn.is_valid(digits)


def _possible_phone(digits: str, plus: bool) -> bool:
    import phonenumbers

    try:
        if plus:
            number = phonenumbers.parse("+" + digits)
        elif digits.startswith("0"):
            number = phonenumbers.parse(digits, "GB")
        else:
            number = phonenumbers.parse(digits, "US")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_possible_number(number)


def _numbers(text: str, toks: list[Token], found: list[Run]) -> list[Entity]:
    """Phones, cards, the last four of a card, SSNs among the runs of numbers."""
    out = []
    for r in found:
        digits, n = r.digits, len(r.digits)
        before = _words_before(toks, r.first, 8)
        near = set(before)
        after = toks[r.last + 1].low if r.last + 1 < len(toks) else ""
        if after in _n.MEASURES or text[max(0, r.start - 1) : r.start] in ("$", "£", "€"):
            continue
        if _last_four_cue(before) and (end := r.end_of_digit(4)):
            # The last four of a card: personal in that context. Numbers said after them
            # ("ending in 8812, forty nine ninety nine") are not part of it.
            kind = "NATIONAL_ID" if near & _SSN_WORDS else "CARD"
            out.append(Entity(r.start, end, kind))
            continue
        if n in (3, 4) and _security_code_cue(before):
            # A card's security code: never to be kept (PCI DSS), whatever its length says.
            out.append(Entity(r.start, r.end, "CARD"))
            continue
        if 3 <= n <= 8 and _PIN_WORDS & set(before[-3:]):
            out.append(Entity(r.start, r.end, "CARD"))
            continue
        # A card or an SSN is personal even after "order", "booking", "policy" ...
        if 13 <= n <= 19 and _luhn(digits):
            out.append(Entity(r.start, r.end, "CARD"))
            continue
        if n == 9 and near & _SSN_WORDS:
            out.append(Entity(r.start, r.end, "NATIONAL_ID"))
            continue
        if _reference(before):
            continue
        if 13 <= n <= 19 and near & _CARD_WORDS and n in (15, 16):
            out.append(Entity(r.start, r.end, "CARD"))
        elif n == 9 and r.groups == (3, 2, 4) and _valid_ssn(digits):
            out.append(Entity(r.start, r.end, "NATIONAL_ID"))
        elif text[r.start] == "+":
            if 8 <= n <= 15 and _possible_phone(digits, plus=True):
                out.append(Entity(r.start, r.end, "PHONE"))
        elif (
            (n == 10 and digits[0] != "1")
            or (n == 11 and digits[0] in "01")
            or (7 <= n <= 12 and near & _PHONE_WORDS)
        ) and _possible_phone(digits, plus=False):
            out.append(Entity(r.start, r.end, "PHONE"))
        elif 7 <= n <= 15 and set(before[-4:]) & _PHONE_WORDS:
            # Said right after "call me on", "my number is": a phone number, even one Whisper
            # grouped wrongly or heard a digit too many in ("555-104-11-505-125").
            out.append(Entity(r.start, r.end, "PHONE"))
    return out


def _valid_ssn(digits: str) -> bool:
    from stdnum.us import ssn

    return ssn.is_valid(digits)


def _ibans(text: str) -> list[Entity]:
    """IBANs with or without spaces, their check digits and country format valid."""
    out = []
    for m in _IBAN.finditer(text):
        chars = [i for i, c in enumerate(m.group(), m.start()) if c != " "]
        compact = "".join(text[i] for i in chars)
        for k in range(len(compact), 14, -1):  # the longest valid prefix that ends a word
            if _valid_iban(compact[:k]) and (
                chars[k - 1] + 1 == len(text) or not text[chars[k - 1] + 1].isalnum()
            ):
                out.append(Entity(m.start(), chars[k - 1] + 1, "IBAN"))
                break
    return out


_POSTCODE = re.compile(r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}\b", re.IGNORECASE)  # UK: "SW1A 2AA"
_HOUSE = re.compile(r"\b\d{1,5}[A-Za-z]\b")  # "221B"


def _spelled(toks: list[Token]) -> list[Entity]:
    """IBANs and NI numbers said letter by letter and digit by digit."""
    out = []
    for start, ends in spelled(toks):
        for chars, end in reversed(ends):
            if len(chars) >= 15 and _valid_iban(chars):
                out.append(Entity(start, end, "IBAN"))
                break
            if len(chars) == 9 and _NINO.fullmatch(chars):
                out.append(Entity(start, end, "NATIONAL_ID"))
                break
    return out


def _valid_iban(compact: str) -> bool:
    from stdnum import iban

    return iban.is_valid(compact)


def _addresses(text: str, toks: list[Token], found: list[Run], cased: bool) -> list[Entity]:
    """A house number (written, "221B", or said), a street name and its kind, then perhaps a
    direction, a flat, a town, a state and a ZIP code."""
    starts = [(r.first, r.last, r.start) for r in found if len(r.digits) <= 5]
    if _HOUSE.search(text):
        at = {t.start: i for i, t in enumerate(toks)}
        # Only where a token starts: "d'1a" holds a match that starts mid-token.
        houses = [(at.get(m.start()), m.start()) for m in _HOUSE.finditer(text)]
        starts += [(i, i, start) for i, start in houses if i is not None]
    out = []
    for _first, last, start in starts:
        j, name = last + 1, 0
        while j < len(toks) and name <= 3:
            t = toks[j]
            if not t.word or t.low in _n.STOP or t.low in _n.MEASURES:
                break
            if name and t.low in _n.STREET_SUFFIXES:
                break
            if cased and not (t.text[0].isupper() or t.text[0].isdigit()):
                break
            name, j = name + 1, j + 1
        if not name or j >= len(toks) or toks[j].low not in _n.STREET_SUFFIXES:
            continue
        out.append(Entity(start, toks[_address_tail(text, toks, j, cased)].end, "ADDRESS"))
    return out


def _address_tail(text: str, toks: list[Token], end: int, cased: bool) -> int:
    """The index of the address's last token, from its street kind (``end``) on."""

    def at(k: int) -> Token | None:
        return toks[k] if k < len(toks) else None

    t = at(end + 1)
    # "NW" (capitals in cased text), or "Northwest" spelled out (capitalised).
    if t and (
        (t.low in _n.DIRECTIONS and len(t.low) <= 2 and (t.text.isupper() or not cased))
        or (t.low in _n.QUARTERS and (t.text[0].isupper() or not cased))
    ):
        end += 1
    # A flat: "Apt 4", "unit 12B", "# 3", after a comma or not.
    k = end + 1
    kk = k + 1 if at(k) and at(k).text == "," else k
    t, u = at(kk), at(kk + 1)
    if (
        t
        and u
        and u.word
        and ((t.low in _n.UNIT_WORDS and any(c.isdigit() for c in u.low)) or t.text == "#")
    ):
        end = kk + 1
        k = end + 1
    # A town after a comma: capitalised words, or one word of a lowercase transcript.
    if at(k) and at(k).text == ",":
        k += 1
        taken = 0
        while (t := at(k)) and t.word and t.low.isalpha() and taken < 3:
            if t.low in _n.STOP and t.low not in _n.TOWN_WORDS:
                break
            if cased and not t.text[0].isupper():
                break
            if t.low in _n.MEASURES or t.low in _n.BRANDS:
                break
            end, k, taken = k, k + 1, taken + 1
            # Lowercase: one word, or two where the first is "new", "san", "fort" ...
            if not cased and (taken == 2 or t.low not in _n.TOWN_WORDS):
                break
        if taken:
            # A state and a ZIP code.
            if at(k) and at(k).text == ",":
                k += 1
            t, u = at(k), at(k + 1)
            zip_next = u is not None and u.low.isdigit() and len(u.low) == 5
            if t and len(t.text) == 2 and t.text.isalpha() and (t.text.isupper() or zip_next):
                end, k = k, k + 1
            t = at(k)
            if t and t.low.isdigit() and len(t.low) == 5:
                end = k
            elif t and (m := _POSTCODE.match(text, t.start)):
                while k + 1 < len(toks) and toks[k + 1].end <= m.end():
                    k += 1
                end = k
    return end


# ---- names ------------------------------------------------------------------------------

# Cues before a name, by how much they prove. ANY: whatever word follows is a name (when not
# an ordinary word). CUE: a name from the lists follows, or (capitalised text) any capitalised
# word. SELF ("I'm", "this is"): only a name from the lists.
_ANY = {("my", "name", "is"), ("my", "name's"), ("name", "is"), ("name's",), ("named",),
        ("call", "me"), ("mr",), ("mrs",), ("ms",), ("dr",), ("mister",), ("names",),
        ("name", "was")}  # fmt: skip
_CUE = {("called",), ("ask", "for"), ("asked", "for"), ("asking", "for"), ("agent",), ("rep",),
        ("representative",), ("advisor",), ("adviser",), ("technician",), ("tech",),
        ("manager",), ("supervisor",), ("thanks", "to"), ("thank", "you"), ("thanks",),
        ("helped", "by"), ("assisted", "by"), ("served", "by"), ("out", "to"), ("hi",),
        ("hello",), ("dear",), ("miss",), ("colleague",), ("driver",), ("husband",),
        ("wife",), ("son",), ("daughter",), ("partner",), ("friend",), ("boss",), ("sister",),
        ("brother",), ("mother",), ("father",), ("mom",), ("mum",), ("dad",), ("uncle",),
        ("aunt",), ("worked", "with"), ("kudos", "to"), ("credit", "to"), ("props", "to"),
        ("dealt", "with"), ("neighbour",), ("neighbor",), ("cousin",), ("nurse",), ("doctor",)}  # fmt: skip
for _verb in ("speak", "spoke", "spoken", "speaking", "talk", "talked", "talking", "chat",
              "chatted", "chatting"):  # fmt: skip
    _CUE |= {(_verb, "to"), (_verb, "with")}
_SELF = {("this", "is"), ("i'm",), ("im",), ("i", "am"), ("it's",), ("it", "is")}
_CUE_ENDS = frozenset(c[-1] for c in _ANY | _CUE | _SELF)


def _cue(toks: list[Token], i: int) -> str | None:
    before = _words_before(toks, i, 3)
    for size in (3, 2, 1):
        tail = tuple(before[-size:])
        if len(tail) < size:
            continue
        if tail in _ANY:
            return "ANY"
        if tail in _CUE:
            return "CUE"
        if tail in _SELF:
            return "SELF"
    return None


def _hyphened(toks: list[Token], j: int) -> bool:
    """Whether a hyphen joins word j to the next word, no space either side."""
    if j + 2 >= len(toks) or toks[j + 1].text != "-":
        return False
    dash, after = toks[j + 1], toks[j + 2]
    return dash.start == toks[j].end and after.start == dash.end and _alpha(after.low)


def _alpha(low: str) -> bool:
    """Letters, perhaps with an apostrophe ("o'brien")."""
    return low.replace("'", "").isalpha()


def _capitalised(t: Token) -> bool:
    return t.text[0].isupper()


def _streetlike(toks: list[Token], i: int) -> bool:
    """A word that names a street or follows a house number ("Lincoln Way", "12 Baker")."""
    nxt = toks[i + 1].low if i + 1 < len(toks) else ""
    if nxt in _n.STREET_SUFFIXES:
        return True
    if i + 2 < len(toks) and toks[i + 1].word and toks[i + 2].low in _n.STREET_SUFFIXES:
        return True
    return i > 0 and toks[i - 1].low.isdigit()


def _surname(low: str, last: frozenset[str]) -> bool:
    low = low.replace("'", "")  # "o'brien": the census writes OBRIEN
    return low in last and (low not in _n.AMBIGUOUS or low in _n.SURNAMES_TOO)


def _followed_by_surname(text: str, toks: list[Token], i: int, last: frozenset[str]) -> bool:
    nxt = toks[i + 1] if i + 1 < len(toks) else None
    return nxt is not None and text[toks[i].end : nxt.start] == " " and _surname(nxt.low, last)


def _between_commas(toks: list[Token], i: int) -> bool:
    """A word set off by commas ("the guy at the counter, derek, refunded me")."""
    return 0 < i < len(toks) - 1 and toks[i - 1].text == "," and toks[i + 1].text == ","


_DETERMINERS = frozenset(words("the a an this that these those our your their its every each"))


def _bare_name(
    text: str, toks: list[Token], i: int, cased: bool, ambiguous: bool, last: frozenset[str]
) -> bool:
    """Whether a given name with no cue before it is a person: not a place ("the Denver
    branch", "flew to Austin") nor a month ("the first of June"); capitalised (in lowercase
    text: a surname after it, or commas round it); a name that is also a word ("Carol",
    "Mark") only mid-sentence."""
    t = toks[i]
    prev = toks[i - 1] if i else None
    nxt = toks[i + 1] if i + 1 < len(toks) else None
    if t.low in _n.PLACES or t.low in _n.MONTHS or (prev and prev.low in _DETERMINERS):
        return False
    if nxt and nxt.low in _n.PLACE_NOUNS:
        return False
    if not cased:
        return not ambiguous and (
            _followed_by_surname(text, toks, i, last) or _between_commas(toks, i)
        )
    if not _capitalised(t) or (len(t.text) > 1 and t.text.isupper()):  # "HOA": an acronym
        return False
    if not ambiguous:
        return True
    # Mid-sentence after a lowercase word: not a sentence's first word, not in a title
    # ("HBO Max", "Pro Max").
    return prev is not None and prev.word and not _capitalised(prev)


def _persons(text: str, toks: list[Token], cased: bool) -> list[Entity]:
    first, last = _n.first_names(), _n.last_names()
    out, i = [], 0
    while i < len(toks):
        t = toks[i]
        low = t.low
        if not t.word or low in _n.STOP or not _alpha(low):
            i += 1
            continue
        listed = low in first
        cap = _capitalised(t)
        # Neither a listed name nor capitalised: only a cue just before makes it a name.
        if not listed and not (cased and cap) and not set(_words_before(toks, i, 1)) & _CUE_ENDS:
            i += 1
            continue
        if _streetlike(toks, i):
            i += 1
            continue
        cue = _cue(toks, i)
        ambiguous = low in _n.AMBIGUOUS
        brand = low in _n.BRANDS
        if cue == "ANY":
            ok = (cap or not cased) and not brand
        elif cue == "CUE":
            # Lowercase: a listed name; one that is also a word needs a surname after it.
            ok = (
                (cap and not brand)
                if cased
                else (listed and (not ambiguous or _followed_by_surname(text, toks, i, last)))
            )
        elif cue == "SELF":
            ok = (listed or (ambiguous and cased and cap)) and (cap or not cased)
            ok = ok and low not in _n.MONTHS  # "it is april"
        else:
            ok = listed and _bare_name(text, toks, i, cased, ambiguous, last)
        if not ok:
            i += 1
            continue
        # Surnames (and middle names) that follow.
        j, more = i, 0
        while j + 1 < len(toks) and more < 2:
            nxt = toks[j + 1]
            if _hyphened(toks, j):  # "Mary-Jane"
                j += 2
                continue
            if text[toks[j].end : nxt.start] != " " or not nxt.word or not _alpha(nxt.low):
                break
            if nxt.low in _n.STOP or nxt.low in _n.BRANDS or _streetlike(toks, j + 1):
                break
            if cased and not _capitalised(nxt):
                break
            if not cased and not _surname(nxt.low, last):
                break
            j, more = j + 1, more + 1
        out.append(Entity(t.start, toks[j].end, "PERSON"))
        i = j + 1
    return out


# "email me at ...", "my email address is ...": what follows, to the end of the clause, is
# the address however Whisper heard it ("eason.hand and0 at loopin.nampl") when it looks like
# one (a dot inside a word, an @, "at X dot" with "dot" often heard as "not");
# "email me at your convenience" stays.
_EMAIL_CUE = re.compile(
    r"\b(?:e-?mail(?:ed)?(?: me)?(?: back)?(?: at| to| on)|my e-?mail(?: address)? is"
    r"|e-?mail address is)\s+",
    re.IGNORECASE,
)
_CLAUSE_END = re.compile(r"[.!?](?=\s|$)|[,;:!?]|\s(?:and|but|or|so|because)\s|$")
_ADDRESS_LIKE = re.compile(r"\w\.\w|@|\bat\s+\S+\s+(?:dot|not)\s+\S", re.IGNORECASE)
_ADDRESS_PIECE = re.compile(r"\w\.\w|@")
# The domain's last part, one or two words as heard ("not in Numple" for "dot example"),
# never a courtesy after it.
_AFTER_DOT = re.compile(
    r"\b(?:dot|not)\s+(?!(?:please|thanks|thank|asap|today|now|soon)\b)[^\s,;!?]+"
    r"(?:\s+(?!(?:please|thanks|thank|asap|today|now|soon)\b)[^\s,;!?]+)?",
    re.IGNORECASE,
)
_CUED_WINDOW = 200


def _cued_emails(text: str) -> list[Entity]:
    out = []
    for cue in _EMAIL_CUE.finditer(text):
        start = cue.end()
        # Within a bounded window: a cue repeated thousands of times stays linear.
        end = _CLAUSE_END.search(text, start, start + _CUED_WINDOW).start()
        span = text[start:end].rstrip()
        if not span or len(span.split()) > 8 or not _ADDRESS_LIKE.search(span):
            continue
        # Up to the last piece that looks like part of an address, or the word after the
        # last "dot" ("... please" is not part of it).
        ends = [p.end() for p in re.finditer(r"\S+", span) if _ADDRESS_PIECE.search(p.group())]
        ends += [m.end() for m in _AFTER_DOT.finditer(span)]
        out.append(Entity(start, start + max(ends), "EMAIL"))
    return out


def _emails(text: str, toks: list[Token]) -> list[Entity]:
    out = (
        [Entity(m.start(), m.end(), "EMAIL") for m in _EMAIL.finditer(text)] if "@" in text else []
    )
    if " at " in text.lower():
        out += [Entity(s, e, "EMAIL") for s, e in spoken_emails(toks)]
    out += [Entity(m.start(), m.end(), "EMAIL") for m in _FUSED_EMAIL.finditer(text)]
    if "mail" in text.lower():
        out += _cued_emails(text)
    return out


def _resolve(found: list[Entity]) -> list[Entity]:
    """One span per piece of personal data: the longest first, then the most specific."""
    kept: list[Entity] = []
    for e in sorted(found, key=lambda e: (e.start - e.end, _RANK[e.type], e.start)):
        if all(e.end <= k.start or e.start >= k.end for k in kept):
            kept.append(e)
    return sorted(kept)


def _find_once(text: str) -> list[Entity]:
    if not text:
        return []
    toks = tokens(text)
    cased = any(c.isupper() for c in text)
    numbers = runs(text, toks)
    found = _emails(text, toks) + _ibans(text)
    found += [Entity(m.start(), m.end(), "NATIONAL_ID") for m in _NINO.finditer(text)]
    found += _numbers(text, toks, numbers)
    if _TWO_LETTERS.search(text):
        found += _spelled(toks)
    found += _addresses(text, toks, numbers, cased)
    found += _persons(text, toks, cased)
    return _resolve(found)


# Passes over the text with what was found replaced: a span can hide its neighbour from the
# rules that read context (an IBAN run into a name, an SSN right after an IBAN), and the
# redacted text must hold nothing a second look would find.
_PASSES = 3


def find(text: str) -> list[Entity]:
    """The personal data of ``text``: sorted, non-overlapping spans."""
    entities = _find_once(text)
    for _ in range(_PASSES - 1):
        redacted, where = _replaced(text, entities)
        more = [e for e in _find_once(redacted) if redacted[e.start : e.end] not in _PLACED]
        if not more:
            break
        entities = _resolve(entities + [_in_original(e, where) for e in more])
    return entities


_PLACED = frozenset(PLACEHOLDERS.values())


def _replaced(text: str, entities: list[Entity]) -> tuple[str, list[tuple[int, int, int, int]]]:
    """``text`` with ``entities`` replaced by placeholders, and for each placeholder its
    (start, end) in the new text and the (start, end) it replaced."""
    out, where, last, pos = [], [], 0, 0
    for e in entities:
        out.append(text[last : e.start])
        pos += e.start - last
        placeholder = PLACEHOLDERS[e.type]
        out.append(placeholder)
        where.append((pos, pos + len(placeholder), e.start, e.end))
        pos += len(placeholder)
        last = e.end
    out.append(text[last:])
    return "".join(out), where


def _in_original(e: Entity, where: list[tuple[int, int, int, int]]) -> Entity:
    """A span found in the replaced text, in the original's characters (a span that takes in
    a placeholder takes in what it replaced)."""

    def back(pos: int, is_end: bool) -> int:
        shift = 0
        for new_start, new_end, old_start, old_end in where:
            if pos < new_start or (is_end and pos == new_start):
                break
            if pos < new_end or (is_end and pos == new_end):
                return old_end if is_end else old_start
            shift = old_end - new_end
        return pos + shift

    return Entity(back(e.start, False), back(e.end, True), e.type)


def redact(text: str) -> Redacted:
    """``text`` with every span of personal data replaced by its placeholder."""
    entities = find(text)
    out, last = [], 0
    for e in entities:
        out.append(text[last : e.start])
        out.append(PLACEHOLDERS[e.type])
        last = e.end
    out.append(text[last:])
    return Redacted("".join(out), tuple(entities))
