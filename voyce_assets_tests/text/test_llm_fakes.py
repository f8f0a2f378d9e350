"""The LLM fakes speak the real wire formats: the official SDKs parse and retry against them."""

from __future__ import annotations

import itertools
import json
import time

import anthropic
import openai
import pytest
from anthropic.types import TextBlock, ToolUseBlock
from anthropic.types.messages import (
    MessageBatchCanceledResult,
    MessageBatchErroredResult,
    MessageBatchExpiredResult,
    MessageBatchSucceededResult,
)

from voyce_assets_tests.fakes.llm import (
    FakeAnthropic,
    FakeOpenAI,
    analyse_feedback,
    strict_schema_problem,
)

KEY = "sk-ant-test-0123456789"
# The least schema OpenAI's strict mode accepts.
STRICT = {"type": "object", "properties": {}, "required": [], "additionalProperties": False}
TOOL = "record_feedback_analysis"
MODEL = "claude-sonnet-4-5"


def params(feedback: str, *, blocks: bool = False) -> dict:
    text = f"Analyse this customer feedback.\n<feedback>\n{feedback}\n</feedback>"
    return {
        "model": MODEL,
        "max_tokens": 1024,
        "system": "You analyse customer feedback.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": text}] if blocks else text}
        ],
        "tools": [{"name": TOOL, "description": "Record it.", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": TOOL},
    }


@pytest.fixture
def fake():
    with FakeAnthropic(KEY) as server:
        yield server


def client(fake: FakeAnthropic, **kwargs) -> anthropic.Anthropic:
    settings = {"api_key": KEY, "base_url": fake.base_url, "max_retries": 2}
    return anthropic.Anthropic(**{**settings, **kwargs})


@pytest.mark.parametrize("blocks", [False, True])
def test_tool_use_message_parses(fake, blocks):
    feedback = "The app crashed at checkout and support never answered. Ask Priya at Acme."
    message = client(fake).messages.create(**params(feedback, blocks=blocks))

    assert message.stop_reason == "tool_use" and message.model == MODEL
    [block] = message.content
    assert isinstance(block, ToolUseBlock) and block.name == TOOL
    assert block.input == analyse_feedback(feedback)
    assert block.input["sentiment_label"] == "negative"
    assert {"app_performance", "checkout", "support"} <= set(block.input["topics"])
    assert block.input["named_entities"] == ["Priya", "Acme"]
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert fake.calls == {"messages": 1}
    # anthropic 2.x sends the key as a bearer token rather than x-api-key.
    assert fake.seen_headers[0]["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("marker", ["[429]", "[529]", "[500]"])
def test_server_errors_are_retried_by_the_sdk(fake, marker):
    message = client(fake).messages.create(**params(f"Delivery was late {marker}"))

    assert isinstance(message.content[0], ToolUseBlock)
    assert fake.calls["messages"] == 2
    if marker != "[500]":  # a 500 carries no retry-after; the SDK backs off on its own
        assert fake.request_times[1] - fake.request_times[0] >= float(fake.retry_after)


def test_a_slow_reply_times_out_and_the_retry_succeeds(fake):
    message = client(fake, timeout=0.5).messages.create(**params("Great support [timeout]"))

    assert message.content[0].input["sentiment_label"] == "positive"
    assert fake.calls["messages"] == 2


def test_content_faults():
    with FakeAnthropic(KEY) as fake:
        api = client(fake)
        bad = api.messages.create(**params("Terrible [malformed]")).content[0].input
        good = api.messages.create(**params("Terrible [malformed]")).content[0].input
        partial = api.messages.create(**params("Terrible [partial]")).content[0].input
        refusal = api.messages.create(**params("Terrible [refusal]"))
        prose = api.messages.create(**params("Terrible [notool]"))

    assert bad["sentiment_score"] == "very bad" and "confidence" not in bad
    assert good == analyse_feedback("Terrible")
    assert set(partial) == {"sentiment_label", "summary"}
    assert refusal.stop_reason == "refusal" and isinstance(refusal.content[0], TextBlock)
    assert prose.stop_reason == "end_turn" and [b.type for b in prose.content] == ["text"]


def test_a_wrong_key_is_refused(fake):
    wrong = anthropic.Anthropic(api_key="sk-ant-wrong", base_url=fake.base_url, max_retries=2)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        wrong.messages.create(**params("Hello"))

    assert caught.value.status_code == 401 and caught.value.type == "authentication_error"
    assert caught.value.request_id and fake.calls["messages"] == 1


def test_a_batch_ends_and_its_results_parse_by_kind(fake):
    feedback = {
        "ok": "Love the new checkout, thanks!",
        "bad": "Broken screen [malformed]",
        "err": "Anything [batch-errored]",
        "exp": "Anything [batch-expired]",
        "can": "Anything [batch-canceled]",
    }
    requests = [{"custom_id": k, "params": params(v)} for k, v in feedback.items()]
    batch = client(fake).messages.batches.create(requests=requests)
    assert batch.processing_status == "in_progress" and batch.request_counts.processing == 5

    # A new client (a restarted run) resumes the batch by id.
    resumed = client(fake)
    assert resumed.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    ended = resumed.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.ended_at is not None
    counts = ended.request_counts
    assert (counts.succeeded, counts.errored, counts.expired, counts.canceled) == (2, 1, 1, 1)

    results = {r.custom_id: r.result for r in resumed.messages.batches.results(batch.id)}
    assert isinstance(results["ok"], MessageBatchSucceededResult)
    assert results["ok"].message.content[0].input == analyse_feedback(feedback["ok"])
    assert results["bad"].message.content[0].input["sentiment_score"] == "very bad"
    assert isinstance(results["err"], MessageBatchErroredResult)
    assert results["err"].error.error.type == "invalid_request_error"
    assert isinstance(results["exp"], MessageBatchExpiredResult)
    assert isinstance(results["can"], MessageBatchCanceledResult)
    assert fake.calls["batches.create"] == 1 and fake.calls["batches.results"] == 1


def test_a_canceled_batch_ends_with_every_request_canceled(fake):
    api = client(fake)
    batch = api.messages.batches.create(requests=[{"custom_id": "a", "params": params("Hi")}])
    assert api.messages.batches.cancel(batch.id).processing_status == "canceling"
    ended = api.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.request_counts.canceled == 1
    assert [r.result.type for r in api.messages.batches.results(batch.id)] == ["canceled"]


def test_openai_structured_output_parses():
    with FakeOpenAI("sk-openai-test") as fake:
        api = openai.OpenAI(api_key="sk-openai-test", base_url=fake.base_url, max_retries=2)

        def ask(feedback: str):
            return api.chat.completions.create(
                model="gpt-4o-mini",
                messages=[
                    {"role": "system", "content": "You analyse customer feedback."},
                    {"role": "user", "content": f"<feedback>{feedback}</feedback>"},
                ],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "analysis", "strict": True, "schema": STRICT},
                },
            )

        ok = ask("Excellent delivery [429]")
        broken = ask("Late again [malformed]").choices[0].message.content
        fixed = ask("Late again [malformed]").choices[0].message.content
        refused = ask("Anything [refusal]").choices[0].message
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(api_key="wrong", base_url=fake.base_url).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )

    assert json.loads(ok.choices[0].message.content) == analyse_feedback("Excellent delivery")
    assert ok.choices[0].finish_reason == "stop" and ok.usage.total_tokens > 0
    assert fake.request_times[1] - fake.request_times[0] >= float(fake.retry_after)
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken)
    assert json.loads(fixed)["sentiment_label"] == "negative"
    assert refused.content is None and refused.refusal == "I can't help with that."
    assert fake.calls["chat.completions"] == 6
    assert [h.get("authorization") for h in fake.seen_headers] == (
        ["Bearer sk-openai-test"] * 5 + ["Bearer wrong"]
    )


def test_a_batch_of_ten_thousand_is_quick(fake):
    requests = [
        {"custom_id": f"r{i}", "params": params(f"Order {i} arrived broken, I want a refund.")}
        for i in range(10_000)
    ]
    api = client(fake, timeout=60)
    batch = api.messages.batches.create(requests=requests)
    while (ended := api.messages.batches.retrieve(batch.id)).processing_status != "ended":
        pass
    # Typing 10,000 Messages is the SDK's cost, not the fake's: a few lines prove the stream.
    results = api.messages.batches.results(batch.id)
    first = list(itertools.islice(results, 3))
    results.close()

    assert ended.request_counts.succeeded == 10_000
    assert [r.custom_id for r in first] == ["r9999", "r9998", "r9997"]  # no order is promised
    assert all(r.result.type == "succeeded" for r in first)


# --- failing like the services ----------------------------------------------------------------


def test_anthropic_fails_like_the_api():
    with FakeAnthropic(KEY) as fake:
        api = client(fake)
        with pytest.raises(anthropic.NotFoundError) as unknown:
            api.messages.create(**{**params("Hi"), "model": "claude-nonexistent-9"})
        assert unknown.value.type == "not_found_error"
        assert unknown.value.body["error"]["message"] == "model: claude-nonexistent-9"
        bad_tool = {"name": TOOL, "input_schema": {"properties": {}}}
        with pytest.raises(anthropic.BadRequestError, match=r"tools\.0\.custom\.input_schema"):
            api.messages.create(**{**params("Hi"), "tools": [bad_tool]})

        cut = api.messages.create(**params("Terrible [max-tokens]"))
        assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 1024
        assert set(cut.content[0].input) == {"sentiment_label", "summary"}
        # A limit smaller than the answer cuts it too.
        assert api.messages.create(**{**params("ok"), "max_tokens": 10}).stop_reason == (
            "max_tokens"
        )

        # Throttled on every attempt for a while: the SDK gives up after its retries.
        fake.throttled_requests = 3
        with pytest.raises(anthropic.RateLimitError):
            client(fake, max_retries=1).messages.create(**params("Hi"))
        assert fake.throttled_requests == 1
        assert client(fake, max_retries=1).messages.create(**params("Hi")).stop_reason == (
            "tool_use"
        )

        fake.out_of_credit = True
        with pytest.raises(anthropic.PaymentRequiredError) as broke:
            api.messages.create(**params("Hi"))
        assert broke.value.status_code == 402 and broke.value.type == "billing_error"


def cached_params(feedback: str, instructions: str, model: str = MODEL, **control) -> dict:
    system = [
        {"type": "text", "text": instructions, "cache_control": {"type": "ephemeral", **control}}
    ]
    return {**params(feedback), "system": system, "model": model}


def test_anthropic_caches_a_marked_prefix_like_the_api():
    long = "Rules for the analysis. " * 250  # ~6,000 characters: over 1,024 tokens
    with FakeAnthropic(KEY, cache_ttl_seconds={"5m": 0.5, "1h": 3600.0}) as fake:
        api = client(fake)
        first = api.messages.create(**cached_params("Fine", long)).usage
        second = api.messages.create(**cached_params("Another text, longer", long)).usage
        # Written once, read after; what follows the breakpoint is the only input.
        assert first.cache_creation_input_tokens > 1024 and first.cache_read_input_tokens == 0
        assert first.cache_creation.ephemeral_5m_input_tokens == first.cache_creation_input_tokens
        assert second.cache_read_input_tokens == first.cache_creation_input_tokens
        assert second.cache_creation_input_tokens == 0
        assert first.input_tokens < 100 and second.input_tokens > first.input_tokens
        # The prefix is the tool, the system text and the model: another prefix is new.
        other = api.messages.create(**cached_params("Fine", long + "!")).usage
        assert other.cache_creation_input_tokens > 0 and other.cache_read_input_tokens == 0
        # Shorter than the model's minimum (Haiku 4.5 caches 4,096 tokens and more): nothing.
        haiku = api.messages.create(**cached_params("Fine", long, "claude-haiku-4-5")).usage
        short = api.messages.create(**cached_params("Fine", "Be brief.")).usage
        for usage in (haiku, short):
            assert usage.cache_creation_input_tokens == usage.cache_read_input_tokens == 0
        assert haiku.input_tokens == first.input_tokens + first.cache_creation_input_tokens
        # Without a breakpoint nothing is cached either.
        plain = api.messages.create(**{**params("Fine"), "system": long}).usage
        assert plain.cache_creation_input_tokens == plain.cache_read_input_tokens == 0
        # Past its TTL the entry is gone: written again; a 1-hour entry is priced as one.
        time.sleep(0.6)
        again = api.messages.create(**cached_params("Fine", long)).usage
        assert again.cache_creation_input_tokens == first.cache_creation_input_tokens
        hour = api.messages.create(**cached_params("Fine", long + "?", ttl="1h")).usage
        assert hour.cache_creation.ephemeral_1h_input_tokens == hour.cache_creation_input_tokens
        # Batch requests carry breakpoints too, and share the cache.
        requests = [
            {"custom_id": f"r{i}", "params": cached_params(f"text {i}", long)} for i in range(2)
        ]
        batch = api.messages.batches.create(requests=requests)
        while api.messages.batches.retrieve(batch.id).processing_status != "ended":
            pass
        usages = [r.result.message.usage for r in api.messages.batches.results(batch.id)]
        assert all(u.cache_read_input_tokens == first.cache_creation_input_tokens for u in usages)


def test_a_lost_create_answer_leaves_a_batch_that_the_list_shows():
    with FakeAnthropic(KEY, lose_create_responses=1) as fake:
        api = client(fake, max_retries=0)
        with pytest.raises(anthropic.APIConnectionError):
            api.messages.batches.create(requests=[{"custom_id": "a", "params": params("Hi")}])
        second = api.messages.batches.create(requests=[{"custom_id": "b", "params": params("Yo")}])
        # Newest first, paged by after_id as the SDK asks for pages.
        listed = list(api.messages.batches.list(limit=1))
        assert listed[0].id == second.id and len(listed) == 2
        assert listed[1].request_counts.processing == 1
        # The SDK's own retry of a lost create pays twice: why our code never lets it.
        fake.lose_create_responses = 1
        client(fake, max_retries=1).messages.batches.create(
            requests=[{"custom_id": "c", "params": params("Hi")}]
        )
        assert len(fake.batches) == 4


def test_openai_fails_like_the_api():
    with FakeOpenAI("sk-openai-test") as fake:
        api = openai.OpenAI(api_key="sk-openai-test", base_url=fake.base_url, max_retries=1)

        def ask(feedback="Hi", schema=STRICT, **changes):
            return api.chat.completions.create(
                **{
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"<feedback>{feedback}</feedback>"}],
                    "response_format": {
                        "type": "json_schema",
                        "json_schema": {"name": "analysis", "strict": True, "schema": schema},
                    },
                    **changes,
                }
            )

        with pytest.raises(openai.NotFoundError) as unknown:
            ask(model="gpt-nonexistent")
        assert unknown.value.code == "model_not_found"
        bounded = {**STRICT, "properties": {"s": {"type": "string", "maxLength": 5}}}
        bounded["required"] = ["s"]
        with pytest.raises(openai.BadRequestError, match="'maxLength' is not permitted") as bad:
            ask(schema=bounded)
        assert bad.value.param == "response_format"
        assert "Missing 's'" in strict_schema_problem({**bounded, "required": []})

        cut = ask("Late again [max-tokens]").choices[0]
        assert cut.finish_reason == "length"
        with pytest.raises(json.JSONDecodeError):
            json.loads(cut.message.content)

        fake.cached_prompt_tokens = 1024
        usage = ask().usage
        assert usage.prompt_tokens_details.cached_tokens == 1024 and usage.prompt_tokens > 1024

        fake.throttled_requests = 2
        with pytest.raises(openai.RateLimitError):
            ask()
        assert fake.throttled_requests == 0
        # The SDK waited what retry-after-ms said before its retry.
        assert fake.request_times[-1] - fake.request_times[-2] >= float(fake.retry_after)

        fake.out_of_quota = True
        with pytest.raises(openai.RateLimitError) as quota:
            ask()
        assert quota.value.code == "insufficient_quota"
