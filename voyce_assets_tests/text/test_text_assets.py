"""The text stage's assets on transcripts as the voice stage leaves them, with the offline
analyzer: rows, per-partition truth, the cache, and checks that fail on bad rows."""

from __future__ import annotations

import datetime as dt
import json
import math

import pyarrow as pa
from dagster import materialize
from deltalake import DeltaTable

from voyce_assets.catalog import SENTIMENT_LABELS, table
from voyce_assets.lake import replace_partitions
from voyce_assets.text.checks import (
    embedding_check,
    failure_rate_check,
    label_check,
    score_check,
)
from voyce_assets.text.enhanced_transcriptions import enhanced_transcriptions
from voyce_assets.text.local import classifier as clf
from voyce_assets.text.providers.anthropic import AnthropicAnalyzer
from voyce_assets.text.sentiment_analysis import sentiment_analysis
from voyce_assets_tests.text.conftest import DAYS, TAGS, seed_lake

SENTIMENT = table("raw_data/sentiment_analysis")
ENHANCED = table("processed_data/enhanced_transcriptions")


def _rows(lakehouse, spec):
    return DeltaTable(lakehouse.table_uri(spec)).to_pyarrow_table().to_pylist()


def _partition_metadata(result, key):
    out = {}
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        if mat.asset_key.path == list(key):
            out[mat.partition] = {k: v.value for k, v in mat.metadata.items()}
    return out


def test_both_tables_for_a_range_of_partitions_and_nothing_computed_twice(
    lakehouse, text_resources
):
    texts = seed_lake(lakehouse)
    result = materialize(
        [sentiment_analysis, enhanced_transcriptions], resources=text_resources, tags=TAGS
    )
    assert result.success
    rows = {r["voice_feedback_id"]: r for r in _rows(lakehouse, SENTIMENT)}
    # A transcription that failed or heard nothing has no sentiment row: 4 + 3 analysable.
    assert len(rows) == 7
    assert all(texts[fid] for fid in rows)
    by_text = {texts[fid]: r for fid, r in rows.items()}
    assert (
        by_text["the courier left my parcel in the rain and it was soaked, not happy"][
            "sentiment_label"
        ]
        == "negative"
    )
    assert (
        by_text["Checkout took two taps, honestly the smoothest app I use."]["sentiment_label"]
        == "positive"
    )
    assert (
        by_text["I was billed twice this month and support still has not answered"][
            "sentiment_label"
        ]
        == "negative"
    )
    for r in rows.values():
        assert r["sentiment_label"] in SENTIMENT_LABELS and r["error_message"] is None
        assert -1 <= r["sentiment_score"] <= 1 and 0 <= r["sentiment_confidence"] <= 1
        assert r["provider"] == "local" and r["api_mode"] == "local" and not r["cached"]
        assert len(json.loads(r["key_phrases"])) <= 5 and len(json.loads(r["topics"])) <= 5

    # Per partition, never the range's total on each day.
    meta = _partition_metadata(result, SENTIMENT.key)
    assert meta[DAYS[0].isoformat()]["dagster/partition_row_count"] == 4
    assert meta[DAYS[0].isoformat()]["skipped_no_text"] == 2
    assert meta[DAYS[1].isoformat()]["dagster/partition_row_count"] == 3
    assert meta[DAYS[1].isoformat()]["skipped_no_text"] == 0
    assert "data:image/png;base64," in meta[DAYS[1].isoformat()]["label_chart"]

    enhanced = {r["voice_feedback_id"]: r for r in _rows(lakehouse, ENHANCED)}
    assert set(enhanced) == set(rows)
    for fid, r in enhanced.items():
        assert len(r["text_embedding"]) == 384
        assert math.isclose(math.fsum(v * v for v in r["text_embedding"]), 1.0, abs_tol=1e-4)
        assert r["sentiment_label"] == rows[fid]["sentiment_label"]
        assert r["topics"] == json.loads(rows[fid]["topics"])
        if not texts[fid].startswith("um "):  # no filler: every word of the transcript counts
            assert r["word_count"] == len(texts[fid].split())
    um = next(r for r in enhanced.values() if r["transcription_text"].startswith("um "))
    assert um["cleaned_text"] == "how do I change the card on my account"
    assert um["word_count"] == 9 and um["unique_word_count"] == 9 and um["sentence_count"] == 1
    checks = {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}
    assert all(c.passed for c in checks.values()), checks
    assert len(checks) == 6

    # Second materialization: every analysis and every embedding from the cache.
    again = materialize(
        [sentiment_analysis, enhanced_transcriptions], resources=text_resources, tags=TAGS
    )
    assert again.success
    second = _rows(lakehouse, SENTIMENT)
    assert len(second) == 7 and {r["id"] for r in second} == {r["id"] for r in rows.values()}
    assert all(r["cached"] and r["input_tokens"] == 0 for r in second)
    for day in DAYS:
        assert _partition_metadata(again, SENTIMENT.key)[day.isoformat()]["analysed"] == 0
        assert _partition_metadata(again, ENHANCED.key)[day.isoformat()]["embeddings_computed"] == 0
    assert all(r["embedding_cached"] for r in _rows(lakehouse, ENHANCED))
    same = {r["voice_feedback_id"]: r["sentiment_label"] for r in second}
    assert same == {fid: r["sentiment_label"] for fid, r in rows.items()}


def test_a_provider_that_cannot_work_fails_before_writing(lakehouse, text_resources, cache):
    seed_lake(lakehouse)
    resources = {**text_resources, "sentiment_analyzer": AnthropicAnalyzer(api_key="", cache=cache)}
    result = materialize([sentiment_analysis], resources=resources, tags=TAGS, raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "no API key" in str(failure.message) + str(failure.cause)
    assert not lakehouse.exists(SENTIMENT)


def test_empty_texts_are_errors_not_crashes(local_analyzer):
    results = local_analyzer.analyze(["", "   ", "the refund never came"])
    assert [r.ok for r in results] == [False, False, True]
    assert results[0].error.startswith("empty text")
    assert results[2].analysis.sentiment_label == "negative"


def _sentiment_row(n, **changes):
    row = {
        "event_date": "2026-11-20",
        "id": f"id-{n}",
        "voice_feedback_id": f"f-{n}",
        "sentiment_label": "negative",
        "sentiment_score": -0.5,
        "sentiment_confidence": 0.9,
        "urgency": 3,
        "error_message": None,
    }
    return {**row, **changes}


def test_checks_fail_on_the_rows_as_stored(lakehouse):
    good = [_sentiment_row(n) for n in range(20)]
    assert label_check(good).passed and score_check(good).passed
    assert failure_rate_check(good).passed
    # A label outside the set, a label on a failed row, and a failed row without one.
    bad_labels = [
        *good,
        _sentiment_row(20, sentiment_label="ecstatic"),
        _sentiment_row(21, error_message="invalid answer"),
    ]
    check = label_check(bad_labels)
    assert not check.passed and check.metadata["violations"].value == 2
    check = score_check(
        [
            *good,
            _sentiment_row(22, sentiment_score=1.5),
            _sentiment_row(23, urgency=9),
            _sentiment_row(24, sentiment_confidence=float("nan")),
        ]
    )
    assert not check.passed and check.metadata["violations"].value == 3
    # 2 failed of 21 is 9.5%: over the 5% alert, though every count is "fine".
    failed = [
        *good[:19],
        _sentiment_row(30, sentiment_label=None, error_message="x"),
        _sentiment_row(31, sentiment_label=None, error_message="y"),
    ]
    assert label_check(failed).passed
    assert not failure_rate_check(failed).passed
    # A backfill: 1 failed of 41 rows is 2.4% overall, but 1 of 5 on its own day is 20%.
    day_a = [_sentiment_row(100 + n, event_date="2026-11-20") for n in range(36)]
    day_b = [_sentiment_row(200 + n, event_date="2026-11-21") for n in range(4)]
    day_b.append(
        _sentiment_row(300, event_date="2026-11-21", sentiment_label=None, error_message="x")
    )
    check = failure_rate_check(day_a + day_b)
    assert not check.passed and check.metadata["failing_partitions"].value == ["2026-11-21"]
    assert check.metadata["failure_rate"].value < 0.05
    assert failure_rate_check(day_a + day_b[:4]).passed

    # enhanced_transcriptions: a row whose analysis failed upstream has no label and no
    # score, which is allowed there; a score without its label is still out of range.
    unlabelled = _sentiment_row(40, sentiment_label=None, sentiment_score=None)
    del unlabelled["error_message"], unlabelled["sentiment_confidence"], unlabelled["urgency"]
    assert label_check([unlabelled], allow_unlabelled=True).passed
    assert score_check([unlabelled], allow_unlabelled=True).passed
    assert not label_check([unlabelled]).passed
    assert not score_check([{**unlabelled, "sentiment_score": 2.0}], allow_unlabelled=True).passed

    unit = [1.0] + [0.0] * 383
    vectors = [unit, unit[:383], [float("nan")] * 384, [0.5] * 384]
    rows = [{"id": str(i), "text_embedding": v} for i, v in enumerate(vectors)]
    check = embedding_check(rows, 384)
    assert not check.passed and check.metadata["violations"].value == 3
    assert embedding_check(rows[:1], 384).passed

    # And on a table: a row written behind the asset's back is found when read back.
    spec = SENTIMENT
    uri = lakehouse.ensure_table(spec)
    schema = pa.schema([f.with_nullable(True) for f in spec.arrow_schema()])
    from voyce_assets_tests.text.conftest import DAYS as days

    stored = {c: None for c in spec.column_names}
    stored.update(
        _sentiment_row(1, sentiment_label="furious"),
        transcription_id="t-1",
        model_used="local/x",
        provider="local",
        api_mode="local",
        cached=False,
        text_sha256="0" * 64,
        created_at=dt.datetime(2026, 11, 20, tzinfo=dt.UTC),
        event_date=days[0],
    )
    replace_partitions(uri, spec, [pa.RecordBatch.from_pylist([stored], schema=schema)], [days[0]])
    read = lakehouse.read(spec, [days[0]], ["id", "sentiment_label", "error_message"])
    read = read.to_pylist()
    assert not label_check(read).passed


def test_local_analyzer_macro_f1_on_the_holdout(local_analyzer):
    """The holdout was written apart from the training examples and never trained on. Ours,
    so easier than real messages (see test_local_sentiment.py for those); since the classifier
    also trains on real tweets it scores lower here (0.721, 0.693, 0.793) than when it learned
    only our style (0.891, 0.851, 0.837)."""
    texts, gold = clf.load_examples("holdout")
    predicted = [r.analysis.sentiment_label for r in local_analyzer.analyze(texts)]
    plain = [i for i, g in enumerate(gold) if g != "mixed"]
    # Default (no 'mixed' answers) on the holdout rows labelled positive/neutral/negative.
    assert clf.macro_f1([gold[i] for i in plain], [predicted[i] for i in plain]) >= 0.70
    # With 'mixed' answers, over all four labels.
    mixed = local_analyzer.model_copy(update={"predict_mixed": True})
    predicted = [r.analysis.sentiment_label for r in mixed.analyze(texts)]
    assert clf.macro_f1(gold, predicted) >= 0.67
    # Messier registers (posts at brands, chat, reviews, spoken run-ons), written apart too.
    social, social_gold = clf.load_examples("holdout_social")
    predicted = [r.analysis.sentiment_label for r in local_analyzer.analyze(social)]
    keep = [i for i, g in enumerate(social_gold) if g != "mixed"]
    assert clf.macro_f1([social_gold[i] for i in keep], [predicted[i] for i in keep]) >= 0.77
    # The lexicon alone, for scale: what the classifier adds.
    from voyce_assets.text.local.lexicon import vader

    lexicon = [
        "positive"
        if vader(t)["compound"] >= 0.05
        else "negative"
        if vader(t)["compound"] <= -0.05
        else "neutral"
        for t in texts
    ]
    assert clf.macro_f1([gold[i] for i in plain], [lexicon[i] for i in plain]) < 0.65


def test_voyce_sentiment_cli_keeps_order_and_turns_empty_lines_into_errors(tmp_path):
    import subprocess
    import sys

    from voyce_assets_tests.conftest import subprocess_env

    lines = ["the refund never arrived, third email now", "", "fast delivery, love it"] * 3
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "voyce_assets.cli",
            "sentiment",
            "--file",
            str(tmp_path / "in.txt"),
            "--provider",
            "local",
            "--batch-size",
            "2",
        ],
        env=subprocess_env(VOYCE_HOME=str(tmp_path / "home")),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["text"] for r in rows] == lines
    for r in rows:
        if r["text"]:
            assert r["error_message"] is None and r["sentiment_label"] in SENTIMENT_LABELS
            assert {
                "sentiment_score",
                "sentiment_confidence",
                "topics",
                "key_phrases",
                "emotions",
            } <= set(r)
        else:
            assert r["sentiment_label"] is None and "empty text" in r["error_message"]
    assert [r["sentiment_label"] for r in rows[:3]] == ["negative", None, "positive"]
    # Repeated lines were analysed once; later chunks found them in the cache.
    assert [r["cached"] for r in rows if r["text"]] == [False, False] + [True] * 4
