"""Claude through the official ``anthropic`` SDK: structured output by forced tool use.

Two modes. ``messages``: one Messages API call per text, ``max_concurrency`` at a time, the
SDK retrying 429/529/5xx and timeouts (honouring ``retry-after``). ``batch``: the Message
Batches API at half price for scheduled runs: submit, poll, collect. The batch id is kept in
the cache under a hash of its requests, so a run that restarts (a retry, a crash) resumes the
batch it paid for instead of submitting a second one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr

from voyce_assets.text.analysis import (
    ANALYSIS_SCHEMA,
    TOOL_NAME,
    InvalidAnalysis,
    Result,
    text_hash,
    validate,
)
from voyce_assets.text.prompt import system_prompt, user_message
from voyce_assets.text.providers.base import (
    UNUSABLE,
    ProviderUnusable,
    RemoteAnalyzer,
    error_text,
    redact,
    validated_twice,
)


class AnthropicAnalyzer(RemoteAnalyzer):
    """Claude: sentiment, emotions, key phrases, topics, entities, urgency, summary, actions."""

    provider: ClassVar[str] = "anthropic"
    key_variable: ClassVar[str] = "ANTHROPIC_API_KEY"  # secret voice-feedback/anthropic-api-key
    client_class: ClassVar[str] = "Anthropic"

    model: str = Field(default="claude-sonnet-4-5", description="Claude model name.")
    mode: Literal["messages", "batch"] = Field(
        default="messages", description="messages: one call per text; batch: half price."
    )
    max_tokens: int = Field(default=1024, description="Output limit per analysis.")
    batch_poll_seconds: float = Field(default=30.0, description="Between batch status polls.")
    batch_max_requests: int = Field(default=10_000, description="Requests per submitted batch.")
    batch_timeout_hours: float = Field(default=24.0, description="Give up waiting after this.")

    # Batch requests of the chunk in hand, forgotten once its answers are in the cache.
    _submitted: list[str] = PrivateAttr(default_factory=list)

    @property
    def model_name(self) -> str:
        return self.model

    @property
    def mode_name(self) -> str:  # type: ignore[override]
        return self.mode

    def _sdk_module(self):
        import anthropic

        return anthropic

    def _params(self, text: str) -> dict[str, Any]:
        return {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": system_prompt(self.topics),
            "messages": [{"role": "user", "content": user_message(text)}],
            "tools": [
                {
                    "name": TOOL_NAME,
                    "description": "Record the analysis of one piece of customer feedback.",
                    "input_schema": ANALYSIS_SCHEMA,
                }
            ],
            "tool_choice": {"type": "tool", "name": TOOL_NAME},
        }

    @staticmethod
    def _answer(message) -> object:
        """The tool input a message carries, or an ``InvalidAnalysis`` saying why there is none."""
        if message.stop_reason == "refusal":
            return InvalidAnalysis("the model refused to answer")
        for block in message.content:
            if block.type == "tool_use" and block.name == TOOL_NAME:
                return block.input
        return InvalidAnalysis(f"no {TOOL_NAME} call in the answer (stop: {message.stop_reason})")

    def _chunk_size(self) -> int:
        return self.batch_max_requests if self.mode == "batch" else self.batch_size

    def _analyze(self, texts: list[str]) -> list[Result]:
        if self.mode == "batch":
            return self._analyze_batch(texts)
        return self._analyze_messages(texts)

    # ---- Messages API -----------------------------------------------------------------------

    def _one(self, text: str) -> Result:
        client = self.client()

        def call():
            message = client.messages.create(**self._params(text))
            usage = message.usage
            return self._answer(message), usage.input_tokens, usage.output_tokens

        return validated_twice(call, "messages")

    # ---- Message Batches API ----------------------------------------------------------------

    def _request_key(self, params: dict, attempt: int) -> str:
        """The identity of one batch request: everything sent, and which attempt it is."""
        sent = json.dumps([attempt, params], sort_keys=True)
        return hashlib.sha256(sent.encode()).hexdigest()

    def _submit_or_resume(self, requests: dict[str, dict]) -> set[str]:
        """Batch ids holding ``{request key: request}``: batches submitted before (by a run
        that did not finish) where they still exist, one new batch for the rest."""
        import anthropic

        client = self.client()
        pending = self.cache.pending_batches(requests)
        live: set[str] = set()
        for batch_id in sorted(set(pending.values())):
            try:
                if client.messages.batches.retrieve(batch_id).processing_status != "canceling":
                    live.add(batch_id)
            except anthropic.NotFoundError:
                pass  # deleted or expired from the API (29 days): submit again
        new = {key: r for key, r in requests.items() if pending.get(key) not in live}
        if new:
            try:
                batch = client.messages.batches.create(requests=list(new.values()))
            except anthropic.APIError as exc:
                if type(exc).__name__ in UNUSABLE:
                    message = error_text(exc, self.api_key)
                    raise ProviderUnusable(f"anthropic batch: {message}") from None
                raise
            # Remembered at once: a restart from here on finds it and pays nothing more.
            self.cache.remember_batch(new, batch.id, dt.datetime.now(dt.UTC).isoformat())
            self._submitted.extend(new)
            live.add(batch.id)
        self._submitted.extend(k for k in requests if pending.get(k) in live)
        return live

    def _settled(self) -> None:
        # The chunk's answers are in the cache: its batch requests are done with.
        self.cache.forget_batch_items(self._submitted)
        self._submitted.clear()

    def _wait(self, batch_id: str):
        client = self.client()
        deadline = time.monotonic() + self.batch_timeout_hours * 3600
        while True:
            batch = client.messages.batches.retrieve(batch_id)
            if batch.processing_status == "ended":
                return batch
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"anthropic batch {batch_id} still {batch.processing_status} after "
                    f"{self.batch_timeout_hours} h; the next run resumes it"
                )
            time.sleep(self.batch_poll_seconds)

    def _run_batch(self, texts: dict[str, str], attempt: int) -> dict[str, Any]:
        """``{custom_id: individual result}`` for ``{custom_id: text}``, each paid once."""
        requests = {}
        for cid, text in texts.items():
            params = self._params(text)
            requests[self._request_key(params, attempt)] = {"custom_id": cid, "params": params}
        answers: dict[str, Any] = {}
        for batch_id in sorted(self._submit_or_resume(requests)):
            self._wait(batch_id)
            for item in self.client().messages.batches.results(batch_id):
                if item.custom_id in texts:  # a resumed batch may hold texts of other runs
                    answers[item.custom_id] = item.result
        return answers

    def _analyze_batch(self, texts: list[str]) -> list[Result]:
        ids = [text_hash(t) for t in texts]  # 64 hex characters: a valid custom_id
        by_id = dict(zip(ids, texts, strict=True))
        out: dict[str, Result] = {cid: Result(mode="batch") for cid in ids}
        todo = dict(by_id)
        # Malformed, partial, expired or canceled answers get one more batch, then an error.
        for attempt in range(2):
            if not todo:
                break
            started = time.perf_counter()
            answers = self._run_batch(todo, attempt)
            elapsed = (time.perf_counter() - started) / max(1, len(todo))
            retry: dict[str, str] = {}
            for cid in todo:
                result = out[cid]
                result.seconds += elapsed
                answer = answers.get(cid)
                kind = getattr(answer, "type", "missing")
                if kind == "succeeded":
                    message = answer.message
                    result.input_tokens += message.usage.input_tokens
                    result.output_tokens += message.usage.output_tokens
                    try:
                        result.analysis = validate(self._answer(message))
                        result.error = None
                        continue
                    except InvalidAnalysis as exc:
                        result.error = f"invalid answer after a retry: {exc}"
                elif kind == "errored":
                    error = getattr(answer.error, "error", None)
                    message = redact(str(getattr(error, "message", error)), self.api_key)
                    result.error = f"anthropic batch: errored: {message}"
                else:
                    result.error = f"anthropic batch: request {kind}"
                retry[cid] = todo[cid]
            todo = retry
        return [out[cid] for cid in ids]
