"""The text stage's own resources per environment: the content-hash cache, the embedder, the
sentiment analyzer (``VOYCE_SENTIMENT_PROVIDER``: local | anthropic | openai) and the
auto-tagger.

Locally the analyzer is the offline one unless another provider is named; in prod it is
Claude in Message Batches mode (half price; ``VOYCE_SENTIMENT_MODE=messages`` for answers in
seconds). Keys come from the environment variables named after the notebooks' secret scope
``voice-feedback``: ``ANTHROPIC_API_KEY`` (anthropic-api-key) and ``OPENAI_API_KEY``
(openai-api-key), always as ``EnvVar`` so the UI shows the name, never the value.
"""

from __future__ import annotations

import os
from typing import Any

from dagster import EnvVar

from voyce_assets.settings import ConfigError, catalog_name, from_env, redact_pii, voyce_home
from voyce_assets.text.auto_tags import AutoTagger
from voyce_assets.text.cache import TextCache
from voyce_assets.text.embedder import Embedder
from voyce_assets.text.providers.anthropic import AnthropicAnalyzer
from voyce_assets.text.providers.base import SentimentAnalyzer
from voyce_assets.text.providers.local import LocalAnalyzer
from voyce_assets.text.providers.openai import OpenAIAnalyzer

PROVIDERS = ("local", "anthropic", "openai")
DEFAULT_PROVIDER = {"local": "local", "prod": "anthropic"}


def _cache(env: str) -> TextCache:
    if env == "prod":
        # SQLite on the driver's local disk, its durable copy on the artifacts volume (read
        # at the start of a step, written back after it and on every batch submitted).
        return TextCache(
            path="/local_disk0/voyce/text-cache.sqlite",
            persist_to=f"{_artifacts()}/cache.sqlite",
        )
    return TextCache(path=str(voyce_home() / "cache" / "text.sqlite"))


def _artifacts() -> str:
    return f"/Volumes/{catalog_name('prod')}/ml_models/artifacts/text"


def _models_dir(env: str) -> str:
    return f"{_artifacts()}/models" if env == "prod" else str(voyce_home() / "models")


def analyzer_for(
    provider: str, env: str, cache: TextCache, embedder: Embedder
) -> SentimentAnalyzer:
    """The ``sentiment_analyzer`` of ``provider`` in ``env`` (keys as EnvVar)."""
    shared = {"cache": cache, **from_env(batch_size=("BATCH_SIZE", int))}
    if provider == "local":
        return LocalAnalyzer(embedder=embedder, models_dir=_models_dir(env), **shared)
    # What a third party receives is redacted whoever calls (the asset, `voyce sentiment`).
    shared["redact_pii"] = redact_pii()
    if provider == "anthropic":
        default_mode = "batch" if env == "prod" else "messages"
        return AnthropicAnalyzer(
            api_key=EnvVar("ANTHROPIC_API_KEY"),
            mode=os.environ.get("VOYCE_SENTIMENT_MODE", default_mode),
            **from_env(model="ANTHROPIC_MODEL", base_url="ANTHROPIC_BASE_URL"),
            **shared,
        )
    if provider == "openai":
        return OpenAIAnalyzer(
            api_key=EnvVar("OPENAI_API_KEY"),
            **from_env(model="OPENAI_MODEL", base_url="OPENAI_BASE_URL"),
            **shared,
        )
    raise ConfigError(
        "VOYCE_SENTIMENT_PROVIDER", f"must be one of {', '.join(PROVIDERS)}, got {provider!r}"
    )


def resources(env: str) -> dict[str, Any]:
    cache = _cache(env)
    embedder = Embedder(
        cache=cache,
        **from_env(model_dir="VOYCE_EMBEDDING_MODEL_DIR", device="VOYCE_EMBEDDING_DEVICE"),
    )
    provider = os.environ.get("VOYCE_SENTIMENT_PROVIDER", "").strip() or DEFAULT_PROVIDER[env]
    analyzer = analyzer_for(provider, env, cache, embedder)
    return {
        "text_cache": cache,
        "embedder": embedder,
        "sentiment_analyzer": analyzer,
        # Auto-tags go back to the app's database: on by default locally (the demo app is
        # ours), opt-in in prod, where the app team owns the tables.
        "auto_tagger": AutoTagger(
            enabled=os.environ.get("VOYCE_AUTO_TAGS", "1" if env == "local" else "0") == "1",
            # Tags only of the taxonomy the analyzer answers in.
            topics=list(analyzer.topics),
        ),
    }
