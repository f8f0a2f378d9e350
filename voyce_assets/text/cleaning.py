"""Cleaned transcript text and its statistics (the enhanced_transcriptions columns)."""

from __future__ import annotations

import re
import unicodedata

_FILLERS = re.compile(r"\b(?:um+|uh+|uhm+|erm+|hmm+)\b[,.]?\s*", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_SENTENCES = re.compile(r"[^.!?]+(?:[.!?]+|$)")
_WORDS = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def clean_text(text: str | None) -> str:
    """Unicode-normalized, spoken fillers dropped, whitespace collapsed."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text)
    text = _FILLERS.sub("", text)
    return _SPACE.sub(" ", text).strip()


def text_stats(text: str) -> dict[str, float | int]:
    words = _WORDS.findall(text)
    sentences = [s for s in _SENTENCES.findall(text) if _WORDS.search(s)]
    return {
        "word_count": len(words),
        "sentence_count": len(sentences),
        "avg_word_length": round(sum(map(len, words)) / len(words), 3) if words else 0.0,
        "unique_word_count": len({w.lower() for w in words}),
    }
