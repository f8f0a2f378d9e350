"""Word-level cues: VADER's polarity, an emotion lexicon, and the contrast/negation counts the
classifier uses beside the sentence embedding."""

from __future__ import annotations

import functools
import re

import numpy as np

WORD = re.compile(r"[a-z']+")

# Emotion -> word prefixes. Written for customer feedback: the emotions a support team acts on.
EMOTIONS: dict[str, tuple[str, ...]] = {
    "anger": (
        "angry",
        "furious",
        "livid",
        "outrag",
        "pissed",
        "rage",
        "hate",
        "ridiculous",
        "unacceptable",
        "scam",
        "disgrac",
        "wtf",
        "rip off",
        "ripoff",
        "insult",
    ),
    "frustration": (
        "frustrat",
        "annoy",
        "irritat",
        "fed up",
        "sick of",
        "tired of",
        "waste",
        "useless",
        "keeps",
        "again and again",
        "still not",
        "still no",
        "nothing works",
        "smh",
        "ugh",
    ),
    "disappointment": (
        "disappoint",
        "let down",
        "expected better",
        "unfortunately",
        "sadly",
        "shame",
        "regret",
        "not what i expected",
        "meh",
        "underwhelm",
    ),
    "joy": (
        "love",
        "happy",
        "glad",
        "delight",
        "awesome",
        "amazing",
        "fantastic",
        "wonderful",
        "brilliant",
        "excellent",
        "great",
        "yay",
    ),
    "gratitude": ("thank", "grateful", "appreciat", "cheers", "kudos", "shout out"),
    "satisfaction": (
        "satisf",
        "pleased",
        "smooth",
        "easy",
        "works well",
        "worked well",
        "perfect",
        "no complaints",
        "reliable",
        "quick",
        "fast",
    ),
    "confusion": (
        "confus",
        "unclear",
        "don't understand",
        "dont understand",
        "no idea",
        "how do i",
        "how can i",
        "what does",
        "makes no sense",
        "idk",
        "lost track",
    ),
    "anxiety": (
        "worried",
        "worry",
        "concern",
        "nervous",
        "anxious",
        "scared",
        "afraid",
        "fraud",
        "stolen",
        "hacked",
        "urgent",
        "emergency",
    ),
    "surprise": ("surpris", "unexpected", "shocked", "wow", "can't believe", "cant believe"),
}

CONTRAST = ("but", "however", "although", "though", "except", "yet", "otherwise", "while")
NEGATIONS = (
    "not",
    "no",
    "never",
    "nothing",
    "nobody",
    "none",
    "cannot",
    "can't",
    "don't",
    "doesn't",
    "didn't",
    "won't",
    "isn't",
    "wasn't",
    "aren't",
    "dont",
    "doesnt",
    "didnt",
    "wont",
    "isnt",
    "wasnt",
    "cant",
)


@functools.cache
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def vader(text: str) -> dict[str, float]:
    """VADER's neg/neu/pos/compound scores of ``text``."""
    return _vader().polarity_scores(text)


def emotions(text: str, limit: int = 3) -> list[str]:
    """Emotions whose cues occur in ``text``, most cued first."""
    lowered = " " + " ".join(WORD.findall(text.lower())) + " "
    hits = {}
    for emotion, cues in EMOTIONS.items():
        count = sum(lowered.count(" " + cue) for cue in cues)
        if count:
            hits[emotion] = count
    return [e for e, _ in sorted(hits.items(), key=lambda kv: (-kv[1], kv[0]))][:limit]


CUE_NAMES = (
    "vader_neg",
    "vader_neu",
    "vader_pos",
    "vader_compound",
    "contrast",
    "negations",
    "question",
    "exclaim",
    "caps",
)


def cues(text: str) -> np.ndarray:
    """Lexicon features of ``text`` beside its embedding (see ``CUE_NAMES``)."""
    scores = vader(text)
    words = WORD.findall(text.lower())
    letters = [c for c in text if c.isalpha()]
    caps = sum(c.isupper() for c in letters) / len(letters) if len(letters) > 8 else 0.0
    return np.array(
        [
            scores["neg"],
            scores["neu"],
            scores["pos"],
            scores["compound"],
            min(3, sum(w in CONTRAST for w in words)),
            min(3, sum(w in NEGATIONS for w in words)),
            float("?" in text),
            float("!" in text),
            caps,
        ],
        dtype=np.float32,
    )
