"""What our analyzers do when Claude and OpenAI fail the way the real services do: an unknown
model, a rejected schema, no credit or quota, throttling that outlasts the retries, answers
cut off at the output limit, prompt-cache usage, and a batch create whose answer is lost.
Official SDKs against the fakes in ``voyce_assets_tests/fakes/llm.py``."""

from __future__ import annotations

from decimal import Decimal

import pytest
from dagster import materialize

from voyce_assets.catalog import table
from voyce_assets.text.analysis import TOKEN_FIELDS
from voyce_assets.text.providers.anthropic import AnthropicAnalyzer
from voyce_assets.text.providers.base import ProviderDown, ProviderUnusable
from voyce_assets.text.providers.openai import OpenAIAnalyzer
from voyce_assets.text.sentiment_analysis import sentiment_analysis
from voyce_assets_tests.fakes.llm import FakeAnthropic, FakeOpenAI
from voyce_assets_tests.text.conftest import TAGS, seed_lake

KEY = "sk-ant-test-secret-0123456789"
BATCH = {"mode": "batch", "batch_poll_seconds": 0.01}


def claude(fake, cache, **changes) -> AnthropicAnalyzer:
    settings = {"api_key": KEY, "base_url": fake.base_url, "cache": cache, "timeout_seconds": 5}
    return AnthropicAnalyzer(**{**settings, **changes})


def gpt(fake, cache, **changes) -> OpenAIAnalyzer:
    settings = {"api_key": KEY, "base_url": fake.base_url, "cache": cache, "timeout_seconds": 5}
    return OpenAIAnalyzer(**{**settings, **changes})


# --- a provider that cannot work fails the step before writing -------------------------------


@pytest.mark.parametrize("mode", ["messages", "batch"])
def test_an_unknown_claude_model_fails_at_once(cache, mode):
    with FakeAnthropic(api_key=KEY) as fake:
        analyzer = claude(fake, cache, model="claude-sonnet-9", mode=mode, batch_poll_seconds=0.01)
        with pytest.raises(ProviderUnusable, match="model: claude-sonnet-9"):
            analyzer.analyze(["the app crashed", "love it"])
        # A batch is not submitted a second time for what no retry can fix.
        assert fake.calls["batches.create"] == (1 if mode == "batch" else 0)


def test_an_unknown_openai_model_fails_at_once(cache):
    with FakeOpenAI(api_key=KEY) as fake:
        with pytest.raises(ProviderUnusable, match="gpt-9-mini` does not exist"):
            gpt(fake, cache, model="gpt-9-mini").analyze(["the app crashed", "love it"])
        assert fake.calls["chat.completions"] <= 2  # no retries: a 404 is final


def test_our_schema_is_one_openai_strict_mode_accepts(cache):
    with FakeOpenAI(api_key=KEY) as fake:
        results = gpt(fake, cache).analyze(["late delivery, never again"])
        sent = fake.request_bodies[0]["response_format"]["json_schema"]["schema"]
    assert results[0].ok
    # The bounds strict mode does not take are left out, not the others.
    assert "maxLength" not in str(sent) and sent["properties"]["emotions"]["maxItems"] == 8


def test_a_rejected_schema_fails_at_once(cache):
    # A model that takes fewer schema keywords (here no maxItems) refuses every request alike.
    with FakeOpenAI(api_key=KEY) as fake:
        fake.strict_keywords = fake.strict_keywords - {"maxItems"}
        with pytest.raises(ProviderUnusable, match="'maxItems' is not permitted"):
            gpt(fake, cache).analyze(["the app crashed", "love it"])
    with (
        FakeAnthropic(api_key=KEY, rejected_schema_keywords=("maxLength",)) as fake,
        pytest.raises(ProviderUnusable, match="input_schema: JSON schema is invalid"),
    ):
        claude(fake, cache).analyze(["the app crashed", "love it"])


def test_no_credit_or_quota_fails_at_once(cache):
    with FakeAnthropic(api_key=KEY, out_of_credit=True) as fake:
        with pytest.raises(ProviderUnusable, match="credit balance is too low"):
            claude(fake, cache).analyze(["the app crashed"])
        with pytest.raises(ProviderUnusable, match="credit balance is too low"):
            claude(fake, cache, **BATCH).analyze(["the app crashed"])
        assert fake.calls["batches.create"] == 1 and not fake.batches
    # OpenAI says so with a 429, which looks like a rate limit; the SDK retries it in vain.
    with (
        FakeOpenAI(api_key=KEY, out_of_quota=True) as fake,
        pytest.raises(ProviderUnusable, match="exceeded your current quota"),
    ):
        gpt(fake, cache, max_retries=1).analyze(["the app crashed", "love it"])


def test_an_unusable_provider_fails_the_step_before_writing(lakehouse, text_resources, cache):
    seed_lake(lakehouse)
    with FakeOpenAI(api_key=KEY, out_of_quota=True) as fake:
        resources = {**text_resources, "sentiment_analyzer": gpt(fake, cache, max_retries=0)}
        result = materialize(
            [sentiment_analysis], resources=resources, tags=TAGS, raise_on_error=False
        )
    assert not result.success
    kinds = [e.event_type_value for e in result.all_events]
    assert "STEP_UP_FOR_RETRY" not in kinds, "no retry brings quota back"
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "cannot work" in str(failure.message) + str(failure.cause)
    assert KEY not in str(failure)
    assert not lakehouse.exists(table("raw_data/sentiment_analysis"))


# --- throttling that outlasts the SDK's retries ------------------------------------------------


def test_throttling_on_every_attempt_fails_the_step_to_be_retried(cache):
    with FakeAnthropic(api_key=KEY, throttled_requests=100) as fake:
        with pytest.raises(ProviderDown, match="every call of 2 failed"):
            limits = {"max_retries": 0, "rate_limit_retries": 2, "max_concurrency": 1}
            claude(fake, cache, **limits).analyze(["one", "two"])
        assert fake.calls["messages"] == 2 * 3  # each text: the call and two retries
    # Throttled for fewer attempts than the retries: the SDK waits it out, as told.
    with FakeOpenAI(api_key=KEY, throttled_requests=2, retry_after="0.2") as fake:
        [result] = gpt(fake, cache, max_retries=2).analyze(["late delivery"])
        gaps = [b - a for a, b in zip(fake.request_times, fake.request_times[1:], strict=False)]
    assert result.ok and fake.calls["chat.completions"] == 3
    assert all(gap >= 0.2 for gap in gaps)


def test_a_429_pauses_every_call_for_its_retry_after_within_the_limit_in_flight(cache):
    texts = [f"parcel {n} arrived late again" for n in range(12)]
    with FakeAnthropic(api_key=KEY, throttled_requests=1, retry_after="0.6") as fake:
        fake.reply_seconds = 0.05  # each answer takes a while: calls overlap
        analyzer = claude(fake, cache, max_concurrency=3, max_retries=0, rate_limit_retries=1)
        results = analyzer.analyze(texts)
        [refused] = [t for t, status in fake.replies if status == 429]
        sent = fake.request_times
    # Waited out and sent again: every text answered, the refused one with one more call.
    assert all(r.ok for r in results) and fake.calls["messages"] == len(texts) + 1
    # Never more than the limit in flight, and the limit used.
    assert fake.max_in_flight == 3
    # The retry-after held every thread, not only the refused call: nothing was sent while it
    # ran (what was on its way when the 429 came back left within a moment of it).
    during = [t for t in sent if refused + 0.1 < t < refused + 0.6]
    assert during == [], [round(t - refused, 3) for t in during]
    assert max(sent) >= refused + 0.6


# --- answers cut off at the output limit -------------------------------------------------------


def test_a_truncated_answer_is_that_texts_error_never_half_an_analysis(cache):
    texts = ["[max-tokens] the courier was rude", "love it"]
    with FakeAnthropic(api_key=KEY) as fake:
        results = claude(fake, cache).analyze(texts)
        # Asked once: the same request would be cut again.
        assert fake.calls["messages"] == 2
        batch = claude(fake, cache, **BATCH, prompt_version="b").analyze(texts[:1])
        assert fake.calls["batches.create"] == 1
    assert [r.ok for r in results] == [False, True]
    assert "cut off at max_tokens=1024" in results[0].error and results[0].output_tokens == 1024
    assert "cut off" in batch[0].error and batch[0].analysis is None
    # Too small a limit cuts every answer: each row says so.
    with FakeAnthropic(api_key=KEY) as fake:
        small = claude(fake, cache, max_tokens=16, prompt_version="s").analyze(["fine", "ok"])
    assert all("raise max_tokens" in r.error for r in small)
    with FakeOpenAI(api_key=KEY) as fake:
        [cut] = gpt(fake, cache).analyze(texts[:1])
        assert fake.calls["chat.completions"] == 1
    assert cut.analysis is None and "finish_reason: length" in cut.error


# --- prompt-cache usage --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["messages", "batch"])
def test_the_instructions_are_read_from_the_prompt_cache_after_the_first_request(
    cache, tmp_path, mode
):
    from voyce_assets.resources import Pricing
    from voyce_assets.text.cache import TextCache

    settings = {"mode": mode, "batch_poll_seconds": 0.01, "max_concurrency": 1}
    texts = ["the app crashed twice today", "lovely driver, thanks"]
    with FakeAnthropic(api_key=KEY) as fake:
        first, second = (claude(fake, cache, **settings).analyze([t])[0] for t in texts)
        sent = fake.request_bodies[0]
        system = (sent["requests"][0]["params"] if mode == "batch" else sent)["system"]
        other = TextCache(path=str(tmp_path / "other.sqlite"))
        plain = claude(fake, other, prompt_caching=False, **settings).analyze(texts[1:])[0]
    # The fixed instructions carry the breakpoint; the feedback comes after it. A batch's
    # requests are processed over minutes to hours: its entry lives an hour.
    ttl = {"ttl": "1h"} if mode == "batch" else {}
    assert system[-1]["cache_control"] == {"type": "ephemeral", **ttl}
    fixed = first.cache_write_tokens
    assert fixed > 1024 and first.cache_read_tokens == 0
    # The second request reads them from the cache instead of paying them in full again.
    assert second.cache_read_tokens == fixed and second.cache_write_tokens == 0
    assert second.input_tokens < 100 and plain.input_tokens == second.input_tokens + fixed
    assert plain.cache_read_tokens == plain.cache_write_tokens == 0
    pricing = Pricing()

    def cost(r):
        return pricing.token_cost("anthropic", mode, **{k: getattr(r, k) for k in TOKEN_FIELDS})

    # Read at 0.1x the input price instead of 1x: the saving is 0.9x of the fixed tokens.
    price = pricing.unit_cost(
        ("anthropic.batch_" if mode == "batch" else "anthropic.") + "input_mtok"
    )
    saved = cost(plain) - cost(second)
    assert saved == price * Decimal(fixed) * Decimal("0.9") / Decimal(1_000_000)
    # The first request writes them at 1.25x (5 minutes), a batch's at 2x (an hour), once.
    out = pricing.unit_cost(
        ("anthropic.batch_" if mode == "batch" else "anthropic.") + "output_mtok"
    )
    write = Decimal(2 if mode == "batch" else "1.25")
    billed = price * (first.input_tokens + write * fixed) + out * first.output_tokens
    assert cost(first) == billed / Decimal(1_000_000)


def test_openai_cached_prompt_tokens_are_not_counted_twice(cache):
    text = ["the app crashed twice today"]
    with FakeOpenAI(api_key=KEY, cached_prompt_tokens=600) as fake:
        result = gpt(fake, cache).analyze(text)[0]
        sent = len(str(fake.request_bodies[0]))
    # OpenAI's prompt_tokens include the cached ones: not counted twice.
    assert 600 < result.input_tokens < 600 + sent


# --- a batch create whose answer is lost is never paid twice -----------------------------------


def test_a_lost_create_answer_resumes_the_batch_it_made(cache):
    texts = ["the driver was lovely", "wrong size again"]
    with FakeAnthropic(api_key=KEY, lose_create_responses=1) as fake:
        results = claude(fake, cache, **BATCH).analyze(texts)
        assert fake.calls["batches.create"] == 1 and len(fake.batches) == 1
        assert fake.calls["batches.list"] >= 1
    assert all(r.ok for r in results)


def test_a_crash_before_the_batch_id_was_kept_resumes_it(cache):
    texts = ["the driver was lovely", "wrong size again"]
    with FakeAnthropic(api_key=KEY, lose_create_responses=1, down_after_lost_create=True) as fake:
        # The create's answer is lost and the API goes down before the batch is found: the
        # step fails (to be retried), the intent kept.
        with pytest.raises(ProviderDown, match="not listed yet"):
            claude(fake, cache, **BATCH, max_retries=0).analyze(texts)
        fake.down = False
        # A new process, the same cache, another set of texts (one of the batch, one new):
        # the batch is found among ours, not paid again; only the new text is sent.
        results = claude(fake, cache, **BATCH).analyze([texts[0], "the app logs me out"])
        created = [b for b in fake.request_bodies if isinstance(b, dict) and "requests" in b]
        assert [len(b["requests"]) for b in created] == [2, 1] and len(fake.batches) == 2
    assert all(r.ok for r in results)


def test_a_throttled_create_is_sent_again_and_made_once(cache):
    # Our create is sent without the SDK's retries, so a 429 (nothing made) is ours to wait out.
    with FakeAnthropic(api_key=KEY, throttled_requests=2) as fake:
        results = claude(fake, cache, **BATCH).analyze(["the driver was lovely"])
        gaps = [b - a for a, b in zip(fake.request_times, fake.request_times[1:], strict=False)]
        assert fake.calls["batches.create"] == 3 and len(fake.batches) == 1
    assert results[0].ok and min(gaps[:2]) >= float(fake.retry_after)


def test_a_lost_create_that_made_nothing_is_sent_once_more(cache):
    # Dropped before the batch was made (the connection refused): the look-up finds none of
    # ours, and a batch of the same size made earlier, or one we know, is not taken for it.
    texts = ["the driver was lovely", "wrong size again"]
    with FakeAnthropic(api_key=KEY) as fake:
        claude(fake, cache, **BATCH).analyze(texts)
        results = claude(fake, cache, **BATCH, prompt_version="other").analyze(texts)
        assert fake.calls["batches.create"] == 2 and len(fake.batches) == 2
    assert all(r.ok for r in results)


def test_a_batch_an_overlapping_step_made_is_not_taken_for_ours(tmp_path):
    from voyce_assets.text.cache import TextCache

    durable = str(tmp_path / "volume" / "cache.sqlite")
    ours = TextCache(path=str(tmp_path / "step-1" / "c.sqlite"), persist_to=durable)
    theirs = TextCache(path=str(tmp_path / "step-2" / "c.sqlite"), persist_to=durable)
    with FakeAnthropic(api_key=KEY, lose_create_responses=1, down_after_lost_create=True) as fake:
        with pytest.raises(ProviderDown, match="not listed yet"):
            claude(fake, ours, **BATCH, max_retries=0).analyze(["lovely driver", "wrong size"])
        fake.down, fake.batch_polls_before_end = False, 1000
        # The other step's batch: as many requests, made after our intent, still running.
        with pytest.raises(TimeoutError):
            claude(fake, theirs, **BATCH, batch_timeout_hours=1e-6).analyze(["a", "b"])
        # Known from the durable copy its step persisted, it is not taken for ours.
        results = claude(fake, ours, **BATCH, batch_timeout_hours=1e-4).analyze(
            ["lovely driver", "wrong size"]
        )
        assert fake.calls["batches.create"] == 2 and len(fake.batches) == 2
    assert all(r.ok for r in results)


def test_a_create_still_in_flight_is_never_replaced_by_a_second_one(cache):
    """An intent whose batch is not listed (a create in flight elsewhere, or the API still
    making it) is left alone until it has settled: the step fails to be retried, nothing is
    created twice; once settled and still unlisted, it is created."""
    texts = ["the driver was lovely", "wrong size again"]
    with FakeAnthropic(api_key=KEY) as fake:
        fake.down = True  # the create's answer is a 500: made or not, we cannot tell
        with pytest.raises(ProviderDown, match="not listed yet"):
            claude(fake, cache, **BATCH).analyze(texts)
        fake.down = False
        sent = fake.calls["batches.create"]
        assert sent == 1 and not fake.batches
        with pytest.raises(ProviderDown, match="not listed yet"):
            claude(fake, cache, **BATCH).analyze(texts)
        assert fake.calls["batches.create"] == sent and not fake.batches
        results = claude(fake, cache, **BATCH, batch_create_settle_seconds=0).analyze(texts)
        assert fake.calls["batches.create"] == sent + 1 and len(fake.batches) == 1
    assert all(r.ok for r in results)


# --- tokens billed by an attempt that failed are recorded, once --------------------------------


def _billed(fake) -> dict[str, int]:
    names = {
        "input_tokens": "input_tokens",
        "output_tokens": "output_tokens",
        "cache_creation_input_tokens": "cache_write_tokens",
        "cache_read_input_tokens": "cache_read_tokens",
    }
    return {ours: sum(u[theirs] for u in fake.billed) for theirs, ours in names.items()}


def test_tokens_a_failed_step_paid_for_are_in_its_retrys_rows_once(
    lakehouse, text_resources, cache
):
    from voyce_assets.feedback import existing_rows
    from voyce_assets.text.sentiment_analysis import SENTIMENT, TRANSCRIPTIONS, analysable_text
    from voyce_assets_tests.text.conftest import DAYS, TRANSCRIPTS, feedback_id

    # The first text sent is paid twice: an invalid answer, then a valid one.
    day = list(TRANSCRIPTS[DAYS[0]])
    first = min(
        (n for n, (t, e) in enumerate(day) if t and not e), key=lambda n: feedback_id(DAYS[0], n)
    )
    day[first] = (f"[malformed] {day[first][0]}", None)
    seed_lake(lakehouse, {**TRANSCRIPTS, DAYS[0]: day})
    transcripts = sorted(
        existing_rows(lakehouse, TRANSCRIPTIONS, None).values(),
        key=lambda t: (t["event_date"], t["voice_feedback_id"]),
    )
    texts = [analysable_text(t) for t in transcripts if analysable_text(t)]
    assert "[malformed]" in texts[0]
    limits = {"batch_size": 2, "max_concurrency": 1, "max_retries": 0}
    with FakeAnthropic(api_key=KEY, down_after_messages=3) as fake:
        # The first attempt: the first chunk is answered (one text twice), then the API goes
        # down: the step fails before writing a row, having paid for three answers.
        with pytest.raises(ProviderDown):
            claude(fake, cache, **limits).analyze(texts)
        paid_first = _billed(fake)
        assert len(fake.billed) == 3
        fake.down_after_messages = None
        resources = {**text_resources, "sentiment_analyzer": claude(fake, cache, **limits)}
        assert materialize([sentiment_analysis], resources=resources, tags=TAGS).success
        rows = lakehouse.read(SENTIMENT).to_pylist()
        # Everything the API billed, the failed attempt included, is in the rows: once.
        for name, total in _billed(fake).items():
            assert sum(r[name] for r in rows) == total, name
        # The texts answered before the failure came from the cache and carry what they cost.
        carried = [r for r in rows if r["cached"]]
        assert len(carried) == 2
        assert sum(r["input_tokens"] + r["cache_write_tokens"] for r in carried) == (
            paid_first["input_tokens"] + paid_first["cache_write_tokens"]
        )
        # A later run of the same days pays nothing, and its rows (answers from the cache)
        # keep what the texts cost: the days' cost is the same, nothing counted twice.
        assert materialize([sentiment_analysis], resources=resources, tags=TAGS).success
        again = lakehouse.read(SENTIMENT).to_pylist()
        assert len(fake.billed) == 3 + len(texts) - 2
        assert all(r["cached"] for r in again)
        for name, total in _billed(fake).items():
            assert sum(r[name] for r in again) == total, name
        by_id = {r["id"]: r for r in rows}
        assert all(r[k] == by_id[r["id"]][k] for r in again for k in TOKEN_FIELDS)
        # And again: still the same.
        assert materialize([sentiment_analysis], resources=resources, tags=TAGS).success
        third = lakehouse.read(SENTIMENT).to_pylist()
    assert sorted((r["id"], *(r[k] for k in TOKEN_FIELDS)) for r in third) == sorted(
        (r["id"], *(r[k] for k in TOKEN_FIELDS)) for r in again
    )


def test_a_resumed_batch_bills_what_it_collected_before_once(cache):
    """The retry batch of an invalid answer is still running when the step gives up: the
    first batch was collected and billed, but its requests are not done with yet. The next
    run resumes both batches and reads the first one's results again: billed once."""
    texts = ["[malformed] the parcel came late", "the driver was kind"]
    with FakeAnthropic(api_key=KEY, hold_batches_after=1) as fake:
        analyzer = claude(fake, cache, **BATCH, batch_timeout_hours=0.5 / 3600)
        with pytest.raises(TimeoutError, match="the next run resumes them"):
            analyzer.analyze(texts)
        assert len(fake.batches) == 2 and len(fake.billed) == 3
        fake.release_batches()
        results = claude(fake, cache, **BATCH).analyze(texts)
        assert fake.calls["batches.create"] == 2  # resumed, nothing sent again
        assert all(r.ok for r in results)
    for name, total in _billed(fake).items():
        assert sum(getattr(r, name) for r in results) == total, name
