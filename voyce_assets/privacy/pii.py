"""Personal data in a transcript: what is found (typed spans) and the text with each span
replaced by its type's placeholder (``[EMAIL]``, ``[PHONE]`` ...).

Local and offline. Transcripts come from Whisper, so the spoken forms count as much as the
written ones ("john dot smith at gmail dot com", digits said one by one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
VERSION = "pii/0"


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


_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")


def find(text: str) -> list[Entity]:
    """The personal data of ``text``: sorted, non-overlapping spans."""
    return [Entity(m.start(), m.end(), "EMAIL") for m in _EMAIL.finditer(text or "")]


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
