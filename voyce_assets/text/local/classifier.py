"""The offline sentiment classifier: logistic regression over the MiniLM sentence embedding
and VADER's lexicon cues, trained on the labelled examples that ship beside this module.

``examples/train.jsonl`` holds customer feedback we wrote ourselves (many domains and
registers, mostly short complaints); ``examples/holdout.jsonl`` was written apart from it and
is never trained on: it is what the reported macro-F1 is measured on. The fitted weights are
a few kilobytes, stored by the hash of the training data and the feature layout, so a change
to either retrains on first use.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voyce_assets.catalog import SENTIMENT_LABELS
from voyce_assets.text.local.lexicon import CUE_NAMES, cues

EXAMPLES = Path(__file__).parent / "examples"
C = 0.1  # chosen on the training set by 5-fold cross-validation (0.05..2 within 0.02)
FEATURES_VERSION = "minilm384+" + ",".join(CUE_NAMES) + f":c={C}"


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
    digest = hashlib.sha256(f"{FEATURES_VERSION}|{embedding_model}".encode())
    digest.update((EXAMPLES / "train.jsonl").read_bytes())
    return digest.hexdigest()[:12]


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
    def fit(cls, x: np.ndarray, labels: list[str], version: str) -> SentimentClassifier:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(x)
        model = LogisticRegression(C=C, max_iter=2000, class_weight="balanced")
        model.fit(scaler.transform(x), labels)
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


def macro_f1(gold: list[str], predicted: list[str]) -> float:
    """Macro-F1 over the classes that occur in either list (scikit-learn's default)."""
    from sklearn.metrics import f1_score

    return float(f1_score(gold, predicted, average="macro"))


def trained(embed, models_dir: Path, embedding_model: str) -> SentimentClassifier:
    """The classifier for the shipped examples: loaded if fitted before, else fitted now.

    ``embed(texts) -> vectors`` is the embedder's (cached) function, ``embedding_model`` its
    model's identity.
    """
    version = training_hash(embedding_model)
    path = models_dir / f"local-sentiment-{version}.npz"
    if path.exists():
        return SentimentClassifier.load(path)
    texts, labels = load_examples("train")
    unknown = set(labels) - set(SENTIMENT_LABELS)
    if unknown:
        raise ValueError(f"training examples carry labels outside the label set: {unknown}")
    classifier = SentimentClassifier.fit(features(embed(texts), texts), labels, version)
    classifier.save(path)
    return classifier
