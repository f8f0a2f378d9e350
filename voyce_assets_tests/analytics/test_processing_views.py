"""analytics.transcription_performance, transcription_duration_buckets and processing_funnel
on DuckDB and Spark, over a two-day run, against hand-worked numbers."""

import datetime as dt

from voyce_assets_tests.analytics.harness import A, B, assert_expected, inputs, run_both, uid

D0 = dt.date(2026, 3, 9)  # the day before the run: outside
D1 = dt.date(2026, 3, 10)  # run start
D2 = dt.date(2026, 3, 11)  # run end
D3 = dt.date(2026, 3, 12)  # the day after the run: outside
RUN = {"start_date": D1, "end_date": D2}
LARGE, SMALL = "whisper-large-v3", "whisper-small"

# (name, day, organization, duration seconds, engine, processing ms, confidence, error)
ATTEMPTS = [
    ("f1", D1, A, 30.0, LARGE, 100, 0.9, None),
    ("f2", D1, A, 90.0, LARGE, 200, 0.7, None),
    ("f3", D1, B, 600.0, LARGE, 400, 0.8, None),
    ("f4", D1, A, None, LARGE, 50, None, "timeout"),  # failed: its 50 ms is not counted
    ("f8", D1, A, None, LARGE, 1000, 0.6, None),  # succeeded, duration unknown
    ("f7", D1, B, 15.0, SMALL, 80, None, "oom"),  # the engine's only file that day failed
    ("f5", D2, A, 45.0, LARGE, 300, 0.6, None),
    ("f6", D2, B, 10.0, LARGE, 500, 1.0, None),
    ("f10", D2, B, 60.0, SMALL, 250, 0.5, None),  # 60 s: first second of '1-2m'
    ("f11", D2, A, 120.0, SMALL, 150, 0.7, None),  # 120 s: first second of '2-5m'
    ("f12", D2, A, 300.0, SMALL, 900, None, "oom"),  # 300 s: '>5m'
    ("f13", D2, A, 299.5, SMALL, 700, 0.9, None),  # just under 300 s: '2-5m'
    ("f0", D0, A, 20.0, LARGE, 9999, 0.1, None),  # outside the run
    ("f9", D3, A, 20.0, LARGE, 9999, 0.1, None),  # outside the run
]


def _transcription_fixture():
    feedback = [
        {"id": uid(n), "organization_id": org, "audio_duration_seconds": secs, "day": day}
        for n, day, org, secs, *_ in ATTEMPTS
    ]
    transcriptions = [
        {
            "voice_feedback_id": uid(n),
            "transcription_engine": engine,
            "processing_time_ms": ms,
            "confidence_score": conf,
            "error_message": error,
            "day": day,
        }
        for n, day, _, _, engine, ms, conf, error in ATTEMPTS
    ]
    return inputs({"raw_data/voice_feedback": feedback, "raw_data/transcriptions": transcriptions})


def test_transcription_performance_hand_worked(spark):
    got = run_both(spark, "analytics/transcription_performance", _transcription_fixture(), RUN)
    assert_expected(
        got,
        {
            # ok ms sorted [100, 200, 400, 1000]
            (D1, LARGE): {
                "files": 5,
                "failed": 1,
                "error_rate": 0.2,  # 1 / 5
                "p50_processing_ms": 300.0,  # (200 + 400) / 2
                "p95_processing_ms": 910.0,  # rank 0.95 * 3 = 2.85: 400 + 0.85 * (1000 - 400)
                "avg_confidence": 0.75,  # (0.9 + 0.7 + 0.8 + 0.6) / 4
                "audio_minutes": 12.0,  # (30 + 90 + 600) / 60; f8's unknown duration skipped
            },
            # nothing succeeded: no percentiles, no confidence, no minutes
            (D1, SMALL): {
                "files": 1,
                "failed": 1,
                "error_rate": 1.0,
                "p50_processing_ms": None,
                "p95_processing_ms": None,
                "avg_confidence": None,
                "audio_minutes": 0.0,
            },
            # ok ms [300, 500]
            (D2, LARGE): {
                "files": 2,
                "failed": 0,
                "error_rate": 0.0,
                "p50_processing_ms": 400.0,  # (300 + 500) / 2
                "p95_processing_ms": 490.0,  # 300 + 0.95 * 200
                "avg_confidence": 0.8,  # (0.6 + 1.0) / 2
                "audio_minutes": 55 / 60,  # (45 + 10) / 60
            },
            # ok ms sorted [150, 250, 700]
            (D2, SMALL): {
                "files": 4,
                "failed": 1,
                "error_rate": 0.25,  # 1 / 4
                "p50_processing_ms": 250.0,
                "p95_processing_ms": 655.0,  # rank 0.95 * 2 = 1.9: 250 + 0.9 * (700 - 250)
                "avg_confidence": 0.7,  # (0.5 + 0.7 + 0.9) / 3
                "audio_minutes": 479.5 / 60,  # (60 + 120 + 299.5) / 60
            },
        },
        ("date", "transcription_engine"),
    )


def test_transcription_duration_buckets_hand_worked(spark):
    got = run_both(spark, "analytics/transcription_duration_buckets", _transcription_fixture(), RUN)
    none = {"avg_processing_ms": None, "p95_processing_ms": None}
    assert_expected(
        got,
        {
            (D1, "<30s"): {"files": 1, "failed": 1, "error_rate": 1.0, **none},  # f7
            # f1: exactly 30 s
            (D1, "30s-1m"): {
                "files": 1,
                "failed": 0,
                "error_rate": 0.0,
                "avg_processing_ms": 100.0,
                "p95_processing_ms": 100.0,
            },
            (D1, "1-2m"): {"files": 1, "avg_processing_ms": 200.0, "p95_processing_ms": 200.0},
            (D1, ">5m"): {"files": 1, "failed": 0, "p95_processing_ms": 400.0},  # f3
            # f4 failed, f8 ok (1000 ms): both without a duration
            (D1, "unknown"): {
                "files": 2,
                "failed": 1,
                "error_rate": 0.5,  # 1 / 2
                "avg_processing_ms": 1000.0,
                "p95_processing_ms": 1000.0,
            },
            (D2, "<30s"): {"files": 1, "avg_processing_ms": 500.0},  # f6
            (D2, "30s-1m"): {"files": 1, "avg_processing_ms": 300.0},  # f5
            (D2, "1-2m"): {"files": 1, "avg_processing_ms": 250.0},  # f10 (60 s)
            # f11 (120 s, 150 ms), f13 (299.5 s, 700 ms)
            (D2, "2-5m"): {
                "files": 2,
                "failed": 0,
                "error_rate": 0.0,
                "avg_processing_ms": 425.0,  # (150 + 700) / 2
                "p95_processing_ms": 672.5,  # 150 + 0.95 * (700 - 150)
            },
            (D2, ">5m"): {"files": 1, "failed": 1, "error_rate": 1.0, **none},  # f12 (300 s)
        },
        ("date", "duration_bucket"),
    )


def _funnel_fixture(with_predictions: bool = True):
    feedback = [
        {"id": uid("g1"), "organization_id": A, "day": D1},
        {"id": uid("g2"), "organization_id": A, "day": D1},
        {"id": uid("g3"), "organization_id": A, "day": D1},
        {"id": uid("g4"), "organization_id": B, "day": D1},
        {"id": uid("g5"), "organization_id": A, "day": D2},
        {"id": uid("g0"), "organization_id": A, "day": D0},  # outside the run
        {"id": uid("g9"), "organization_id": A, "day": D3},  # outside the run
    ]
    transcriptions = [
        {"voice_feedback_id": uid("g1"), "day": D1},
        {"voice_feedback_id": uid("g2"), "error_message": "timeout", "day": D1},
        {"voice_feedback_id": uid("g2"), "day": D1},  # g2's retry succeeded: counted once
        {"voice_feedback_id": uid("g3"), "error_message": "timeout", "day": D1},
        {"voice_feedback_id": uid("g4"), "day": D1},
        {"voice_feedback_id": uid("g5"), "day": D2},
        {"voice_feedback_id": uid("gx"), "day": D1},  # not a feedback of the day: ignored
        {"voice_feedback_id": uid("g0"), "day": D0},
        {"voice_feedback_id": uid("g9"), "day": D3},
    ]
    sentiment = [
        {"voice_feedback_id": uid("g1"), "sentiment_label": "positive", "day": D1},
        {"voice_feedback_id": uid("g2"), "error_message": "refused", "day": D1},
        {"voice_feedback_id": uid("g4"), "sentiment_label": "neutral", "day": D1},
        {"voice_feedback_id": uid("g5"), "sentiment_label": "negative", "day": D2},
        {"voice_feedback_id": uid("gx"), "sentiment_label": "negative", "day": D1},
    ]
    predictions = [
        # champion and challenger on g1: counted once
        {"prediction_id": uid("p1"), "voice_feedback_id": uid("g1"), "day": D1},
        {"prediction_id": uid("p2"), "voice_feedback_id": uid("g1"), "day": D1},
        {"prediction_id": uid("p3"), "voice_feedback_id": uid("g4"), "day": D1},
        {"prediction_id": uid("p4"), "voice_feedback_id": uid("g9"), "day": D3},
    ]
    return inputs(
        {
            "raw_data/voice_feedback": feedback,
            "raw_data/transcriptions": transcriptions,
            "raw_data/sentiment_analysis": sentiment,
            "ml_models/predictions": predictions if with_predictions else [],
        }
    )


def test_processing_funnel_hand_worked(spark):
    got = run_both(spark, "analytics/processing_funnel", _funnel_fixture(), RUN)
    assert_expected(
        got,
        {
            # g1, g2, g3: transcribed g1 g2; analysed g1; predicted g1
            (D1, A): {
                "uploaded": 3,
                "transcribed": 2,
                "analysed": 1,
                "predicted": 1,
                "transcribed_rate": 2 / 3,
                "analysed_rate": 1 / 3,
                "predicted_rate": 1 / 3,
            },
            (D1, B): {  # g4 went all the way
                "uploaded": 1,
                "transcribed": 1,
                "analysed": 1,
                "predicted": 1,
                "transcribed_rate": 1.0,
                "analysed_rate": 1.0,
                "predicted_rate": 1.0,
            },
            (D2, A): {  # g5: not predicted yet
                "uploaded": 1,
                "transcribed": 1,
                "analysed": 1,
                "predicted": 0,
                "transcribed_rate": 1.0,
                "analysed_rate": 1.0,
                "predicted_rate": 0.0,
            },
        },
        ("date", "organization_id"),
    )


def test_processing_funnel_without_predictions(spark):
    """The inference stage has not run: predicted is 0, not missing."""
    got = run_both(spark, "analytics/processing_funnel", _funnel_fixture(False), RUN)
    assert_expected(
        got,
        {
            (D1, A): {"uploaded": 3, "transcribed": 2, "predicted": 0, "predicted_rate": 0.0},
            (D1, B): {"uploaded": 1, "predicted": 0, "predicted_rate": 0.0},
            (D2, A): {"uploaded": 1, "predicted": 0, "predicted_rate": 0.0},
        },
        ("date", "organization_id"),
    )
