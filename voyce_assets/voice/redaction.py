"""Personal data in a transcript, in its text and in its audio.

A transcription row keeps what was said (``transcription_text``), the same text with each
piece of personal data replaced by its placeholder (``redacted_text``, ``privacy.pii``), and
where each piece is (``pii_entities``): its characters in the text and, from Whisper's word
timestamps, the seconds of the recording that said it. Those seconds are silenced in the
processed copy (``audio.normalize.silence``). The entity's own text is never stored again.

``Transcriber.redact_pii`` (``VOYCE_REDACT_PII``) turns all of it off for a deployment that
must: the row then says ``redaction = 'off'`` and nothing is redacted or silenced.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from voyce_assets.privacy import pii
from voyce_assets.voice.whisper.scoring import Word

OFF = "off"
# Whisper's word times are good to a tenth of a second or so (tiny models less): the span is
# widened by this much each side, so the edges of a word are silenced too.
PAD_SECONDS = 0.2
# How far past the cursor a word is looked for in the text: a few characters of spacing or
# punctuation the segment text has and the words do not.
_SLACK = 16


def label(enabled: bool) -> str:
    """What ``redaction`` holds for rows made with redaction ``enabled`` (or not)."""
    return pii.VERSION if enabled else OFF


def word_offsets(text: str, words: Sequence[Word]) -> list[tuple[int, int] | None]:
    """Where each word is in ``text`` (start, end characters), or None when it is not found.

    The text is not always the words joined (segments are stripped and joined with spaces,
    a word may carry punctuation the text spells otherwise): each word is looked for from
    where the previous one ended, within a short stretch, so a word never matches a later
    occurrence of itself far ahead.
    """
    out: list[tuple[int, int] | None] = []
    cursor = 0
    folded = text.casefold()
    for word in words:
        token = word.text.strip()
        if not token:
            out.append(None)
            continue
        window_end = cursor + len(token) + _SLACK
        found = text.find(token, cursor, window_end)
        if found < 0:
            found = folded.find(token.casefold(), cursor, window_end)
        if found < 0:
            out.append(None)
            continue
        out.append((found, found + len(token)))
        cursor = found + len(token)
    return out


def audio_span(
    start: int,
    end: int,
    words: Sequence[Word],
    offsets: Sequence[tuple[int, int] | None],
    seconds: float,
    pad: float = PAD_SECONDS,
) -> tuple[float, float]:
    """The seconds of the recording that said characters ``start:end`` of the text.

    The words overlapping those characters, padded by ``pad`` and clamped to the clip. When
    no word overlaps (a word the text spells differently), the stretch between the words
    either side; when no word was placed at all, the whole clip: in doubt, more is silenced,
    never less.
    """
    inside = [w for w, o in zip(words, offsets, strict=True) if o and o[0] < end and o[1] > start]
    if inside:
        first, last = min(w.start for w in inside), max(w.end for w in inside)
    else:
        placed = [(w, o) for w, o in zip(words, offsets, strict=True) if o]
        if not placed:
            return 0.0, seconds
        before = [w.end for w, o in placed if o[1] <= start]
        after = [w.start for w, o in placed if o[0] >= end]
        first = max(before) if before else 0.0
        last = min(after) if after else seconds
    return max(0.0, _ms_down(first - pad)), min(seconds, _ms_up(last + pad))


def fields(text: str | None, words: Sequence[Word], seconds: float, enabled: bool) -> dict:
    """A transcription row's ``redacted_text``, ``pii_entities`` (JSON) and ``redaction``."""
    if not enabled:
        return {"redacted_text": None, "pii_entities": None, "redaction": OFF}
    if text is None:  # no transcript: nothing to redact
        return {"redacted_text": None, "pii_entities": None, "redaction": label(True)}
    redacted = pii.redact(text)
    offsets = word_offsets(text, words)
    entities = []
    for entity in redacted.entities:
        audio_start, audio_end = audio_span(entity.start, entity.end, words, offsets, seconds)
        entities.append({**entity.as_dict(), "audio_start": audio_start, "audio_end": audio_end})
    return {
        "redacted_text": redacted.text,
        "pii_entities": json.dumps(entities),
        "redaction": label(True),
    }


def spans(pii_entities: str | None) -> list[tuple[float, float]]:
    """The audio spans (start, end seconds) of a row's ``pii_entities``."""
    if not pii_entities:
        return []
    return [(e["audio_start"], e["audio_end"]) for e in json.loads(pii_entities)]


def _ms_down(t: float) -> float:
    return math.floor(t * 1000) / 1000


def _ms_up(t: float) -> float:
    return math.ceil(t * 1000) / 1000
