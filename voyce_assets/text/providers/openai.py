"""OpenAI through the official ``openai`` SDK: the same schema as a strict structured output
(less the keywords strict mode rejects, ``maxLength``: ``validate`` enforces those bounds)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from voyce_assets.text.analysis import (
    TOOL_NAME,
    InvalidAnalysis,
    Result,
    Tokens,
    Truncated,
    openai_schema,
)
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
        schema = openai_schema(self.schema())

        def call():
            completion = client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": system_prompt(self.topics)},
                    {"role": "user", "content": user_message(text)},
                ],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": TOOL_NAME, "strict": True, "schema": schema},
                },
            )
            usage = completion.usage
            # prompt_tokens already holds the cached ones (prompt_tokens_details.cached_tokens).
            tokens = Tokens(usage.prompt_tokens, usage.completion_tokens) if usage else Tokens()
            choice = completion.choices[0] if completion.choices else None
            message = choice.message if choice else None
            if message is None:
                raw: object = InvalidAnalysis("no choices in the answer")
            elif choice.finish_reason == "length":
                # The JSON stops mid-value: never half-parsed, and it would stop there again.
                raw = Truncated("answer cut off at the output limit (finish_reason: length)")
            elif message.refusal:
                raw = InvalidAnalysis(f"the model refused: {message.refusal[:200]}")
            elif not message.content:
                raw = InvalidAnalysis("empty answer")
            else:
                raw = message.content
            return raw, tokens, completion.id

        return validated_twice(call, "messages", self.topics)

    def _analyze(self, texts: list[str]) -> list[Result]:
        return self._analyze_messages(texts)
