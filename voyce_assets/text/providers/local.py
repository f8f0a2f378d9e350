"""The offline analyzer (default locally; no key, no download).

Sentiment: a classifier over the MiniLM embedding and VADER cues (``local/classifier.py``).
Topics: the taxonomy entries whose descriptions the text is most similar to (embedding
cosine). Key phrases: RAKE. Emotions: a lexicon. Named entities: none (left to Claude).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, PrivateAttr

from voyce_assets.text.analysis import LIMITS, FeedbackAnalysis, Result
from voyce_assets.text.embedder import Embedder
from voyce_assets.text.local import classifier as clf
from voyce_assets.text.local.keyphrases import key_phrases
from voyce_assets.text.local.lexicon import emotions
from voyce_assets.text.providers.base import SentimentAnalyzer
from voyce_assets.text.taxonomy import TOPICS

_URGENT = re.compile(
    r"\b(urgent|asap|immediately|right now|fraud|stolen|hacked|locked out|charged twice|"
    r"double charged|lawyer|legal|cancel|emergency|unsafe|dangerous)\b",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


class LocalAnalyzer(SentimentAnalyzer):
    """Embeddings + a trained classifier + lexicons; runs anywhere, costs only CPU."""

    provider: ClassVar[str] = "local"
    mode_name: ClassVar[str] = "local"

    embedder: Embedder = Field(description="The sentence embedder (shared with the stage).")
    models_dir: str = Field(description="Where the fitted classifier is kept.")
    topics: dict[str, str] = Field(
        default_factory=lambda: dict(TOPICS), description="Topic name -> what it covers."
    )
    topic_threshold: float = Field(
        default=0.20, description="Least cosine similarity for a topic to be assigned."
    )
    topic_margin: float = Field(
        default=0.05, description="A further topic must be this close to the best one."
    )
    max_topics: int = Field(default=3, description="Topics per text, at most.")
    predict_mixed: bool = Field(
        default=False,
        description="Also answer 'mixed'. Off: a mixed text gets the side it leans to, which "
        "scores better wherever the labels in use are positive/neutral/negative.",
    )

    _classifier: Any = PrivateAttr(default=None)
    _topic_vectors: Any = PrivateAttr(default=None)

    @property
    def model_name(self) -> str:
        trained = clf.training_hash(self.embedder.model_name)
        return f"minilm-logreg-{trained}" + ("-mixed" if self.predict_mixed else "")

    def fingerprint(self) -> str:
        settings = [
            self.topics,
            self.topic_threshold,
            self.topic_margin,
            self.max_topics,
            self.predict_mixed,
        ]
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]

    def _chunk_size(self) -> int:
        # No call to bound: the texts go to the embedder together, which sorts them by
        # length and pads each batch_size group to its longest (smaller sets pad more).
        return 1 << 20

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self.embedder.embed(texts)[0]

    def load(self) -> clf.SentimentClassifier:
        if self._classifier is None:
            self._classifier = clf.trained(
                self._embed, Path(self.models_dir), self.embedder.model_name
            )
        return self._classifier

    def _taxonomy_vectors(self) -> np.ndarray:
        """The topic descriptions' vectors, for the taxonomy as it is now."""
        descriptions = tuple(self.topics.values())
        if self._topic_vectors is None or self._topic_vectors[0] != descriptions:
            self._topic_vectors = (descriptions, self._embed(list(descriptions)))
        return self._topic_vectors[1]

    def check(self) -> None:
        self.load()

    def classify(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """``(vectors, probabilities, classes)`` of ``texts``."""
        model = self.load()
        vectors = self._embed(texts)
        return vectors, model.probabilities(clf.features(vectors, texts)), model.classes

    def _analyze(self, texts: list[str]) -> list[Result]:
        started = time.perf_counter()
        # What the classifier reads: each text less its sentences that address it.
        read = [clf.unaddressed(t) for t in texts]
        vectors, probabilities, classes = self.classify(read)
        similarity = vectors @ self._taxonomy_vectors().T
        names = list(self.topics)
        index = {c: i for i, c in enumerate(classes)}
        # Confidence among the labels this analyzer may answer.
        answerable = [i for i, c in enumerate(classes) if self.predict_mixed or c != "mixed"]
        per_text = (time.perf_counter() - started) / max(1, len(texts))
        out = []
        labels = clf.outweighed(
            read, clf.decide(probabilities, classes, self.predict_mixed), self.predict_mixed
        )
        for text, (label, outweighing), p, sims in zip(
            texts, labels, probabilities, similarity, strict=True
        ):
            score = float(p[index["positive"]] - p[index["negative"]])
            confidence = float(p[index[label]] / p[answerable].sum())
            if outweighing is not None and label == "negative":
                # The classifier read praise; the label is the complaint's, and so are the
                # score and the confidence: that sentence's strength (the urgency then
                # follows the score as for any negative row). A 'mixed' row keeps the
                # classifier's numbers: praise and complaint both, as it read them.
                score, confidence = outweighing, abs(outweighing)
            order = np.argsort(-sims)[: self.max_topics]
            floor = max(self.topic_threshold, float(sims[order[0]]) - self.topic_margin)
            topics = [names[i] for i in order if sims[i] >= floor]
            urgency = {"positive": 1, "neutral": 2, "mixed": 2, "negative": 3}[label]
            if label == "negative" and score < -0.6:
                urgency += 1
            if _URGENT.search(text):
                urgency += 1
            summary = _SENTENCE.split(text.strip())[0][:200]
            actions = (
                [f"Follow up with the customer about {(topics or ['this feedback'])[0]}"]
                if label in ("negative", "mixed")
                else []
            )
            analysis = FeedbackAnalysis(
                sentiment_label=label,
                sentiment_score=round(max(-1.0, min(1.0, score)), 4),
                confidence=round(confidence, 4),
                emotions=emotions(text),
                # Within the analysis' bounds: a run of very long words is no key phrase.
                key_phrases=[k for k in key_phrases(text) if len(k) <= LIMITS["key_phrases"][1]],
                topics=topics,
                named_entities=[],
                urgency=min(5, urgency),
                summary=summary,
                action_items=actions,
            )
            out.append(Result(analysis=analysis, mode="local", seconds=per_text))
        return out
