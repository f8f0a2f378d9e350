"""A multilingual model packs short recordings too: per language, detected first.

Windows are counted from faster-whisper's own log (one "Processing audio with duration"
record per ``WhisperModel.transcribe`` call, with the window's length; "Detected language"
only when it detects a language itself), so nothing of ours is replaced or mocked.
"""

import logging
import re

import jiwer
import numpy as np
import pytest
from faster_whisper.utils import format_timestamp

from voyce_assets.demo import speech
from voyce_assets.voice.audio.decode import TARGET_RATE
from voyce_assets.voice.audio.normalize import normalize
from voyce_assets.voice.transcriber import PACK_GAP_SECONDS, Transcriber
from voyce_assets.voice.whisper.scoring import Word, ct2_confidence, ct2_encode

# eSpeak NG's voices. base tells each of these recordings' language with probability > 0.75
# and decodes each at temperature 0: faster-whisper samples again at higher temperatures when
# a decoding is too unlikely (avg_logprob < -1), and sampled text differs from run to run.
SPOKEN = {
    "en0": ("en-us+f2", 155, "Delivery was fast and the packaging was excellent."),
    "en1": ("en-us+f2", 155, "I have waited three days for support to answer and still nothing."),
    "en2": (
        "en-us+f2",
        155,
        "The new plan is great value for the money, we saved a lot this month.",
    ),
    "de0": (
        "de",
        130,
        "Die Lieferung war sehr schnell, und die Verpackung war wirklich ausgezeichnet. "
        "Ich bin zufrieden.",
    ),
    "de1": (
        "de",
        130,
        "Ich habe drei Tage auf eine Antwort vom Kundendienst gewartet und immer noch nichts "
        "gehört.",
    ),
    "es0": (
        "es",
        130,
        "La entrega fue muy rápida y el embalaje era realmente excelente, muchas gracias.",
    ),
}


def _words(text):
    return " ".join(re.sub(r"[^\w' ]", " ", text.lower()).split())


@pytest.fixture(scope="module")
def spoken():
    out = {}
    for name, (voice, rate, text) in SPOKEN.items():
        samples, native = speech.synthesize(text, speech.Speaker(voice, rate, 50))
        out[name] = normalize(speech.resample(samples, native, TARGET_RATE)[:, 0])[0]
    return out


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("models"))


@pytest.fixture
def windows(caplog):
    """The lengths (mm:ss.mmm) of the windows faster-whisper transcribes, and its own
    language detections, as it logs them."""
    caplog.set_level(logging.INFO, logger="faster_whisper")

    def seen():
        messages = [r.getMessage() for r in caplog.records if r.name == "faster_whisper"]
        caplog.clear()
        lengths = [m.rsplit(" ", 1)[1] for m in messages if m.startswith("Processing audio")]
        return lengths, [m for m in messages if m.startswith("Detected language")]

    return seen


def _length(clips):
    """How faster-whisper logs the length of a window of ``clips``: packed, each is followed
    by the gap; a recording alone is sent as it is."""
    gap = int(PACK_GAP_SECONDS * TARGET_RATE) if len(clips) > 1 else 0
    return format_timestamp(sum(len(c) + gap for c in clips) / TARGET_RATE)


def test_multilingual_model_packs_each_detected_language_apart(spoken, base_dir, windows):
    order = ["en0", "de0", "en1", "es0", "en2", "de1"]
    batch = [spoken[k] for k in order]
    base = Transcriber(model="base", models_dir=base_dir)
    assert base.can_pack()
    base.load()
    windows()
    packed = base.transcribe_many(batch)
    lengths, detected = windows()
    assert [t.language for t in packed] == ["en", "de", "en", "es", "en", "de"]
    # One window per language, its recordings in the batch's order; each decoded in the
    # language detected for it (faster-whisper never detected one itself).
    assert lengths == [
        _length([spoken["en0"], spoken["en1"], spoken["en2"]]),
        _length([spoken["de0"], spoken["de1"]]),
        _length([spoken["es0"]]),
    ]
    assert detected == []
    # The same list, the same windows and languages. (Not always the same words: on audio
    # Whisper decodes badly faster-whisper samples again at higher temperatures, at random;
    # once, under load, a German clip's last word differed between the two runs.)
    again = base.transcribe_many(batch)
    assert windows()[0] == lengths
    assert [t.language for t in again] == [t.language for t in packed]
    for first, second in zip(packed, again, strict=True):
        assert jiwer.wer(_words(first.text), _words(second.text)) < 0.3, (first, second)
    # Each reads about what it reads alone (where faster-whisper detects its language itself),
    # as close to what was said, and its confidence is its words re-read in its language
    # against its own audio.
    alone = [base.transcribe(x) for x in batch]
    assert len(windows()[1]) == len(batch)
    said = [_words(SPOKEN[name][2]) for name in order]
    packed_wer = jiwer.wer(said, [_words(t.text) for t in packed])
    alone_wer = jiwer.wer(said, [_words(t.text) for t in alone])
    assert packed_wer < alone_wer + 0.05 and packed_wer < 0.25, (packed_wer, alone_wer)
    for name, x, p, a in zip(order, batch, packed, alone, strict=True):
        assert a.language == p.language, name
        assert jiwer.wer(_words(a.text), _words(p.text)) < 0.3, (a.text, p.text)
        assert 0 < p.confidence <= 1
        rescored = base.confidence(x, [Word(" " + p.text, 0, 1)], p.language)
        assert p.confidence == pytest.approx(rescored, abs=1e-4), name
        if p.text == a.text:
            assert p.confidence == pytest.approx(a.confidence, abs=1e-4), name


def test_english_recordings_share_one_window_with_a_multilingual_model(spoken, base_dir, windows):
    batch = [spoken["en0"], spoken["en1"], spoken["en2"]]
    base = Transcriber(model="base", models_dir=base_dir, batch_size=8)
    base.load()
    windows()
    packed = base.transcribe_many(batch)
    lengths, detected = windows()
    assert len(lengths) == 1 < len(batch) and detected == []
    assert [t.language for t in packed] == ["en"] * 3
    assert "packaging" in packed[0].text.lower() and "packaging" not in packed[1].text.lower()
    # batch_size still bounds a window: two recordings, then one.
    Transcriber(model="base", models_dir=base_dir, batch_size=2).transcribe_many(batch)
    assert windows()[0] == [_length(batch[:2]), _length(batch[2:])]


def test_a_known_language_is_not_detected(spoken, base_dir, windows):
    """WHISPER_LANGUAGE set: no detection, every short recording in one window, read in it."""
    batch = [spoken["en0"], spoken["de0"], spoken["en1"]]
    fixed = Transcriber(model="base", models_dir=base_dir, language="en")
    fixed.load()
    windows()
    packed = fixed.transcribe_many(batch)
    assert windows() == ([_length(batch)], [])
    assert [t.language for t in packed] == ["en"] * 3
    # An English-only model is never asked (CTranslate2 refuses detection for it).
    tiny = Transcriber(model="tiny.en")
    tiny.load()
    windows()
    english = tiny.transcribe_many([spoken["en0"], spoken["en1"]])
    assert windows() == ([_length([spoken["en0"], spoken["en1"]])], [])
    assert [t.language for t in english] == ["en", "en"]


@pytest.mark.parametrize("model", ["tiny.en", "base"])
def test_a_reused_encoding_scores_exactly_as_a_fresh_one(spoken, base_dir, model):
    engine = Transcriber(model=model, models_dir=base_dir)
    whisper = engine.load()
    for name in ("en0", "en2"):
        x = spoken[name]
        words = [Word(" " + SPOKEN[name][2], 0, 1)]
        fresh = ct2_confidence(whisper, x, words)
        assert ct2_confidence(whisper, x, words, "en", ct2_encode(whisper, x)) == fresh
        assert 0.3 < fresh <= 1
    # Past 30 s a given encoding is not read: each 30 s stretch is encoded on its own.
    long = np.concatenate([spoken["en0"]] * 12)
    words = [Word(" " + SPOKEN["en0"][2], 0, 1)]
    reused = ct2_confidence(whisper, long, words, "en", ct2_encode(whisper, spoken["en0"]))
    assert reused == ct2_confidence(whisper, long, words)


def test_whisper_language_is_a_setting_read_locally_and_in_prod(monkeypatch):
    from voyce_assets.resources.gpu_cluster import FORWARDED_SETTINGS
    from voyce_assets.voice.resources import resources

    monkeypatch.setenv("WHISPER_LANGUAGE", "de")
    monkeypatch.setenv("WHISPER_MODEL_SIZE", "base")
    for env in ("local", "prod"):
        transcriber = resources(env)["transcriber"].process_config_and_initialize()
        assert transcriber.language == "de", env
    monkeypatch.delenv("WHISPER_LANGUAGE")
    assert resources("local")["transcriber"].process_config_and_initialize().language is None
    assert "WHISPER_LANGUAGE" in FORWARDED_SETTINGS
