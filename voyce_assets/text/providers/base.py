"""The ``sentiment_analyzer`` resource's one interface, and what every provider shares.

``analyze(texts)`` returns one ``Result`` per text, in order: the content-hash cache is
consulted first (a text analysed before by the same provider, model and prompt version costs
nothing), each distinct remaining text is sent once, and what comes back is validated. A
provider answers the texts it is given (``_analyze``); a broken provider (no key, a wrong
model, an unreachable host) raises ``ProviderUnusable`` so the step fails before writing.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from typing import Any, ClassVar

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from voyce_assets.text.analysis import (
    InvalidAnalysis,
    Result,
    Tokens,
    Truncated,
    analysis_schema,
    validate,
)
from voyce_assets.text.cache import TextCache
from voyce_assets.text.prompt import PROMPT_VERSION, system_prompt
from voyce_assets.text.taxonomy import TOPICS


class ProviderUnusable(RuntimeError):
    """The provider cannot work at all (configuration, credentials): fail the step, not rows."""


class SentimentAnalyzer(ConfigurableResource):
    """Sentiment, emotions, key phrases, topics ... of texts, by one provider."""

    provider: ClassVar[str] = ""
    mode_name: ClassVar[str] = "messages"

    prompt_version: str = Field(
        default=PROMPT_VERSION, description="Version of the instructions; part of the cache key."
    )
    batch_size: int = Field(
        default=32, description="Texts handled together (the notebooks' BATCH_SIZE)."
    )
    cache: TextCache = Field(description="Content-hash cache: nothing is paid for twice.")

    # Of the ``analyze`` under way: each text sent, by its analysis key; the keys whose billed
    # tokens its results carry.
    _keys: dict[str, str] = PrivateAttr(default_factory=dict)
    _counted: list[str] = PrivateAttr(default_factory=list)

    @property
    @abstractmethod
    def model_name(self) -> str:
        """The model behind the answers (part of ``label`` and of the cache key)."""

    @property
    def label(self) -> str:
        """``provider/model``: the table's ``model_used``."""
        return f"{self.provider}/{self.model_name}"

    def fingerprint(self) -> str:
        """What else shapes an answer beside model and prompt version (the instructions as
        sent, the taxonomy, thresholds): part of the cache key, so changing it never serves
        answers made under the old settings."""
        return ""

    def check(self) -> None:
        """Raise ``ProviderUnusable`` if this provider cannot work (before any row is made)."""

    @abstractmethod
    def _analyze(self, texts: list[str]) -> list[Result]:
        """One uncached, validated ``Result`` per text (each text distinct and non-empty)."""

    def analyze(self, texts: list[str]) -> list[Result]:
        """One ``Result`` per text, in order; ``cached`` says no provider call was made.

        A text's tokens are all that was billed for it and is in no written row yet: this
        call's, and those of an earlier attempt that paid but never wrote its rows (a step
        that failed after some chunks, whose answers come from the cache now). Whoever writes
        the rows says so afterwards (``recorded``), so the next call does not count them
        again. A text given twice is paid and counted once (its first row)."""
        out: list[Result | None] = [None] * len(texts)
        keys: dict[int, str] = {}
        version = self.fingerprint()
        for i, text in enumerate(texts):
            if not text or not text.strip():
                out[i] = Result(error="empty text: nothing to analyse", mode=self.mode_name)
            else:
                keys[i] = TextCache.analysis_key(
                    self.provider, self.model_name, f"{self.prompt_version}:{version}", text
                )
        known = self.cache.get_analyses(keys.values())
        todo: dict[str, str] = {}
        for i, key in keys.items():
            if key in known:
                hit = known[key]
                out[i] = Result(analysis=hit.analysis, mode=hit.mode, cached=True)
            else:
                todo.setdefault(key, texts[i])
        self._keys = {text: key for key, text in todo.items()}
        if todo:
            fresh: dict[str, Result] = {}
            pending = list(todo.items())
            size = max(1, self._chunk_size())
            for start in range(0, len(pending), size):
                chunk = pending[start : start + size]
                results = self._analyze([text for _, text in chunk])
                answered = {key: r for (key, _), r in zip(chunk, results, strict=True)}
                self.cache.put_analyses(answered)
                self._settled()
                fresh.update(answered)
            for i, key in keys.items():
                if out[i] is None:
                    out[i] = fresh[key]
        unrecorded = self.cache.unrecorded(keys.values())
        counted: set[str] = set()
        for i, key in keys.items():
            result = out[i]
            assert result is not None
            if key in counted:  # the same text again: no call of its own
                out[i] = Result(
                    analysis=result.analysis,
                    error=result.error,
                    mode=result.mode,
                    cached=result.ok,
                    transient=result.transient,
                )
                continue
            counted.add(key)
            if key in unrecorded:
                out[i] = replace(result, **asdict(unrecorded[key]))
        self._counted = sorted(k for k in counted if k in unrecorded)
        return [r for r in out if r is not None]

    def recorded(self) -> None:
        """The results of the last ``analyze`` are in written rows: the tokens they carried
        are recorded (the next call counts none of them again)."""
        self.cache.recorded(self._counted)
        self._counted = []

    def _bill(self, billed: list[tuple[str, str, Tokens]]) -> None:
        """Keep what the provider billed for these texts (of the ``analyze`` under way) as
        their answers arrive: a step that fails later has paid for them all the same.
        ``(text, id, tokens)`` each, ``id`` the provider's for what billed them (a batch
        request, a Messages response): an answer read again (a resumed batch) is kept once."""
        self.cache.bill(
            (ledger_id, self._keys[text], tokens)
            for text, ledger_id, tokens in billed
            if text in self._keys
        )

    def _chunk_size(self) -> int:
        return self.batch_size

    def _settled(self) -> None:
        """Called once a chunk's results are in the cache (what was paid for is kept)."""


def validated_twice(
    call: Callable[[], tuple[object, Tokens]], mode: str, topics: Iterable[str]
) -> Result:
    """Call a provider for one text, validate (topics kept only from ``topics``), and retry
    once if the answer is invalid.

    ``call`` returns ``(raw answer, tokens billed, the response's id)``; the raw answer is an ``InvalidAnalysis``
    when it holds no analysis (a refusal, no tool call), a ``Truncated`` one when the answer
    was cut off at the output limit: that is the text's error at once, as the same request
    would be cut again. Both attempts' tokens are billed, so both are counted, also when the
    retry itself fails (``Retried``).
    """
    started = time.perf_counter()
    billed = Tokens()
    calls: tuple[str, ...] = ()
    error = ""
    for attempt in range(2):
        try:
            raw, used, call_id = call()
        except Exception as exc:
            if attempt == 0:
                raise
            raise Retried(exc, billed, calls) from exc
        billed += used
        calls += (call_id,)
        if isinstance(raw, Truncated):
            error = str(raw)
            break
        try:
            analysis = validate(raw, topics)
        except InvalidAnalysis as exc:
            error = f"invalid answer after a retry: {exc}"
            continue
        return Result(
            analysis=analysis,
            mode=mode,
            seconds=time.perf_counter() - started,
            calls=calls,
            **asdict(billed),
        )
    return Result(
        error=error, mode=mode, seconds=time.perf_counter() - started, calls=calls, **asdict(billed)
    )


def _ledger_id(calls: tuple[str, ...]) -> str:
    """The billed ledger's id of what ``calls`` (the responses' ids) billed; a fresh one
    where a response had none."""
    return "+".join(c for c in calls if c) if all(calls) and calls else uuid.uuid4().hex


class Retried(Exception):
    """The retry of an invalid answer failed: its error, and the first attempt's tokens."""

    def __init__(self, error: Exception, tokens: Tokens, calls: tuple[str, ...] = ()):
        super().__init__(str(error))
        self.error = error
        self.tokens = tokens
        self.calls = calls


class ProviderDown(RuntimeError):
    """Every call of a chunk failed at the transport, or was refused for load (429/529/5xx),
    after the SDK's retries: the step fails and its RetryPolicy tries again later."""


# Errors no retry can fix: the step fails at once instead of writing a partition of errors.
# PaymentRequiredError: Anthropic's 402 billing_error (no credit left).
UNUSABLE = ("AuthenticationError", "PermissionDeniedError", "NotFoundError", "PaymentRequiredError")
# What a 400 names when our request itself is refused, the same for every text: the response
# schema (OpenAI's ``param``, Anthropic's ``tools.0...input_schema`` path) or the model.
_REQUEST_PARTS = ("response_format", "tools", "input_schema", "model")


def _api_error(exc: BaseException) -> dict:
    body = getattr(exc, "body", None)
    inner = body.get("error", body) if isinstance(body, dict) else None
    return inner if isinstance(inner, dict) else {}


def unusable(exc: BaseException) -> bool:
    """An SDK error that says the provider cannot work with this configuration at all: no
    key, no access, an unknown model (404), a rejected schema (400), no credit or quota
    (Anthropic's 402, OpenAI's 429 ``insufficient_quota``, which looks like a rate limit but
    no retry ends)."""
    if type(exc).__name__ in UNUSABLE:
        return True
    error = _api_error(exc)
    if "insufficient_quota" in (error.get("type"), error.get("code")):
        return True
    if getattr(exc, "status_code", None) == 400:
        param = str(error.get("param") or "")
        message = str(error.get("message") or "")
        return param in _REQUEST_PARTS or message.split(".", 1)[0].split(":")[0] in _REQUEST_PARTS
    return False


# Words that look like an API key in a provider's message ("Incorrect API key provided:
# sk-proj-****abcd" from OpenAI): never copied into a row, a log or the UI.
_KEYLIKE = re.compile(r"\b(?:sk|key|pk|rk)[-_][A-Za-z0-9_*.\-]{4,}", re.IGNORECASE)


def redact(message: str, secret: str = "") -> str:
    """``message`` with ``secret`` and every key-like word replaced."""
    if secret:
        message = message.replace(secret, "[redacted]")
    return _KEYLIKE.sub("[redacted]", message)


def error_text(exc: BaseException, secret: str = "") -> str:
    """An SDK error as one line: type, status and the API's own message, redacted."""
    status = getattr(exc, "status_code", None)
    body = getattr(exc, "body", None)
    message = ""
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message", "") if isinstance(inner, dict) else str(inner)
    message = redact(message or (str(exc).splitlines() or [""])[0], secret)
    return (f"{type(exc).__name__}" + (f" ({status})" if status else "") + f": {message}")[:500]


def transient(exc: BaseException) -> bool:
    """Load or transport trouble (429, 5xx, 529, timeouts, connections), not this text's."""
    status = getattr(exc, "status_code", None)
    if status is not None:
        return status == 429 or status >= 500
    return any(k in type(exc).__name__ for k in ("Connection", "Timeout"))


def fail_if_all_transient(results: list[Result], provider: str) -> None:
    """A chunk whose every call failed for load or transport (after the SDK's retries) means
    the provider is down or throttling us: fail the step, to be retried, rather than write a
    partition of errors."""
    if results and all(r.transient for r in results):
        raise ProviderDown(
            f"{provider}: every call of {len(results)} failed, last: {results[-1].error}"
        )


def retry_after(exc: BaseException) -> float | None:
    """The seconds an API error's response asks us to wait (``retry-after-ms``, else
    ``retry-after`` in seconds), or None when it names none."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return max(0.0, float(headers.get(name)) * scale)
        except (TypeError, ValueError):
            continue
    return None


class Throttle:
    """Client-side limits on one analyzer's calls, shared by its threads: at most ``limit``
    calls in flight, and a refusal for load (429, 529) pauses every call, not only the
    refused one, for the ``retry-after`` the API named (or a backoff), so the whole client
    slows down instead of each thread hammering on. A refused call is sent again up to
    ``load_retries`` times; a lost one (5xx, timeout, connection) up to ``retries`` times
    after its own backoff. The SDK itself retries nothing under it."""

    def __init__(self, limit: int, retries: int, load_retries: int, max_wait: float = 60.0):
        self.limit = max(1, limit)
        self.retries = retries
        self.load_retries = load_retries
        self.max_wait = max_wait
        self._slots = threading.BoundedSemaphore(self.limit)
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self.in_flight = self.max_in_flight = 0
        self.refusals = 0  # 429/529 answers seen

    def _backoff(self, attempt: int) -> float:
        return min(self.max_wait, 0.5 * 2**attempt) * random.uniform(0.75, 1.0)

    def _wait_turn(self) -> None:
        while True:
            with self._lock:
                left = self._paused_until - time.monotonic()
            if left <= 0:
                return
            time.sleep(left)

    def call(self, send: Callable[[], Any]) -> Any:
        """``send()``, within the limits, sent again as the errors above allow."""
        refused = lost = 0
        while True:
            self._wait_turn()
            with self._slots:
                with self._lock:
                    self.in_flight += 1
                    self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    return send()
                except Exception as exc:
                    error = exc
                finally:
                    with self._lock:
                        self.in_flight -= 1
            status = getattr(error, "status_code", None)
            if status in (429, 529) and not unusable(error):
                if refused >= self.load_retries:
                    raise error
                wait = retry_after(error)
                wait = min(self.max_wait, wait if wait is not None else self._backoff(refused))
                refused += 1
                with self._lock:
                    self.refusals += 1
                    self._paused_until = max(self._paused_until, time.monotonic() + wait)
            elif transient(error) and lost < self.retries:
                wait = retry_after(error)
                time.sleep(min(self.max_wait, wait if wait is not None else self._backoff(lost)))
                lost += 1
            else:
                raise error


class RemoteAnalyzer(SentimentAnalyzer):
    """A provider behind an HTTP API and its official SDK: key, host, concurrency, retries.

    Subclasses make the SDK client (``_new_client``) and answer one text (``_one``); calls run
    ``max_concurrency`` at a time, the SDK retrying 429/5xx/timeouts (``retry-after``).
    """

    key_variable: ClassVar[str] = ""
    # The official SDK's client class, in the module ``_sdk_module`` imports ("Anthropic").
    client_class: ClassVar[str] = ""

    api_key: str = Field(description="The provider's API key (an EnvVar, never a value).")
    base_url: str | None = Field(default=None, description="API host; None: the provider's.")
    max_concurrency: int = Field(default=8, description="Calls in flight.")
    max_retries: int = Field(default=3, description="SDK retries of 429/5xx/timeouts.")
    timeout_seconds: float = Field(default=60.0, description="Per request.")
    topics: dict[str, str] = Field(
        default_factory=lambda: dict(TOPICS), description="Topic name -> what it covers."
    )

    redact_pii: bool = Field(
        default=True,
        description="Redact personal data from every text before it is sent "
        "(VOYCE_REDACT_PII; off only for a deployment that must).",
    )

    _client: Any = PrivateAttr(default=None)

    def analyze(self, texts: list[str]) -> list[Result]:
        # The last line of defence: the text stage hands over redacted transcripts already
        # (redacting is idempotent), but nothing reaches a third party unredacted, whoever
        # calls. Cache keys are of the redacted text, so the cache holds no other.
        if self.redact_pii:
            from voyce_assets.privacy import pii

            texts = [pii.redact(t).text if t else t for t in texts]
        return super().analyze(texts)

    def check(self) -> None:
        if not self.api_key:
            raise ProviderUnusable(f"{self.provider}: no API key (set {self.key_variable})")

    @abstractmethod
    def _sdk_module(self):
        """The official SDK's module, imported when first needed."""

    def _new_client(self):
        return getattr(self._sdk_module(), self.client_class)(
            api_key=self.api_key,
            base_url=self.base_url,
            max_retries=self.max_retries,
            timeout=self.timeout_seconds,
        )

    def schema(self) -> dict[str, Any]:
        """The answer's JSON schema, topics from this analyzer's taxonomy."""
        return analysis_schema(self.topics)

    def fingerprint(self) -> str:
        sent = json.dumps([system_prompt(self.topics), self.schema()], sort_keys=True)
        return hashlib.sha256(sent.encode()).hexdigest()[:16]

    def client(self):
        if self._client is None:
            self.check()
            self._client = self._new_client()
        return self._client

    @abstractmethod
    def _one(self, text: str) -> Result:
        """One text's validated answer through the SDK (``validated_twice``, topics from
        ``self.topics``)."""

    def _sdk_error(self) -> type[Exception]:
        """The SDK's base class of API errors (HTTP status and transport alike)."""
        return self._sdk_module().APIError

    def _call_one(self, text: str) -> Result:
        """``_one``, the SDK's errors sorted: an unusable provider, or this text's error."""
        tokens, calls = Tokens(), ()
        try:
            result = self._one(text)
            self._bill([(text, _ledger_id(result.calls), result.tokens)])
            return result
        except Retried as retried:
            exc, tokens, calls = retried.error, retried.tokens, retried.calls
        except self._sdk_error() as error:
            exc = error
        result = Result(
            error=f"{self.provider}: {error_text(exc, self.api_key)}",
            mode="messages",
            transient=transient(exc),
            calls=calls,
            **asdict(tokens),
        )
        self._bill([(text, _ledger_id(calls), tokens)])  # an invalid first answer was paid for
        if unusable(exc):
            raise ProviderUnusable(f"{self.provider}: {error_text(exc, self.api_key)}")
        return result

    def _analyze_messages(self, texts: list[str]) -> list[Result]:
        self.client()  # made once, before the threads share it
        with ThreadPoolExecutor(max_workers=max(1, self.max_concurrency)) as pool:
            results = list(pool.map(self._call_one, texts))
        fail_if_all_transient(results, self.provider)
        return results
