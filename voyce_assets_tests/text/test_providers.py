"""Claude and OpenAI through their official SDKs against local servers that speak the real
wire format: retries, invalid answers, refusals, the Message Batches API and its resume, the
cache, and a key that never shows."""

from __future__ import annotations

import json

import pytest
from dagster import materialize

from voyce_assets.text.cache import TextCache
from voyce_assets.text.prompt import PROMPT_VERSION
from voyce_assets.text.providers.anthropic import AnthropicAnalyzer
from voyce_assets.text.providers.base import ProviderDown, ProviderUnusable
from voyce_assets.text.providers.openai import OpenAIAnalyzer
from voyce_assets.text.sentiment_analysis import sentiment_analysis
from voyce_assets_tests.fakes.llm import FakeAnthropic, FakeOpenAI, analyse_feedback
from voyce_assets_tests.text.conftest import TAGS, seed_lake

KEY = "sk-ant-test-secret-0123456789"


def claude(fake, cache, **changes) -> AnthropicAnalyzer:
    settings = {"api_key": KEY, "base_url": fake.base_url, "cache": cache, "timeout_seconds": 5}
    return AnthropicAnalyzer(**{**settings, **changes})


def test_messages_mode_retries_validates_and_counts_usage(cache, tmp_path):
    texts = [
        "love the new app, great work",
        "[429] my refund never came",
        "[529] delivery was late again",
        "[500] the checkout is broken",
        "[malformed] support was terrible",
        "[malformed-always] prices went up",
        "[partial] the app is slow",
        "[refusal] nothing to say",
        "[notool] ok i guess",
    ]
    with FakeAnthropic(api_key=KEY) as fake:
        results = claude(fake, cache, max_concurrency=4).analyze(texts)
        calls = fake.calls["messages"]
        # The same request once more, answered at the first attempt now: one call's usage.
        fresh = TextCache(path=str(tmp_path / "fresh.sqlite"))
        (once,) = claude(fake, fresh).analyze(["[malformed] support was terrible"])
    ok = {t: r for t, r in zip(texts, results, strict=True) if r.ok}
    assert set(ok) == set(texts[:5])
    # The SDK retried the 429/529/500 itself; an invalid answer was asked once more.
    assert calls == 1 + 2 + 2 + 2 + 2 + 2 + 2 + 2 + 2
    for text, r in ok.items():
        expected = analyse_feedback(text)
        assert r.analysis.sentiment_label == expected["sentiment_label"]
        assert r.analysis.topics == expected["topics"]
        assert r.input_tokens > 0 and r.output_tokens > 0 and r.mode == "messages"
    failed = dict(zip(texts, results, strict=True))
    assert "sentiment_score" in failed["[malformed-always] prices went up"].error
    assert "confidence" in failed["[partial] the app is slow"].error
    assert "refused" in failed["[refusal] nothing to say"].error
    assert "no record_feedback_analysis call" in failed["[notool] ok i guess"].error
    # Both attempts of a twice-invalid answer were billed, so both are counted.
    retried = failed["[malformed] support was terrible"]
    assert once.ok and once.input_tokens > 0
    assert retried.input_tokens == 2 * once.input_tokens
    assert all(KEY not in (r.error or "") for r in results)


def test_timeout_is_retried(cache):
    with FakeAnthropic(api_key=KEY, slow_seconds=2.0) as fake:
        result = claude(fake, cache, timeout_seconds=0.5).analyze(["[timeout] app froze"])[0]
        assert result.ok and fake.calls["messages"] == 2


def test_a_wrong_key_fails_at_once_and_never_shows(cache):
    with FakeAnthropic(api_key=KEY) as fake:
        with pytest.raises(ProviderUnusable, match="AuthenticationError") as info:
            claude(fake, cache, api_key="sk-ant-wrong-key-0000").analyze(["the app crashed"])
        assert "wrong-key" not in str(info.value)
    # OpenAI's 401 echoes the key it got, masked but for its ends: none of it is repeated.
    with FakeOpenAI(api_key=KEY) as fake:
        wrong = "sk-proj-wrong-key-abcdefgh1234"
        analyzer = OpenAIAnalyzer(api_key=wrong, base_url=fake.base_url, cache=cache)
        with pytest.raises(ProviderUnusable, match="Incorrect API key") as info:
            analyzer.analyze(["the app crashed"])
        assert "sk-pro" not in str(info.value) and "1234" not in str(info.value)


def test_a_provider_down_or_throttling_fails_the_step_to_be_retried(cache):
    with FakeAnthropic(api_key=KEY) as fake:
        dead = fake.base_url
        # Every call of the chunk refused for load (429), the retries spent: no rows of
        # errors, a failure the step's RetryPolicy retries.
        spent = {"max_retries": 0, "rate_limit_retries": 0}
        with pytest.raises(ProviderDown, match="every call of 2 failed"):
            claude(fake, cache, **spent).analyze(["[429] one", "[429] two"])
        # One text's 429 among good answers is that text's error only.
        results = claude(fake, cache, **spent).analyze(["[429] three", "fine"])
        assert [r.ok for r in results] == [False, True] and "429" in results[0].error
    with pytest.raises(ProviderDown, match="APIConnectionError"):
        claude(type("F", (), {"base_url": dead}), cache, max_retries=0, timeout_seconds=1).analyze(
            ["one", "two"]
        )


def test_cache_means_no_second_call_and_a_new_prompt_version_pays_again(cache):
    texts = ["the courier was rude", "great support", "the courier was rude"]
    with FakeAnthropic(api_key=KEY) as fake:
        analyzer = claude(fake, cache)
        first = analyzer.analyze(texts)
        assert fake.calls["messages"] == 2  # a repeated text is sent once
        # ... and its tokens are counted once: on its first row.
        assert first[0].input_tokens > 0 and first[2].input_tokens == 0 and first[2].ok
        # Until its rows are written, what was paid is still to be recorded.
        assert claude(fake, cache).analyze(texts)[0].input_tokens == first[0].input_tokens
        analyzer.recorded()
        second = claude(fake, cache).analyze(texts)
        assert fake.calls["messages"] == 2
        assert all(r.cached and r.input_tokens == 0 for r in second)
        assert [r.analysis for r in second] == [r.analysis for r in first]
        claude(fake, cache, prompt_version="v3").analyze(texts)
        assert fake.calls["messages"] == 4
        # Other instructions under the same version (a new taxonomy) are not served old answers.
        claude(fake, cache, prompt_version="v3", topics={"shipping": "parcels"}).analyze(texts)
        assert fake.calls["messages"] == 6


def test_batch_mode_collects_every_result_kind_and_retries_once(cache):
    texts = [
        "great prices",
        "my package never arrived",
        "[malformed] checkout failed",
        "[batch-errored] the app is slow",
        "[batch-expired] billing is wrong",
        "[batch-canceled] love it",
    ]
    with FakeAnthropic(api_key=KEY, batch_polls_before_end=2) as fake:
        results = claude(fake, cache, mode="batch", batch_poll_seconds=0.01).analyze(texts)
        assert fake.calls["batches.create"] == 2  # the batch, then one batch of retries
        created = [b for b in fake.request_bodies if isinstance(b, dict) and "requests" in b]
        # The second batch holds only what the first did not answer validly.
        assert [len(b["requests"]) for b in created] == [6, 4]
        assert fake.calls["messages"] == 0
    by_text = dict(zip(texts, results, strict=True))
    assert by_text["great prices"].ok and by_text["my package never arrived"].ok
    assert by_text["[malformed] checkout failed"].ok  # its second answer was valid
    assert "errored" in by_text["[batch-errored] the app is slow"].error
    assert "expired" in by_text["[batch-expired] billing is wrong"].error
    assert "canceled" in by_text["[batch-canceled] love it"].error
    assert all(r.mode == "batch" for r in results)

    # The next run pays again only for what failed, in a new batch, never the old results.
    with FakeAnthropic(api_key=KEY) as fake:
        again = claude(fake, cache, mode="batch", batch_poll_seconds=0.01).analyze(texts)
        created = [b for b in fake.request_bodies if isinstance(b, dict) and "requests" in b]
        assert [len(b["requests"]) for b in created] == [3, 3]
    assert [r.cached for r in again] == [True, True, True, False, False, False]


def test_several_batches_run_at_once_and_every_answer_is_collected_once(cache):
    texts = [f"order {n}: the parcel was late and the box was broken" for n in range(11)]
    texts += [texts[0], "[malformed] checkout failed"]  # a repeat, and one asked twice
    settings = {"mode": "batch", "batch_poll_seconds": 0.01}
    limits = {"batch_max_requests": 3, "batch_max_in_flight": 3}
    with FakeAnthropic(api_key=KEY, batch_polls_before_end=3) as fake:
        results = claude(fake, cache, **settings, **limits).analyze(texts)
        created = [b for b in fake.request_bodies if isinstance(b, dict) and "requests" in b]
        in_progress = fake.max_batches_in_progress
        sent = [r["custom_id"] for b in created for r in b["requests"]]
    # 12 distinct texts: three batches of 3 side by side, then the last 3; then the retry of
    # the one invalid answer.
    assert [len(b["requests"]) for b in created] == [3, 3, 3, 3, 1]
    assert in_progress == 3
    # Nothing sent twice, nothing lost, nothing mixed up; every token billed counted once.
    assert len(sent) == len(set(sent)) == 13
    billed = sum(u["input_tokens"] + u["output_tokens"] for u in fake.billed)
    assert sum(r.input_tokens + r.output_tokens for r in results) == billed
    assert all(r.ok for r in results)
    for text, result in zip(texts, results, strict=True):
        assert result.analysis.summary == analyse_feedback(text)["summary"]


def test_a_restarted_run_resumes_its_batch_instead_of_paying_twice(cache):
    texts = ["the driver was lovely", "wrong size again, so annoying"]
    with FakeAnthropic(api_key=KEY, batch_polls_before_end=1000) as fake:
        impatient = claude(
            fake, cache, mode="batch", batch_poll_seconds=0.01, batch_timeout_hours=1e-6
        )
        with pytest.raises(TimeoutError, match="the next run resumes them"):
            impatient.analyze(texts)
        assert fake.calls["batches.create"] == 1
        fake.batch_polls_before_end = 0
        for batch in fake.batches.values():
            batch.polls_left = 0
        # A new process: a new client, the same cache, and one more text: only that is new.
        texts.append("the app logs me out every hour")
        results = claude(fake, cache, mode="batch", batch_poll_seconds=0.01).analyze(texts)
        created = [b for b in fake.request_bodies if isinstance(b, dict) and "requests" in b]
        assert [len(b["requests"]) for b in created] == [2, 1]
        assert all(r.ok for r in results)
        # Other instructions never collect answers made under the old ones.
        claude(fake, cache, mode="batch", batch_poll_seconds=0.01, topics={"x": "y"}).analyze(
            texts[:1]
        )
        assert fake.calls["batches.create"] == 3


def test_openai_structured_outputs(cache):
    texts = [
        "great support, thanks",
        "[malformed] refund please",
        "[partial] slow app",
        "[refusal] hello",
        "[429] delivery late",
    ]
    with FakeOpenAI(api_key=KEY) as fake:
        analyzer = OpenAIAnalyzer(api_key=KEY, base_url=fake.base_url, cache=cache)
        results = analyzer.analyze(texts)
        assert fake.calls["chat.completions"] == 1 + 2 + 2 + 2 + 2
        headers = [h.get("authorization", "") for h in fake.seen_headers]
        assert all(h == f"Bearer {KEY}" for h in headers)
    assert [r.ok for r in results] == [True, True, False, False, True]
    assert "refused" in results[3].error
    assert results[0].analysis.sentiment_label == analyse_feedback(texts[0])["sentiment_label"]
    assert analyzer.label == "openai/gpt-4o-mini"


def test_sentiment_asset_with_claude_costs_and_never_shows_the_key(
    lakehouse, text_resources, cache
):
    seed_lake(lakehouse)
    with FakeAnthropic(api_key=KEY) as fake:
        resources = {**text_resources, "sentiment_analyzer": claude(fake, cache)}
        result = materialize([sentiment_analysis], resources=resources, tags=TAGS)
        assert result.success and fake.calls["messages"] == 7
        again = materialize([sentiment_analysis], resources=resources, tags=TAGS)
        assert again.success and fake.calls["messages"] == 7  # nothing paid twice
    events = json.dumps([str(e) for e in result.all_events + again.all_events])
    assert KEY not in events
    meta = {}
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        meta[mat.partition] = {k: v.value for k, v in mat.metadata.items()}
    for values in meta.values():
        # $3 / $15 per million tokens, cache writes $3.75 and reads $0.30, from the price
        # table, per partition.
        expected = (
            values["input_tokens"] * 3
            + values["output_tokens"] * 15
            + values["cache_write_tokens"] * 3.75
            + values["cache_read_tokens"] * 0.30
        ) / 1e6
        assert values["token_cost_usd"] == pytest.approx(expected)
        assert values["input_tokens"] > 0 and values["cache_read_tokens"] > 0


def test_a_batch_survives_a_lost_cluster_through_the_durable_copy(tmp_path):
    """Prod keeps SQLite on the driver's disk and a copy on a volume: a batch submitted on
    one cluster is collected, not paid again, by a run on a fresh one."""
    from voyce_assets.text.cache import TextCache

    durable = str(tmp_path / "volume" / "cache.sqlite")
    first = TextCache(path=str(tmp_path / "driver-1" / "cache.sqlite"), persist_to=durable)
    texts = ["the driver was lovely", "wrong size again, so annoying"]
    with FakeAnthropic(api_key=KEY, batch_polls_before_end=1000) as fake:
        lost = claude(fake, first, mode="batch", batch_poll_seconds=0.01, batch_timeout_hours=1e-6)
        with pytest.raises(TimeoutError):
            lost.analyze(texts)
        for batch in fake.batches.values():
            batch.polls_left = 0
        second = TextCache(path=str(tmp_path / "driver-2" / "cache.sqlite"), persist_to=durable)
        second.restore()  # what the resource does when a step starts
        results = claude(fake, second, mode="batch", batch_poll_seconds=0.01).analyze(texts)
        assert fake.calls["batches.create"] == 1 and all(r.ok for r in results)
    second.persist()  # what the resource does when the step ends
    third = TextCache(path=str(tmp_path / "driver-3" / "cache.sqlite"), persist_to=durable)
    third.restore()
    keys = [
        TextCache.analysis_key(
            "anthropic", "claude-sonnet-4-5", f"{PROMPT_VERSION}:{lost.fingerprint()}", t
        )
        for t in texts
    ]
    assert set(third.get_analyses(keys)) == set(keys)
