"""OpenAI through the official ``openai`` SDK: the same schema as a strict structured output."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from voyce_assets.text.analysis import ANALYSIS_SCHEMA, TOOL_NAME, InvalidAnalysis, Result
from voyce_assets.text.prompt import system_prompt, user_message
from voyce_assets.text.providers.base import (
    RemoteAnalyzer,
    validated_twice,
)


class OpenAIAnalyzer(RemoteAnalyzer):
    """OpenAI chat completions with a strict JSON-schema response format."""

    provider: ClassVar[str] = "openai"
    key_variable: ClassVar[str] = "OPENAI_API_KEY"  # secret voice-feedback/openai-api-key
    client_class: ClassVar[str] = "OpenAI"

    model: str = Field(default="gpt-4o-mini", description="OpenAI model name.")

    @property
    def model_name(self) -> str:
        return self.model

    def _sdk_module(self):
        import openai

        return openai

    def _one(self, text: str) -> Result:
        client = self.client()

        def call():
            completion = client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": system_prompt(self.topics)},
                    {"role": "user", "content": user_message(text)},
                ],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": TOOL_NAME, "strict": True, "schema": ANALYSIS_SCHEMA},
                },
            )
            usage = completion.usage
            tokens = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
            message = completion.choices[0].message if completion.choices else None
            if message is None:
                raw: object = InvalidAnalysis("no choices in the answer")
            elif message.refusal:
                raw = InvalidAnalysis(f"the model refused: {message.refusal[:200]}")
            elif not message.content:
                raw = InvalidAnalysis("empty answer")
            else:
                raw = message.content
            return raw, *tokens

        return validated_twice(call, "messages")

    def _analyze(self, texts: list[str]) -> list[Result]:
        return self._analyze_messages(texts)
