"""Spoken forms as Whisper writes them: the words of a transcript with their offsets, and
the runs of numbers in it ("five five five, one two three", "oh seven seven double eight",
"555-123-4567", "four twenty two") read as the digits they say.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from voyce_assets.privacy.names import words

# A word: letters (any alphabet) and digits, with an apostrophe's ending ("O'Brien", "I'm").
_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)?|[^\w\s]|_")

DIGITS = {
    "zero": "0", "oh": "0", "o": "0", "nought": "0", "nil": "0",
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
TEENS = {
    "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
    "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19",
}  # fmt: skip
TENS = {
    "twenty": "2", "thirty": "3", "forty": "4", "fourty": "4", "fifty": "5", "sixty": "6",
    "seventy": "7", "eighty": "8", "ninety": "9",
}  # fmt: skip
REPEAT = {"double": 2, "triple": 3}
_NUMBER_WORDS = frozenset({*DIGITS, *TEENS, *TENS, *REPEAT})
_SMALL = (set(DIGITS) - {"oh", "o", "zero", "nought", "nil"}) | set(TEENS) | set(TENS)
# What may stand between two numbers of one run: spaces, and - , ( ) . without a space
# after the dot (a dot and a space end a sentence).
_GAP = re.compile(r"^(?:\s*[-,()/]?\s*|\.)$")
_GAP_WORDS = {"dash", "hyphen"}
# Hesitations Whisper writes inside a number ("555, uh, 123, 4567"): crossed like a comma.
_FILLERS = frozenset({"uh", "um", "er", "erm", "uhm", "umm", "uhh", "ah", "hmm"})
_FILLER = re.compile(r"\b(?:" + "|".join(sorted(_FILLERS)) + r")\b", re.IGNORECASE)


def _gap(text: str) -> str:
    """The text between two numbers as a number may cross it: 'dash' a dash, fillers gone
    (with the commas round them one comma)."""
    text = text.replace("dash", "-")
    if _FILLER.search(text):
        text = re.sub(r"\s*,[\s,]*", ", ", _FILLER.sub(" ", text))
        text = re.sub(r"\s+", " ", text)
    return text


class Token:
    """A word (letters and digits, with an apostrophe's ending) or one punctuation mark."""

    __slots__ = ("end", "low", "start", "text", "word")

    def __init__(self, start: int, end: int, text: str):
        self.start, self.end, self.text = start, end, text
        low = text.lower().replace("’", "'")
        self.low = low if low.isascii() else _folded(low)
        self.word = text[0].isalnum()

    def __repr__(self) -> str:
        return f"Token({self.start}, {self.end}, {self.text!r})"


def _folded(low: str) -> str:
    """Accents dropped ("garcía" -> "garcia"), as the name lists spell names."""
    return "".join(c for c in unicodedata.normalize("NFKD", low) if not unicodedata.combining(c))


def tokens(text: str) -> list[Token]:
    return [Token(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]


@dataclass(frozen=True)
class Run:
    """Consecutive numbers: ``digits`` as said, tokens ``first..last`` (inclusive)."""

    start: int
    end: int
    digits: str
    first: int
    last: int
    spoken: bool  # at least one number said in words
    groups: tuple[int, ...]  # digits per written group ("555-123-4567": 3, 3, 4)
    seps: str  # the separators between written groups
    ends: tuple[tuple[int, int], ...]  # (digits so far, char end) after each number

    def end_of_digit(self, count: int) -> int | None:
        """Where the run's first ``count`` digits end, if a number ends there."""
        return next((end for n, end in self.ends if n == count), None)


def _number_at(toks: list[Token], i: int, hundreds: bool = True) -> tuple[str, int, bool] | None:
    """The digits that the words from ``i`` say and the index after them, or None. After
    "hundred (and)" only a number below a hundred may follow (``hundreds`` false), so the
    depth is bounded whatever the text ("one hundred and one hundred and ...")."""
    t = toks[i].low
    if t.isdigit():
        return t, i + 1, False
    nxt = toks[i + 1].low if i + 1 < len(toks) else ""
    if t in REPEAT and nxt in DIGITS:
        return DIGITS[nxt] * REPEAT[t], i + 2, True
    if t in TEENS:
        return TEENS[t], i + 1, True
    if t in TENS:
        if nxt in DIGITS and nxt not in ("oh", "o", "zero", "nought", "nil"):
            return TENS[t] + DIGITS[nxt], i + 2, True
        return TENS[t] + "0", i + 1, True
    if t in DIGITS:
        if nxt == "hundred":
            if not hundreds:
                return None
            # "three hundred (and) twelve": one number, as a house number is said.
            k = i + 2
            if k + 1 < len(toks) and toks[k].low == "and":
                k += 1
            rest = (
                _number_at(toks, k, hundreds=False)
                if k < len(toks) and toks[k].low in _SMALL
                else None
            )
            if rest is not None and len(rest[0]) <= 2:
                return str(int(DIGITS[t]) * 100 + int(rest[0])), rest[1], True
            return DIGITS[t] + "00", i + 2, True
        return DIGITS[t], i + 1, True
    return None


def _starts_run(toks: list[Token], i: int) -> bool:
    """'o', 'oh', 'nil' are digits only beside another number ("oh seven seven")."""
    if toks[i].low not in ("o", "oh", "nil"):
        return True
    return i + 1 < len(toks) and _number_at(toks, i + 1) is not None


def runs(text: str, toks: list[Token]) -> list[Run]:
    """Every run of numbers in ``text``; a leading ``+`` or ``(`` belongs to its run."""
    out, i, n = [], 0, len(toks)
    while i < n:
        low = toks[i].low
        if not (low in _NUMBER_WORDS or low.isdigit()) or not _starts_run(toks, i):
            i += 1
            continue
        got = _number_at(toks, i)
        if got is None:
            i += 1
            continue
        first, digits, spoken = i, [got[0]], got[2]
        groups, seps = [len(got[0])] if not got[2] else [], ""
        j, last = got[1], got[1] - 1
        ends = [(len(got[0]), toks[last].end)]
        while j < n:
            k = j
            # Skip a gap: punctuation tokens or 'dash'; it must be one a number may cross.
            while k < n and (
                not toks[k].word or toks[k].low in _GAP_WORDS or toks[k].low in _FILLERS
            ):
                k += 1
            if k >= n or not _GAP.match(_gap(text[toks[last].end : toks[k].start])):
                break
            nxt = _number_at(toks, k)
            if nxt is None:
                break
            gap = text[toks[last].end : toks[k].start]
            digits.append(nxt[0])
            spoken = spoken or nxt[2]
            if not nxt[2]:
                groups.append(len(nxt[0]))
                seps += gap.strip()[:1] or " "
            last, j = nxt[1] - 1, nxt[1]
            ends.append((ends[-1][0] + len(nxt[0]), toks[last].end))
        start = toks[first].start
        if start > 0 and text[start - 1] in "+(":
            start -= 1
            if start > 0 and text[start - 1] == "+":
                start -= 1
        out.append(Run(start, toks[last].end, "".join(digits), first, last, spoken,
                       tuple(groups), seps, tuple(ends)))  # fmt: skip
        i = j
    return out


# ---- spoken email ------------------------------------------------------------------------

TLDS = frozenset(
    words("com net org edu gov io co uk us ca au de fr es it nl ie in info biz me ai app dev tv")
)
PROVIDERS = frozenset(
    words("gmail googlemail yahoo hotmail outlook icloud aol protonmail proton msn gmx yandex zoho")
)
_DOTS = {"dot", "period", "."}
_JOINS = {"dot", "period", "underscore", "dash", "hyphen", "plus", ".", "_", "-", "+"}
# Words that end the local part when read backwards from "at".
_NOT_LOCAL = frozenset(
    words("""
is it its it's email e mail address my me at to the send sent use using try was reach
contact write on by via and or please just is: your his her their our id account
""")
)


def _piece(word: str) -> bool:
    """A letter or a number, which may stand beside another piece of an address."""
    return len(word) == 1 or word.isdigit() or word in DIGITS or word in TENS or word in TEENS


def _label(tok: Token) -> bool:
    return tok.word and tok.low not in _JOINS


def spoken_emails(toks: list[Token]) -> list[tuple[int, int]]:
    """Char spans of emails said aloud: 'john dot smith at gmail dot com'."""
    found = []
    for i, tok in enumerate(toks):
        if tok.low != "at" or i == 0 or i + 1 >= len(toks):
            continue
        # The domain: labels joined by "dot"; it ends on a top-level domain, or is a mail
        # provider's name.
        j, end, labels = i + 1, None, []
        while j < len(toks) and _label(toks[j]):
            labels.append(toks[j].low)
            if len(labels) > 1 and toks[j].low in TLDS:
                end = j
            if j + 2 < len(toks) and (toks[j + 1].low in _DOTS or toks[j + 1].low == "-"):
                j += 2
                continue
            break
        if end is None and labels and labels[0] in PROVIDERS:
            end = i + 1
        if end is None:
            continue
        # The local part, read backwards: labels, joined by "dot"/"underscore"/..., or
        # letters and numbers said one by one ("j smith underscore 42").
        k, begin = i - 1, None
        while k >= 0 and toks[k].word and toks[k].low not in _NOT_LOCAL:
            if toks[k].low in _JOINS:
                break
            begin = k
            prev = toks[k - 1] if k else None
            if prev is not None and prev.low in _JOINS and k >= 2 and toks[k - 2].word:
                if toks[k - 2].low in _NOT_LOCAL:
                    break
                k -= 2
                continue
            # Bare pieces: a single letter or a number beside its neighbour.
            if (
                prev is not None
                and prev.word
                and prev.low not in _NOT_LOCAL
                and (_piece(prev.low) or _piece(toks[k].low))
            ):
                k -= 1
                continue
            break
        if begin is not None:
            found.append((toks[begin].start, toks[end].end))
    return found


# ---- letters and digits said one by one ------------------------------------------------------


# The longest thing said one character at a time that is looked for: an IBAN (34).
SPELLED_MAX = 34


def spelled(toks: list[Token]) -> list[tuple[int, list[tuple[str, int]]]]:
    """Runs that start with two letters said one by one ("g b two nine n w b k six ..."):
    each as (char start, [(the characters so far, uppercase; char end) after each piece])."""
    out, i, n = [], 0, len(toks)
    while i + 1 < n:
        if not (_letter(toks[i]) and _letter(toks[i + 1])):
            i += 1
            continue
        start, chars, ends, j = toks[i].start, "", [], i
        while j < n and toks[j].word:
            t = toks[j]
            if _letter(t) or (len(t.low) <= 4 and t.low.isalnum() and t.low.isascii()):
                if t.low in _NUMBER_WORDS:
                    got = _number_at(toks, j)
                    chars, j = chars + got[0], got[1]
                else:
                    chars, j = chars + t.low.upper(), j + 1
            elif (got := _number_at(toks, j)) is not None:
                chars, j = chars + got[0], got[1]
            else:
                break
            ends.append((chars, toks[j - 1].end))
            if len(chars) >= SPELLED_MAX:
                break
        out.append((start, ends))
        i = max(j, i + 1)
    return out


def _letter(t: Token) -> bool:
    return len(t.low) == 1 and t.low.isalpha() and t.low.isascii()
