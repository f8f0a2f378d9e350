"""What an analysis of one text is, whoever made it: the JSON schema providers answer in, its
validation, and the result (analysis or error, with its usage) every provider returns.

The schema is the contract with Claude (a tool's ``input_schema``) and OpenAI (a strict
``json_schema`` response format); nothing a provider returns reaches a table before
``validate`` accepted it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voyce_assets.catalog import SENTIMENT_LABELS

Label = Literal["positive", "neutral", "negative", "mixed"]
assert set(Label.__args__) == set(SENTIMENT_LABELS)  # one label set, the catalog's

TOOL_NAME = "record_feedback_analysis"


class FeedbackAnalysis(BaseModel):
    """One analysis, as stored. Unknown keys are dropped; missing or out-of-range ones fail."""

    model_config = ConfigDict(extra="ignore", strict=False)

    sentiment_label: Label
    sentiment_score: float = Field(ge=-1.0, le=1.0)
    confidence: float = Field(ge=0.0, le=1.0)
    emotions: list[str]
    key_phrases: list[str] = Field(max_length=5)
    topics: list[str] = Field(max_length=5)
    named_entities: list[str]
    urgency: int = Field(ge=1, le=5)
    summary: str
    action_items: list[str]


def _string_list(description: str, max_items: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
    if max_items:
        out["maxItems"] = max_items
    return {**out, "description": description}


# Strict-mode compatible (OpenAI): every property required, no additional properties.
ANALYSIS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sentiment_label": {"type": "string", "enum": list(SENTIMENT_LABELS)},
        "sentiment_score": {
            "type": "number",
            "description": "-1 very negative .. 1 very positive",
        },
        "confidence": {"type": "number", "description": "0..1, how sure the label is"},
        "emotions": _string_list("Emotions the speaker expresses, lowercase"),
        "key_phrases": _string_list("Up to 5 short phrases from the text", 5),
        "topics": _string_list("Up to 5 topics, from the taxonomy where one fits", 5),
        "named_entities": _string_list("Products, brands, people, places named"),
        "urgency": {"type": "integer", "description": "1 no action needed .. 5 act now"},
        "summary": {"type": "string", "description": "One sentence"},
        "action_items": _string_list("Concrete follow-ups for the company"),
    },
    "required": list(FeedbackAnalysis.model_fields),
    "additionalProperties": False,
}


class InvalidAnalysis(ValueError):
    """A provider's answer that is not a valid analysis (malformed, partial, refused)."""


def validate(raw: Any) -> FeedbackAnalysis:
    """The analysis in ``raw`` (a dict, or JSON text); ``InvalidAnalysis`` saying why not.
    ``raw`` may itself be the ``InvalidAnalysis`` a provider made of an answer with none in
    it (a refusal, no tool call)."""
    if isinstance(raw, InvalidAnalysis):
        raise raw
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise InvalidAnalysis(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidAnalysis(f"expected an object, got {type(raw).__name__}")
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
class Result:
    """What a provider made of one text: an analysis or the reason there is none, and usage."""

    analysis: FeedbackAnalysis | None = None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    # "messages" | "batch" | "local": batch tokens are billed at half price.
    mode: str = "messages"
    cached: bool = False
    seconds: float = 0.0
    # Failed for load or transport (429/5xx/timeouts), not for this text: never stored.
    transient: bool = False

    @property
    def ok(self) -> bool:
        return self.analysis is not None

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
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "mode": self.mode,
                "seconds": self.seconds,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Result:
        data = json.loads(text)
        analysis = data.pop("analysis")
        return cls(analysis=FeedbackAnalysis.model_validate(analysis) if analysis else None, **data)
