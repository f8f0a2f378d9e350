"""What an analysis of one text is, whoever made it: the JSON schema providers answer in, its
validation, and the result (analysis or error, with its usage) every provider returns.

The schema is the contract with Claude (a tool's ``input_schema``) and OpenAI (a strict
``json_schema`` response format); nothing a provider returns reaches a table before
``validate`` accepted it. Every list and string of an answer is bounded (``LIMITS``): the
schema asks for the bounds and ``FeedbackAnalysis`` enforces them, since neither provider
guarantees them (OpenAI's strict mode does not even accept ``maxLength``). Topics come only
from the taxonomy: the schema lists its names, and ``validate`` drops any other topic (an
invented one would otherwise become a tag in the app), so "no topic fits" is an empty list.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from voyce_assets.catalog import SENTIMENT_LABELS

Label = Literal["positive", "neutral", "negative", "mixed"]
assert set(Label.__args__) == set(SENTIMENT_LABELS)  # one label set, the catalog's

TOOL_NAME = "record_feedback_analysis"


# (most items, longest item) per list, longest text for ``summary``: enough for one spoken
# feedback, small enough that an answer can never fill a row (or a tag) with an essay.
LIMITS: dict[str, tuple[int, int]] = {
    "emotions": (8, 40),
    "key_phrases": (5, 100),
    "topics": (5, 64),
    "named_entities": (20, 100),
    "action_items": (10, 300),
}
SUMMARY_MAX = 500


def _bounded(name: str) -> Any:
    items, length = LIMITS[name]
    return Annotated[
        list[Annotated[str, StringConstraints(max_length=length)]], Field(max_length=items)
    ]


_Emotions = _bounded("emotions")
_KeyPhrases = _bounded("key_phrases")
_Topics = _bounded("topics")
_Entities = _bounded("named_entities")
_ActionItems = _bounded("action_items")


class FeedbackAnalysis(BaseModel):
    """One analysis, as stored. Unknown keys are dropped; missing, out-of-range or overlong
    ones fail."""

    model_config = ConfigDict(extra="ignore", strict=False)

    sentiment_label: Label
    sentiment_score: float = Field(ge=-1.0, le=1.0)
    confidence: float = Field(ge=0.0, le=1.0)
    emotions: _Emotions
    key_phrases: _KeyPhrases
    topics: _Topics
    named_entities: _Entities
    urgency: int = Field(ge=1, le=5)
    summary: str = Field(max_length=SUMMARY_MAX)
    action_items: _ActionItems


def _string_list(name: str, description: str, names: list[str] | None = None) -> dict[str, Any]:
    items, length = LIMITS[name]
    item: dict[str, Any] = {"type": "string", "maxLength": length}
    if names is not None:
        item = {"type": "string", "enum": names}
    return {"type": "array", "items": item, "maxItems": items, "description": description}


def analysis_schema(topics: Iterable[str]) -> dict[str, Any]:
    """The answer's JSON schema, topics limited to the taxonomy's names ``topics``.

    Strict-mode compatible (OpenAI): every property required, no additional properties;
    ``openai_schema`` removes the keywords strict mode rejects.
    """
    names = list(topics)
    return {
        "type": "object",
        "properties": {
            "sentiment_label": {"type": "string", "enum": list(SENTIMENT_LABELS)},
            "sentiment_score": {
                "type": "number",
                "description": "-1 very negative .. 1 very positive",
            },
            "confidence": {"type": "number", "description": "0..1, how sure the label is"},
            "emotions": _string_list("emotions", "Emotions the speaker expresses, lowercase"),
            "key_phrases": _string_list("key_phrases", "Up to 5 short phrases from the text"),
            "topics": _string_list("topics", "Up to 5 topics, only from the taxonomy", names),
            "named_entities": _string_list(
                "named_entities", "Products, brands, people, places named"
            ),
            "urgency": {"type": "integer", "description": "1 no action needed .. 5 act now"},
            "summary": {"type": "string", "maxLength": SUMMARY_MAX, "description": "One sentence"},
            "action_items": _string_list("action_items", "Concrete follow-ups for the company"),
        },
        "required": list(FeedbackAnalysis.model_fields),
        "additionalProperties": False,
    }


# Keywords OpenAI's strict structured outputs answer with a 400 ("... is not permitted");
# the bounds they carry are enforced by ``FeedbackAnalysis`` instead.
_NOT_IN_STRICT = ("maxLength", "minLength")


def openai_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` without the keywords OpenAI's strict mode rejects."""
    if isinstance(schema, dict):
        return {k: openai_schema(v) for k, v in schema.items() if k not in _NOT_IN_STRICT}
    if isinstance(schema, list):
        return [openai_schema(v) for v in schema]
    return schema


class InvalidAnalysis(ValueError):
    """A provider's answer that is not a valid analysis (malformed, partial, refused)."""


class Truncated(InvalidAnalysis):
    """An answer cut off at the output limit: whatever it holds is half an analysis, and the
    same request with the same limit would be cut again."""


_NAME = re.compile(r"[^a-z0-9]+")


def topic_name(topic: str) -> str:
    """A topic as the taxonomy spells names: lowercase words joined by underscores."""
    return _NAME.sub("_", topic.lower()).strip("_")


def validate(raw: Any, topics: Iterable[str] | None = None) -> FeedbackAnalysis:
    """The analysis in ``raw`` (a dict, or JSON text); ``InvalidAnalysis`` saying why not.
    ``raw`` may itself be the ``InvalidAnalysis`` a provider made of an answer with none in
    it (a refusal, no tool call). With ``topics`` (the taxonomy's names), a topic not among
    them is dropped ("App Performance" is ``app_performance``; "other" or an instruction
    hidden in the transcript is nothing), never stored."""
    if isinstance(raw, InvalidAnalysis):
        raise raw
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise InvalidAnalysis(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidAnalysis(f"expected an object, got {type(raw).__name__}")
    if topics is not None and isinstance(raw.get("topics"), list):
        # Dropped before the bounds are checked: an invented topic, however long, is
        # nothing, not a reason to throw the analysis away.
        known = {topic_name(t): t for t in topics}
        kept = (known.get(topic_name(t)) for t in raw["topics"] if isinstance(t, str))
        raw = {**raw, "topics": list(dict.fromkeys(t for t in kept if t))}
    try:
        return FeedbackAnalysis.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidAnalysis(problems) from None


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Tokens:
    """What one call (or several) billed: input at the full price, output, and the input
    written to (``cache_write_tokens``) or read from (``cache_read_tokens``) the provider's
    prompt cache, which are priced apart (Anthropic: 1.25x and 0.1x the input price)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(**{k: getattr(self, k) + getattr(other, k) for k in TOKEN_FIELDS})

    def __bool__(self) -> bool:
        return any(getattr(self, k) for k in TOKEN_FIELDS)


TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens")


@dataclass
class Result:
    """What a provider made of one text: an analysis or the reason there is none, and usage."""

    analysis: FeedbackAnalysis | None = None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    # "messages" | "batch" | "local": batch tokens are billed at half price.
    mode: str = "messages"
    cached: bool = False
    seconds: float = 0.0
    # Failed for load or transport (429/5xx/timeouts), not for this text: never stored.
    transient: bool = False
    # The provider's ids of the calls whose tokens this carries (a Messages response's id):
    # what the billed ledger knows them by, so that nothing is counted twice.
    calls: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.analysis is not None

    @property
    def tokens(self) -> Tokens:
        return Tokens(**{k: getattr(self, k) for k in TOKEN_FIELDS})

    def bill(self, tokens: Tokens) -> None:
        """Add what another call (or attempt) billed for this text."""
        for k in TOKEN_FIELDS:
            setattr(self, k, getattr(self, k) + getattr(tokens, k))

    def fields(self) -> dict[str, Any]:
        """The analysis under the sentiment_analysis table's column names (None if failed)."""
        a = self.analysis
        names = {"confidence": "sentiment_confidence"}
        return {
            names.get(name, name): getattr(a, name) if a else None
            for name in FeedbackAnalysis.model_fields
        }

    def to_json(self) -> str:
        return json.dumps(
            {
                "analysis": self.analysis.model_dump() if self.analysis else None,
                "error": self.error,
                **{k: getattr(self, k) for k in TOKEN_FIELDS},
                "mode": self.mode,
                "seconds": self.seconds,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Result:
        data = json.loads(text)
        analysis = data.pop("analysis")
        return cls(analysis=FeedbackAnalysis.model_validate(analysis) if analysis else None, **data)
