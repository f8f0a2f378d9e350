"""Claude through the official ``anthropic`` SDK: structured output by forced tool use.

Two modes. ``messages``: one Messages API call per text, at most ``max_concurrency`` in
flight; a 429/529 pauses every call for the ``retry-after`` the API named (``Throttle``), and
5xx/timeouts are sent again after a backoff. ``batch``: the Message Batches API at half price
for scheduled runs: up to ``batch_max_in_flight`` batches submitted, polled and collected side
by side. The batch id is kept in the cache under a hash of its requests, so a run that
restarts (a retry, a crash) resumes the batches it paid for instead of submitting new ones.

Both modes mark the fixed instructions (the tool with its schema, then the system prompt) as
a prompt-cache breakpoint: the first request writes them to Anthropic's cache at 1.25x the
input price, the next ones within 5 minutes read them at 0.1x; only the feedback is paid in
full. A result's tokens say which was which (``Tokens``), and the cost prices each.

A batch is never paid for twice. Each request's ``custom_id`` is that hash, and the intent to
create a batch is in the (durable) cache before the create is sent, which the SDK never
repeats by itself (the API takes no idempotency key). When the answer to a create is lost
(a timeout, a dropped connection, a crash before the id was kept), the batch is looked for
among our recent batches (``batches.list``: created since the intent, as many requests,
not one we know) and resumed; only when there is none is it created again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr

from voyce_assets.text.analysis import (
    TOOL_NAME,
    InvalidAnalysis,
    Result,
    Tokens,
    Truncated,
    text_hash,
    validate,
)
from voyce_assets.text.prompt import system_prompt, user_message
from voyce_assets.text.providers.base import (
    ProviderDown,
    ProviderUnusable,
    RemoteAnalyzer,
    Throttle,
    error_text,
    redact,
    unusable,
    validated_twice,
)

# A batch request's error that every request of ours would get.
_UNUSABLE_ITEM = ("not_found_error", "authentication_error", "permission_error", "billing_error")
# The batch id kept for requests whose create was sent but not (yet) answered.
_CREATING = "creating:"
# How far a batch's created_at (the API's clock) may precede our intent (ours) and still be
# the batch we created.
_CLOCK_SKEW = dt.timedelta(minutes=5)


_THROTTLE_LOCK = threading.Lock()


class _Unsettled(Exception):
    """Which batch a create made cannot be told yet: look again later, create nothing."""


def tokens_of(usage) -> Tokens:
    """What a message billed: ``input_tokens`` counts only the input after the last cache
    breakpoint; what was written to the prompt cache (``cache_creation_input_tokens``) and
    read from it (``cache_read_input_tokens``) comes on top, each priced apart."""
    return Tokens(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_write_tokens=getattr(usage, "cache_creation_input_tokens", 0) or 0,
        cache_read_tokens=getattr(usage, "cache_read_input_tokens", 0) or 0,
    )


def _retry_after(exc: Exception, attempt: int) -> float:
    """Seconds to wait before sending a create again: what the API said, else a backoff."""
    response = getattr(exc, "response", None)
    try:
        return min(60.0, float(response.headers.get("retry-after")))
    except (AttributeError, TypeError, ValueError):
        return min(30.0, 0.5 * 2**attempt)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def _age(intent: str) -> dt.timedelta:
    """How long ago the create an intent names began."""
    return dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(intent.removeprefix(_CREATING))


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
    prompt_caching: bool = Field(
        default=True,
        description="Mark the fixed instructions (tool schema and system prompt, the same in "
        "every request) for Anthropic's prompt cache: written once at 1.25x the input price, "
        "then read at 0.1x for 5 minutes after each use (batch mode: an hour, written at 2x). "
        "A model whose minimum cacheable "
        "prompt is longer than the instructions caches nothing and bills them as input.",
    )
    rate_limit_retries: int = Field(
        default=10,
        description="Messages mode: times a call refused for load (429/529) is sent again, "
        "after every call has waited out the retry-after the API named.",
    )
    batch_poll_seconds: float = Field(default=30.0, description="Between batch status polls.")
    batch_max_requests: int = Field(default=10_000, description="Requests per submitted batch.")
    batch_max_in_flight: int = Field(
        default=4,
        description="Batches submitted and waited on at once (each of batch_max_requests): "
        "a day's transcripts are several batches, run side by side, not one after another.",
    )
    batch_create_settle_seconds: float = Field(
        default=300.0,
        description="A create begun less long ago and not listed may still be in flight "
        "(another step's, or one whose answer was lost): never replaced by a new one sooner.",
    )
    batch_timeout_hours: float = Field(default=24.0, description="Give up waiting after this.")

    # Batch requests of the chunk in hand, forgotten once its answers are in the cache.
    _submitted: list[str] = PrivateAttr(default_factory=list)
    # The client-side limits of Messages calls, made when first needed.
    _limits: Throttle | None = PrivateAttr(default=None)

    @property
    def model_name(self) -> str:
        return self.model

    @property
    def mode_name(self) -> str:  # type: ignore[override]
        return self.mode

    def _sdk_module(self):
        import anthropic

        return anthropic

    def _system(self) -> list[dict[str, Any]]:
        """The system prompt as one text block; with ``prompt_caching`` it is the cache
        breakpoint, so the prefix cached is the tool (with its schema) and the instructions:
        everything but the feedback (the API orders a prompt tools, system, messages). A
        batch's entry lives an hour (written at 2x the input price, not 1.25x): its requests
        are processed over minutes to hours, and Anthropic advises the 1-hour duration for
        batches sharing a prefix; Messages calls come seconds apart, and 5 minutes do."""
        block: dict[str, Any] = {"type": "text", "text": system_prompt(self.topics)}
        if self.prompt_caching:
            block["cache_control"] = {"type": "ephemeral"}
            if self.mode == "batch":
                block["cache_control"]["ttl"] = "1h"
        return [block]

    def _params(self, text: str) -> dict[str, Any]:
        return {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": self._system(),
            "messages": [{"role": "user", "content": user_message(text)}],
            "tools": [
                {
                    "name": TOOL_NAME,
                    "description": "Record the analysis of one piece of customer feedback.",
                    "input_schema": self.schema(),
                }
            ],
            "tool_choice": {"type": "tool", "name": TOOL_NAME},
        }

    def _answer(self, message) -> object:
        """The tool input a message carries, or an ``InvalidAnalysis`` saying why there is none."""
        if message.stop_reason == "refusal":
            return InvalidAnalysis("the model refused to answer")
        if message.stop_reason == "max_tokens":
            # Its tool input is whatever was written before the cut: never half-parsed.
            return Truncated(f"answer cut off at max_tokens={self.max_tokens}; raise max_tokens")
        for block in message.content:
            if block.type == "tool_use" and block.name == TOOL_NAME:
                return block.input
        return InvalidAnalysis(f"no {TOOL_NAME} call in the answer (stop: {message.stop_reason})")

    def _chunk_size(self) -> int:
        if self.mode == "batch":
            return self.batch_max_requests * max(1, self.batch_max_in_flight)
        return self.batch_size

    def _analyze(self, texts: list[str]) -> list[Result]:
        if self.mode == "batch":
            return self._analyze_batch(texts)
        return self._analyze_messages(texts)

    # ---- Messages API -----------------------------------------------------------------------

    def _throttle(self) -> Throttle:
        with _THROTTLE_LOCK:
            if self._limits is None:
                self._limits = Throttle(
                    self.max_concurrency, self.max_retries, self.rate_limit_retries
                )
            return self._limits

    def _one(self, text: str) -> Result:
        # Our Throttle retries (every thread waits out a retry-after), the SDK nothing.
        client = self.client().with_options(max_retries=0)
        throttle = self._throttle()

        def call():
            message = throttle.call(lambda: client.messages.create(**self._params(text)))
            return self._answer(message), tokens_of(message.usage), message.id

        return validated_twice(call, "messages", self.topics)

    # ---- Message Batches API ----------------------------------------------------------------

    def _request_key(self, params: dict, attempt: int) -> str:
        """The identity of one batch request: everything sent, and which attempt it is. Also
        its ``custom_id`` (64 hex characters), so our requests are known wherever they are."""
        sent = json.dumps([attempt, params], sort_keys=True)
        return hashlib.sha256(sent.encode()).hexdigest()

    def _submit_or_resume(self, requests: dict[str, dict]) -> set[str]:
        """Batch ids holding ``{request key: request}``: batches submitted before (by a run
        that did not finish) where they still exist, one new batch for the rest."""
        import anthropic

        client = self.client()
        pending = self.cache.pending_batches(requests)
        for intent in sorted({b for b in pending.values() if b.startswith(_CREATING)}):
            # The batch holds every request of the intent, also those this run does not bring.
            keys = self.cache.requests_in(intent)
            try:
                found = self._find_created(keys, intent)
            except _Unsettled as exc:
                raise ProviderDown(f"anthropic batch: {exc}; tried again later") from None
            if found is None and _age(intent).total_seconds() < self.batch_create_settle_seconds:
                # Perhaps still being created (a create in flight, an API that lists it late).
                raise ProviderDown(
                    "anthropic batch: a create of these requests began at "
                    f"{intent.removeprefix(_CREATING)} and is not listed yet; tried again later"
                )
            if found is None:
                self.cache.forget_batch_items(keys)  # never created: created below
            else:
                self.cache.remember_batch(keys, found, _now())
            for key in keys:
                if key in pending:
                    pending.pop(key)
                    if found is not None:
                        pending[key] = found
        live: set[str] = set()
        for batch_id in sorted(set(pending.values())):
            try:
                if client.messages.batches.retrieve(batch_id).processing_status != "canceling":
                    live.add(batch_id)
            except anthropic.NotFoundError:
                pass  # deleted or expired from the API (29 days): submit again
        new = [key for key in requests if pending.get(key) not in live]
        self._submitted.extend(k for k in requests if pending.get(k) in live)
        size = max(1, self.batch_max_requests)
        for start in range(0, len(new), size):
            # Each batch kept as soon as it is made: one refused later loses none before it.
            part = {key: requests[key] for key in new[start : start + size]}
            live.add(self._create(part))
            self._submitted.extend(part)
        return live

    def _create(self, requests: dict[str, dict]) -> str:
        """The id of the batch holding ``requests``, created once: the intent is kept first,
        and a create whose answer is lost is looked for before it is sent again."""
        import anthropic

        intent = f"{_CREATING}{_now()}"
        # Kept (and persisted) before the create: a crash from here on finds the batch.
        self.cache.remember_batch(requests, intent, _now())
        # The SDK would resend a create whose answer it lost: one more batch paid for. So it
        # never retries here; a refusal for load (429/529, nothing made) is waited out and
        # sent again; a lost answer (5xx, timeout, connection) is looked for, never resent:
        # unfound, the intent stays and a later attempt settles it (_submit_or_resume).
        once = self.client().with_options(max_retries=0)
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                batch = once.messages.batches.create(requests=list(requests.values()))
            except anthropic.APIStatusError as exc:
                refused = exc.status_code < 500 or exc.status_code == 529
                if refused and exc.status_code in (429, 529) and not last:
                    time.sleep(_retry_after(exc, attempt))
                    continue
                if refused:
                    self.cache.forget_batch_items(requests)  # nothing was created
                    if unusable(exc):
                        message = error_text(exc, self.api_key)
                        raise ProviderUnusable(f"anthropic batch: {message}") from None
                    raise
                lost: Exception = exc
            except anthropic.APIError as exc:  # timeout, connection: no answer at all
                lost = exc
            else:
                # Remembered at once: a restart from here on finds it and pays nothing more.
                self.cache.remember_batch(requests, batch.id, _now())
                return batch.id
            # The API may list a batch it is still making a moment later: look twice.
            for look in range(2):
                time.sleep(_retry_after(lost, attempt + look))
                try:
                    found = self._find_created(list(requests), intent)
                except (_Unsettled, anthropic.APIError):
                    found = None  # not told apart, or not listed now: settled later
                if found is not None:
                    self.cache.remember_batch(requests, found, _now())
                    return found
            raise ProviderDown(
                f"anthropic batch: the answer to a create was lost ({error_text(lost, self.api_key)}) "
                "and the batch is not listed yet; kept as an intent, settled by a later attempt"
            ) from None
        raise AssertionError("unreachable")

    def _find_created(self, keys: list[str], intent: str) -> str | None:
        """The batch a create of ``keys`` made, sent at the time ``intent`` names, if the API
        has it: the newest of ours since then with as many requests that no other requests
        of ours claim; once ended, its results must be these requests."""
        since = dt.datetime.fromisoformat(intent.removeprefix(_CREATING)) - _CLOCK_SKEW
        self.cache.restore()  # batches an overlapping step made are known from its copy
        known = self.cache.batch_ids()
        wanted = set(keys)
        # Batches still running show their count, not their requests: one such unknown batch
        # of the right size is ours; two are not told apart (``_Unsettled``).
        running: list[str] = []
        for batch in self.client().messages.batches.list(limit=100):
            if batch.created_at < since:
                break  # newest first: the rest are older still
            counts = batch.request_counts
            total = (
                counts.processing
                + counts.succeeded
                + counts.errored
                + counts.canceled
                + counts.expired
            )
            if batch.id in known or total != len(wanted):
                continue
            if batch.processing_status != "ended":
                running.append(batch.id)
                continue
            results = self.client().messages.batches.results(batch.id)
            try:
                if {item.custom_id for item in results} == wanted:
                    return batch.id  # its requests are ours: no doubt
            finally:
                results.close()
        if len(running) > 1:
            raise _Unsettled(f"{len(running)} running batches could be the one created")
        return running[0] if running else None

    def _settled(self) -> None:
        # The chunk's answers are in the cache: its batch requests are done with.
        self.cache.forget_batch_items(self._submitted)
        self._submitted.clear()

    def _collect(self, batch_ids: set[str], wanted: dict[str, str]) -> dict[str, tuple[Any, str]]:
        """``{text id: (individual result, batch id/custom_id)}`` from ``batch_ids``, all in
        flight at once: each polled in turn, its results read as soon as it ends. ``wanted``:
        ``{custom_id: text id}`` (a resumed batch may hold texts of other runs: left out).
        The second is what the billed ledger knows the answer by: the same when a resumed
        batch's results are read again."""
        client = self.client()
        deadline = time.monotonic() + self.batch_timeout_hours * 3600
        answers: dict[str, tuple[Any, str]] = {}
        waiting = sorted(batch_ids)
        while waiting:
            still = []
            for batch_id in waiting:
                batch = client.messages.batches.retrieve(batch_id)
                if batch.processing_status != "ended":
                    still.append((batch_id, batch.processing_status))
                    continue
                for item in client.messages.batches.results(batch_id):
                    if item.custom_id in wanted:
                        source = f"{batch_id}/{item.custom_id}"
                        answers[wanted[item.custom_id]] = (item.result, source)
            waiting = [batch_id for batch_id, _ in still]
            if not waiting:
                break
            if time.monotonic() > deadline:
                batch_id, status = still[0]
                raise TimeoutError(
                    f"anthropic batch {batch_id} still {status} after "
                    f"{self.batch_timeout_hours} h ({len(still)} unfinished); the next run "
                    "resumes them"
                )
            time.sleep(self.batch_poll_seconds)
        return answers

    def _run_batch(self, texts: dict[str, str], attempt: int) -> dict[str, tuple[Any, str]]:
        """``{text id: (individual result, its ledger id)}`` for ``{text id: text}``, each
        paid once (``_collect``): up to ``batch_max_in_flight`` batches of
        ``batch_max_requests`` at a time."""
        requests, text_ids = {}, {}
        for tid, text in texts.items():
            params = self._params(text)
            key = self._request_key(params, attempt)
            requests[key] = {"custom_id": key, "params": params}
            text_ids[key] = tid
        return self._collect(self._submit_or_resume(requests), text_ids)

    def _fail_if_unusable(self, answers: dict[str, Any]) -> None:
        """A batch whose every request errored for the same reason no retry fixes (an
        unknown model, no access, no credit): the step fails instead of writing errors."""
        errors = {
            (getattr(e, "type", None), getattr(e, "message", ""))
            for e in (getattr(getattr(a, "error", None), "error", None) for a in answers.values())
        }
        kinds = {getattr(a, "type", None) for a in answers.values()}
        if kinds == {"errored"} and len(errors) == 1:
            kind, message = next(iter(errors))
            if kind in _UNUSABLE_ITEM:
                raise ProviderUnusable(
                    f"anthropic batch: {kind}: {redact(str(message), self.api_key)}"
                )

    def _analyze_batch(self, texts: list[str]) -> list[Result]:
        ids = [text_hash(t) for t in texts]
        by_id = dict(zip(ids, texts, strict=True))
        out: dict[str, Result] = {cid: Result(mode="batch") for cid in ids}
        todo = dict(by_id)
        # Malformed, partial, expired or canceled answers get one more batch, then an error.
        for attempt in range(2):
            if not todo:
                break
            started = time.perf_counter()
            collected = self._run_batch(todo, attempt)
            answers = {cid: answer for cid, (answer, _) in collected.items()}
            self._fail_if_unusable(answers)
            elapsed = (time.perf_counter() - started) / max(1, len(todo))
            retry: dict[str, str] = {}
            # Every succeeded request is billed, valid or not: kept before anything else.
            self._bill(
                [
                    (todo[cid], source, tokens_of(a.message.usage))
                    for cid, (a, source) in collected.items()
                    if cid in todo and getattr(a, "type", None) == "succeeded"
                ]
            )
            for cid in todo:
                result = out[cid]
                result.seconds += elapsed
                answer = answers.get(cid)
                kind = getattr(answer, "type", "missing")
                if kind == "succeeded":
                    message = answer.message
                    result.bill(tokens_of(message.usage))
                    raw = self._answer(message)
                    if isinstance(raw, Truncated):
                        result.error = str(raw)  # the same request would be cut again
                        continue
                    try:
                        result.analysis = validate(raw, self.topics)
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
